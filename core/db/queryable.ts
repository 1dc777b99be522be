import type pg from "pg";

/** Anything a statement can run on: a pool, a pooled client or a plain client. */
export type Queryable = Pick<pg.Pool, "query"> | Pick<pg.ClientBase, "query">;
