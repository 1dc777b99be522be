/**
 * The requesting side of request/response. Each request waits in a table of pending
 * requests under its correlation id; replies arrive on the node's channel (NOTIFY) or
 * queue, possibly out of order between the two paths, and are put back in order by
 * their sequence numbers. A request is settled once: later or duplicate replies are
 * dropped.
 */
import { randomUUID } from "node:crypto";
import { CancelledError, ErrorCode, NoResponderError, RemoteError, RequestTimeoutError, ResponderGoneError } from "../model/errors.js";

/** How long replies to a request the caller gave up on are answered with a cancellation. */
const ABANDONED_TTL_MS = 60_000;
import type { ReplyEnvelope, RequestEnvelope } from "../model/messages.js";
import type { EventHeaders } from "../model/payload.js";

/** Options of {@link CoreNode.request} and {@link CoreNode.requestStream}. */
export interface RequestOptions {
  /**
   * Milliseconds to wait for the reply (for a stream: for each next value). A request not
   * started within this time after it was sent is never started. Default 30,000.
   */
  timeout?: number;
  /** Headers carried to the responder. */
  headers?: EventHeaders;
  /** Cancels the request (and a running stream on the responder). */
  signal?: AbortSignal;
  /**
   * How the request travels (the caller gets at most one reply either way):
   * - `queue` (default): through the responder group's queue; if its responder dies
   *   mid-request, another instance runs it (at least once).
   * - `direct`: a NOTIFY to one live node that answers the type, chosen round robin from
   *   the namespace's responders; the handler runs outside a transaction unless it uses
   *   `ctx.client`. At most once: if that node stops, the request fails at once with a
   *   `ResponderGoneError`; if it dies, at the caller's timeout or when its heartbeat
   *   lapses, whichever comes first. Refused by systems connected with `replies: 'queue'`.
   *   A system that cannot hear notifications (see `CoreSystem.hearsNotifications`) sends
   *   `direct` requests through the queue instead; and when no node that hears answers
   *   the type directly while the namespace has nodes that cannot hear (they answer
   *   through their group's queue only), the request takes the queue path too.
   */
  delivery?: "queue" | "direct";
  /** @deprecated Retired: use `delivery` (`durable: false` was at most once: `delivery: "direct"`). Passing it throws a `ValidationError`. */
  durable?: boolean;
}

/** What the requester needs from its node. */
export interface RequesterTransport {
  /** Sends the request to its responder group; resolves false when no group answers the type. */
  send(envelope: RequestEnvelope): Promise<boolean>;
  /** One live node that answers `type` directly, or undefined when there is none. */
  pickDirect(type: string): Promise<string | undefined>;
  /** Sends the request to `nodeId` on the direct path. */
  sendDirect(nodeId: string, envelope: RequestEnvelope): Promise<void>;
  /** True when the namespace has live nodes that cannot hear notifications (so never answer directly, only through their queues). */
  hasDeafNodes(): Promise<boolean>;
  /** Tells a responder node to stop a stream. */
  cancel(responderNode: string, correlationId: string): void;
}

interface Pending {
  type: string;
  timeoutMs: number;
  timer: NodeJS.Timeout | undefined;
  nextSeq: number;
  early: Map<number, ReplyEnvelope>;
  responder: string | undefined;
  /** The node a direct request went to. */
  target: string | undefined;
  push: (reply: ReplyEnvelope) => void;
  fail: (error: Error) => void;
}

/** Sends requests and routes their replies. */
export class Requester {
  readonly #pending = new Map<string, Pending>();
  /** Requests given up before their responder was known: a late reply gets a cancellation. */
  readonly #abandoned = new Map<string, number>();

  constructor(
    private readonly nodeId: string,
    private readonly namespace: string,
    private readonly transport: RequesterTransport,
  ) {}

  /** Requests and resolves with the reply (a streamed reply: the array of its values). */
  async request(type: string, payload: unknown, options: RequestOptions): Promise<unknown> {
    const values: unknown[] = [];
    let streamed = false;
    for await (const { value, stream } of this.#exchange(type, payload, options)) {
      streamed ||= stream;
      if (value !== NO_VALUE) values.push(value);
    }
    return streamed ? values : values[0];
  }

  /** Requests and yields each value of the reply in order (a single reply yields once). */
  async *requestStream(type: string, payload: unknown, options: RequestOptions): AsyncGenerator<unknown, void, undefined> {
    for await (const { value } of this.#exchange(type, payload, options)) {
      if (value !== NO_VALUE) yield value;
    }
  }

  /** A reply arrived (from the channel or the queue). */
  receive(reply: ReplyEnvelope): void {
    const pending = this.#pending.get(reply.c);
    if (!pending) return this.#cancelAbandoned(reply);
    if (pending.responder !== undefined && reply.r !== pending.responder) {
      // A durable request re-run by another instance after its responder died: a stream
      // that already passed values on cannot be continued from another run.
      if (pending.nextSeq > 0 && reply.stream) {
        pending.fail(new RemoteError({ name: "Error", code: ErrorCode.streamRestarted, message: "The responder died mid-stream and another instance restarted the stream; the values received so far are incomplete." }));
      }
      return;
    }
    if (reply.seq < pending.nextSeq) return; // a duplicate
    pending.responder ??= reply.r;
    pending.early.set(reply.seq, reply);
    for (let next = pending.early.get(pending.nextSeq); next; next = pending.early.get(pending.nextSeq)) {
      pending.early.delete(pending.nextSeq);
      pending.nextSeq += 1;
      pending.push(next);
    }
  }

  /** A reply to a request its caller gave up on before knowing the responder: tell the responder once. */
  #cancelAbandoned(reply: ReplyEnvelope): void {
    const now = Date.now();
    for (const [id, expires] of this.#abandoned) if (expires < now) this.#abandoned.delete(id);
    if (!this.#abandoned.delete(reply.c) || reply.done) return;
    this.transport.cancel(reply.r, reply.c);
  }

  /** Fails every pending request (the node is stopping). */
  failAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.fail(error);
  }

  /** Node `nodeId` went away: its direct requests in flight fail now. */
  failTarget(nodeId: string): void {
    for (const pending of this.#pending.values()) {
      if (pending.target === nodeId) pending.fail(new ResponderGoneError(pending.type, nodeId));
    }
  }

  async *#exchange(type: string, payload: unknown, options: RequestOptions): AsyncGenerator<{ value: unknown; stream: boolean }> {
    const id = randomUUID();
    const timeoutMs = options.timeout ?? 30_000;
    const inbox: ReplyEnvelope[] = [];
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const pending: Pending = {
      type,
      timeoutMs,
      timer: undefined,
      nextSeq: 0,
      early: new Map(),
      responder: undefined,
      target: undefined,
      push: (reply) => {
        inbox.push(reply);
        this.#arm(pending, id);
        wake?.();
      },
      fail: (error) => {
        failure ??= error;
        wake?.();
      },
    };
    const onAbort = (): void => pending.fail(new CancelledError(`Request ${type}`, options.signal?.reason));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    this.#pending.set(id, pending);
    let finished = false;
    try {
      if (options.signal?.aborted) throw new CancelledError(`Request ${type}`, options.signal.reason);
      this.#arm(pending, id);
      const envelope: RequestEnvelope = {
        kind: "request",
        id,
        type,
        payload,
        headers: options.headers ?? {},
        replyTo: this.nodeId,
        timeoutMs,
        durable: true,
        sourceNode: this.nodeId,
      };
      if (options.delivery === "direct") {
        // The target is known before the request leaves, so that its going away fails the request whenever that news arrives.
        pending.target = await this.transport.pickDirect(type);
        if (pending.target !== undefined) await this.transport.sendDirect(pending.target, envelope);
        // No node that hears answers directly: nodes that cannot hear answer through their group's queue.
        else if (!(await this.transport.hasDeafNodes()) || !(await this.transport.send(envelope))) throw new NoResponderError(type, this.namespace, "direct");
      } else if (!(await this.transport.send(envelope))) {
        throw new NoResponderError(type, this.namespace);
      }
      for (;;) {
        const reply = inbox.shift();
        if (reply) {
          if (reply.error) throw new RemoteError(reply.error);
          const hasValue = "value" in reply && !(reply.stream && reply.done);
          if (hasValue) yield { value: reply.value, stream: reply.stream === true };
          else if (reply.done) yield { value: NO_VALUE, stream: reply.stream === true };
          if (reply.done) {
            finished = true;
            return;
          }
          continue;
        }
        if (failure) throw failure;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      options.signal?.removeEventListener("abort", onAbort);
      // The caller stopped early (break, abort, timeout): stop the responder's stream too,
      // now if the responder is known, else when its first reply arrives.
      if (!finished && pending.responder) this.transport.cancel(pending.responder, id);
      else if (!finished) this.#abandoned.set(id, Date.now() + ABANDONED_TTL_MS);
    }
  }

  #arm(pending: Pending, id: string): void {
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => {
      if (this.#pending.has(id)) pending.fail(new RequestTimeoutError(pending.type, pending.timeoutMs));
    }, pending.timeoutMs);
  }
}

const NO_VALUE: unique symbol = Symbol("no value");
