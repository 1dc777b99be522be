import type { Queryable } from "../../db/queryable.js";

/** A handler's error as recorded with a failed message. */
export interface RecordedError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
}

/** Arguments of {@link failMessage}. */
export interface FailMessageArgs {
  queue: string;
  msgId: string;
  attempt: number;
  maxAttempts: number;
  retryDelaySeconds: number;
  error: RecordedError;
}

/** Records a failed attempt: retry later, or dead-letter after the last attempt. See `core.fail_message`. */
export async function failMessage(db: Queryable, args: FailMessageArgs): Promise<"retry" | "dead"> {
  const { rows } = await db.query<{ outcome: "retry" | "dead" }>({
    name: "nexus_fail_message",
    text: "select core.fail_message($1, $2::bigint, $3, $4, $5, $6::jsonb) as outcome",
    values: [args.queue, args.msgId, args.attempt, args.maxAttempts, args.retryDelaySeconds, JSON.stringify(args.error)],
  });
  return rows[0]!.outcome;
}
