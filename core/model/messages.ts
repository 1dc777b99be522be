/**
 * The shapes that travel in queue messages and NOTIFY payloads. Defined once here, so
 * that every adapter speaks the same envelope.
 */
import type { SerializedError } from "./errors.js";
import type { EventHeaders } from "./payload.js";

/** An event or direct message, as stored in a queue. */
export interface EventEnvelope {
  kind?: "event" | "direct";
  id: string;
  type: string;
  payload: unknown;
  headers?: EventHeaders;
  emittedAt: string;
  sourceNode: string | null;
}

/** A request, as stored in the responder group's request queue. */
export interface RequestEnvelope {
  kind: "request";
  /** Correlation id, unique per request. */
  id: string;
  type: string;
  payload: unknown;
  headers: EventHeaders;
  /** The requester's node id: where replies go. */
  replyTo: string;
  /** Milliseconds after enqueueing (database clock) past which the request is not started. */
  timeoutMs: number;
  /** False: run at most once (a second delivery after a crash is dropped). */
  durable: boolean;
  sourceNode: string;
}

/** One reply message; a request's replies carry increasing `seq` from 0. */
export interface ReplyEnvelope {
  kind: "reply";
  /** The request's correlation id. */
  c: string;
  seq: number;
  /** The responder's node id (where a cancellation goes). */
  r: string;
  /** A value: the single reply, or one item of a stream. */
  value?: unknown;
  /** The last message of the reply. */
  done?: boolean;
  /** True on the messages of a streamed reply. */
  stream?: boolean;
  error?: SerializedError;
}

/** A requester's cancellation of a streamed reply, sent to the responder's node. */
export interface CancelEnvelope {
  kind: "cancel";
  c: string;
}

/** Anything that arrives on a node's channel or queue. */
export type NodeEnvelope = ReplyEnvelope | CancelEnvelope | EventEnvelope;

/** A direct message too large for NOTIFY: its envelope waits in `core.broadcast_payloads` under `r`. */
export interface StoredEnvelope {
  kind: "ref";
  r: number;
}

/** What arrives on a node's channel: replies, cancellations, direct messages (or where one is stored). */
export type ChannelEnvelope = ReplyEnvelope | CancelEnvelope | EventEnvelope | RequestEnvelope | StoredEnvelope;
