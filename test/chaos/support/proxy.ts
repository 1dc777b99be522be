/**
 * A TCP proxy the chaos tests own, between the nodes and PostgreSQL, on 127.0.0.1:
 * `drop()` cuts every open connection, `stall(ms)` stops forwarding (sockets stay open,
 * bytes wait) for a while, `slow(ms)` delays every chunk in both directions.
 */
import net from "node:net";

/** A running proxy; {@link startProxy} makes one. */
export class ChaosProxy {
  readonly #server: net.Server;
  readonly #upstream: { host: string; port: number };
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  #delayMs = 0;
  #stalledUntil = 0;
  /** Connections accepted so far. */
  accepted = 0;
  /** Connections cut by {@link drop}. */
  dropped = 0;

  constructor(upstream: { host: string; port: number }) {
    this.#upstream = upstream;
    this.#server = net.createServer((client) => this.#accept(client));
  }

  /** Listens on an ephemeral port of 127.0.0.1. */
  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string {
    const proxied = new URL(url);
    proxied.hostname = "127.0.0.1";
    proxied.port = String(this.port);
    return proxied.toString();
  }

  /** Cuts every open connection at once (both sides reset). */
  drop(): number {
    const count = this.#pairs.size;
    for (const [client, server] of this.#pairs) {
      client.resetAndDestroy();
      server.resetAndDestroy();
    }
    this.#pairs.clear();
    this.dropped += count;
    return count;
  }

  /** Holds every byte, both ways, for `ms` (connections stay open), then lets them through. */
  stall(ms: number): void {
    this.#stalledUntil = Date.now() + ms;
  }

  /** Delays every chunk by `ms` (0: no delay). */
  slow(ms: number): void {
    this.#delayMs = ms;
  }

  /** Open connection pairs. */
  get open(): number {
    return this.#pairs.size;
  }

  /** Stops accepting and cuts what is open. */
  async close(): Promise<void> {
    this.drop();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    this.accepted += 1;
    const server = net.connect(this.#upstream);
    const pair: [net.Socket, net.Socket] = [client, server];
    this.#pairs.add(pair);
    const end = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      server.destroy();
    };
    for (const socket of pair) {
      socket.on("error", end);
      socket.on("close", end);
    }
    this.#pipe(client, server);
    this.#pipe(server, client);
  }

  /**
   * Forwards `from` to `to` in order: each chunk waits for the stall to end and for the
   * delay, and chunks queue behind each other so a delay never reorders bytes.
   */
  #pipe(from: net.Socket, to: net.Socket): void {
    let chain = Promise.resolve();
    from.on("data", (chunk: Buffer) => {
      chain = chain.then(async () => {
        const wait = Math.max(this.#stalledUntil - Date.now(), 0) + this.#delayMs;
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        // A stall that began while this chunk waited holds it too.
        while (this.#stalledUntil > Date.now()) await new Promise((resolve) => setTimeout(resolve, this.#stalledUntil - Date.now()));
        if (!to.destroyed) to.write(chunk);
      });
    });
  }
}

/** Starts a proxy in front of the PostgreSQL server of `databaseUrl`. */
export async function startProxy(databaseUrl: string): Promise<ChaosProxy> {
  const target = new URL(databaseUrl);
  const proxy = new ChaosProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.listen();
  return proxy;
}
