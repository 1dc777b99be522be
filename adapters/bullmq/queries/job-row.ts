/** One row of `core.bull_jobs`, as the facade's statements return it. */
export interface JobRow {
  id: string;
  name: string;
  data: unknown;
  opts: Record<string, unknown>;
  state: "waiting" | "active" | "completed" | "failed";
  priority: number;
  run_at: Date;
  attempts: number;
  attempts_made: number;
  attempts_started: number;
  stalled_counter: number;
  progress: unknown;
  returnvalue: unknown;
  failed_reason: string | null;
  stacktrace: string[];
  logs: string[];
  created_ms: string;
  processed_ms: string | null;
  finished_ms: string | null;
  lock_token: string | null;
}

/** A job as `core.bull_add` takes it. */
export interface AddRow {
  id?: string;
  name: string;
  data: unknown;
  opts: Record<string, unknown>;
  priority?: number;
  lifo?: boolean;
  delay?: number;
  attempts?: number;
  timestamp?: number;
  dedupId?: string;
  dedupTtl?: number;
}
