/**
 * The choice of database in apps/shared/database.ts: CORE_DATABASE_URL, else the
 * docker/ image through testcontainers where a Docker engine answers, else the embedded
 * server. The Docker path itself cannot run here (no engine); the decision and the
 * engine probe are tested, the probe against fake engines on unix sockets.
 */
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chooseDatabaseSource, dockerEndpoint, dockerSetting, pingDocker } from "../../apps/shared/database.js";

describe("chooseDatabaseSource", () => {
  it("takes CORE_DATABASE_URL first, whatever Docker says", () => {
    expect(chooseDatabaseSource({ CORE_DATABASE_URL: "postgres://h/db" }, true)).toBe("external");
    expect(chooseDatabaseSource({ CORE_DATABASE_URL: "postgres://h/db", CORE_DOCKER: "on" }, undefined)).toBe("external");
  });

  it("uses Docker when its engine answered, the embedded server otherwise", () => {
    expect(chooseDatabaseSource({}, true)).toBe("docker");
    expect(chooseDatabaseSource({}, false)).toBe("embedded");
    expect(chooseDatabaseSource({}, undefined)).toBe("embedded");
    expect(chooseDatabaseSource({ CORE_DATABASE_URL: "" }, true)).toBe("docker");
    expect(chooseDatabaseSource({ CORE_DOCKER: "auto" }, true)).toBe("docker");
  });

  it("follows CORE_DOCKER=on and off", () => {
    expect(chooseDatabaseSource({ CORE_DOCKER: "off" }, true)).toBe("embedded");
    expect(chooseDatabaseSource({ CORE_DOCKER: "0" }, true)).toBe("embedded");
    expect(chooseDatabaseSource({ CORE_DOCKER: "on" }, false)).toBe("docker");
    expect(chooseDatabaseSource({ CORE_DOCKER: "TRUE" }, undefined)).toBe("docker");
    expect(() => dockerSetting({ CORE_DOCKER: "maybe" })).toThrow(/auto, on or off/);
  });
});

describe("dockerEndpoint", () => {
  it("reads DOCKER_HOST, else the default socket when it exists", () => {
    expect(dockerEndpoint({ DOCKER_HOST: "unix:///run/user/1000/docker.sock" })).toEqual({ socketPath: "/run/user/1000/docker.sock" });
    expect(dockerEndpoint({ DOCKER_HOST: "tcp://127.0.0.1:2375" })).toEqual({ host: "127.0.0.1", port: 2375 });
    expect(dockerEndpoint({ DOCKER_HOST: "tcp://127.0.0.1" })).toEqual({ host: "127.0.0.1", port: 2375 });
    expect(dockerEndpoint({}, () => true)).toEqual({ socketPath: "/var/run/docker.sock" });
    expect(dockerEndpoint({}, () => false)).toBeUndefined();
  });

  it("does not probe what it cannot ask without credentials or on another platform", () => {
    expect(dockerEndpoint({ DOCKER_HOST: "tcp://127.0.0.1:2376", DOCKER_TLS_VERIFY: "1" })).toBeUndefined();
    expect(dockerEndpoint({ DOCKER_HOST: "npipe:////./pipe/docker_engine" })).toBeUndefined();
    expect(dockerEndpoint({ DOCKER_HOST: "ssh://user@host" })).toBeUndefined();
  });
});

describe("pingDocker", () => {
  let dir: string;
  const servers: http.Server[] = [];

  async function fakeEngine(name: string, handler: http.RequestListener): Promise<string> {
    const socketPath = path.join(dir, name);
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    return socketPath;
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "nexus-docker-"));
  });
  afterAll(async () => {
    for (const server of servers) server.closeAllConnections();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    await rm(dir, { recursive: true, force: true });
  });

  it("is true only for 200 OK on GET /_ping", async () => {
    const seen: string[] = [];
    const healthy = await fakeEngine("ok.sock", (request, response) => {
      seen.push(`${request.method} ${request.url}`);
      response.end("OK");
    });
    expect(await pingDocker({ socketPath: healthy })).toBe(true);
    expect(seen).toEqual(["GET /_ping"]);

    const failing = await fakeEngine("err.sock", (_request, response) => {
      response.statusCode = 500;
      response.end("daemon is starting");
    });
    expect(await pingDocker({ socketPath: failing })).toBe(false);

    const other = await fakeEngine("other.sock", (_request, response) => response.end("<html>not docker</html>"));
    expect(await pingDocker({ socketPath: other })).toBe(false);
  });

  it("is false, quickly, when nothing listens or nothing answers", async () => {
    expect(await pingDocker({ socketPath: path.join(dir, "missing.sock") })).toBe(false);
    const silent = await fakeEngine("silent.sock", () => {});
    const started = Date.now();
    expect(await pingDocker({ socketPath: silent }, 200)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
