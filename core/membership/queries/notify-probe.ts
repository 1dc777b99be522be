import type { Queryable } from "../../db/queryable.js";

/** NOTIFYs `token` on `channel` through `db`, as any sender would (see `membership/hearing.ts`). */
export async function notifyProbe(db: Queryable, channel: string, token: string): Promise<void> {
  await db.query({ name: "nexus_notify_probe", text: "select pg_notify($1, $2)", values: [channel, token] });
}
