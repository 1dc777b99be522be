/**
 * How Moleculer's topics become core names. Moleculer names (actions, events, groups)
 * allow characters the core's grammar does not, so each is mapped segment by segment;
 * both the publishing and the subscribing side use the same functions, and a mapped name
 * that two Moleculer names share only costs a copy that Moleculer's own matching drops.
 */
import { createHash } from "node:crypto";

/** Prefix of every core type, channel and group the transporter uses. */
export const PREFIX = "mol";

/** The JSON payload a packet travels in: Moleculer's serialized bytes, base64-encoded. */
export interface PacketPayload {
  /** The serialized packet (base64). */
  d: string;
}

/**
 * A targeted packet's payload also names its sender's Moleculer node id, so that the
 * receiver learns where to answer (the core gives the sender's core node id).
 */
export interface DirectPayload extends PacketPayload {
  /** The sender's Moleculer node id. */
  n: string;
}

/** A broadcast's payload names its sender, so that receivers learn where to send targeted packets. */
export interface BroadcastPayload extends DirectPayload {
  /** The sender's core node id (a UUID): the owner of the queue its targeted packets go to. */
  u: string;
}

const TYPE_SEGMENT_CHARACTERS = /[^A-Za-z0-9_\-:$]/g;

function typeSegment(segment: string): string {
  return segment.replace(TYPE_SEGMENT_CHARACTERS, "_") || "_";
}

function typeName(name: string): string {
  return name.split(".").map(typeSegment).join(".");
}

/** A core group name (1-40 of `[a-z0-9_-]`): a readable part and a hash of the exact name. */
function groupOf(kind: "rb" | "eb", name: string): string {
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 10);
  const readable = name.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").slice(0, 40 - kind.length - hash.length - 2);
  return `${kind}-${readable}-${hash}`.replace(/--+/g, "-");
}

/** The core type of a targeted or broadcast packet of command `cmd` (`REQ`, `INFO`, ...). */
export function packetType(cmd: string): string {
  return `${PREFIX}.${cmd}`;
}

/** The core type and durable group of balanced requests for `action` (`REQB.<action>`). */
export function balancedRequest(action: string): { type: string; group: string } {
  return { type: `${PREFIX}.rb.${typeName(action)}`, group: groupOf("rb", action) };
}

/** The core type a balanced event `event` for `group` is emitted as (`EVENTB.<group>.<event>`). */
export function balancedEventType(group: string, event: string): string {
  return `${PREFIX}.eb.${typeSegment(group)}.${typeName(event)}`;
}

/**
 * The pattern and durable group that consume the balanced events of Moleculer group
 * `group`: one queue per group, whatever its events, so that an event matching several of
 * the group's subscriptions (`user.*` and `user.created`) is handled once, as Moleculer's
 * own balancing does; the publisher only sends a group the events Moleculer routes to it.
 */
export function balancedEventSubscription(group: string): { pattern: string; group: string } {
  return { pattern: `${PREFIX}.eb.${typeSegment(group)}.**`, group: groupOf("eb", group) };
}

/** Moleculer's serialized packet as a JSON-safe payload. */
export function encode(data: Buffer): string {
  return data.toString("base64");
}

/** Back to the bytes Moleculer's serializer reads. */
export function decode(payload: PacketPayload): Buffer {
  return Buffer.from(payload.d, "base64");
}
