/**
 * Compile-time checks that the adapter's classes fit where Nest expects its own: a
 * `customClass` of `ClientsModule.register`, a `strategy` of `createMicroservice`, a
 * `ClientProxy` to inject. The runtime assertions keep the file a real test.
 */
import { ClientProxy, Server, type ClientProviderOptions, type CustomStrategy } from "@nestjs/microservices";
import { describe, expect, it } from "vitest";
import { PgClient, PgServer } from "../../../adapters/nestjs/index.js";

describe("PgClient and PgServer types", () => {
  it("are a ClientProxy customClass and a Server strategy", () => {
    const options = { connectionString: "postgres://unused", namespace: "unused" };
    const provider: ClientProviderOptions = { name: "X", customClass: PgClient, options };
    const client: ClientProxy = new PgClient(options);
    const strategy: CustomStrategy = { strategy: new PgServer({ ...options, group: "g" }) };
    expect(provider.name).toBe("X");
    expect(client).toBeInstanceOf(ClientProxy);
    expect(strategy.strategy).toBeInstanceOf(Server);
  });
});
