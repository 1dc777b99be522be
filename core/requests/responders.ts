/**
 * Who answers which requests directly: each system's live view of the namespace's
 * responder nodes and their request patterns, for the direct path of `request`. It is
 * kept by membership broadcasts, not by a query per call, on channel `$nexus.responders`:
 * a node that starts answering announces its patterns (`up`), one that stops gracefully
 * withdraws (`down`), a heartbeat that marks silent nodes dead says so (`down`), and a
 * system that needs the view asks once (`who`), to which every responder announces
 * itself again. A requester picks among the nodes whose patterns match, round robin.
 */
import { patternMatcher } from "../delivery/dispatch.js";
import type { Broadcasts } from "../membership/broadcasts.js";
import type { Logger } from "../model/logger.js";
import { asError } from "../model/errors.js";

/** The broadcast channel of the responder view. */
export const RESPONDERS_CHANNEL = "$nexus.responders";
/** How long a first direct request waits for the responders to answer `who`, at most. */
const DISCOVERY_WAIT_MS = 250;

/** What travels on {@link RESPONDERS_CHANNEL}. */
type ResponderNews = { up: string; patterns: string[] } | { down: string[] } | { who: true };

interface Responder {
  patterns: string[];
  matchers: ((type: string) => boolean)[];
}

/** A system's view of the namespace's direct responders; see the module comment. */
export class ResponderDirectory {
  readonly #broadcasts: Broadcasts;
  readonly #logger: Logger;
  readonly #responders = new Map<string, Responder>();
  /** This system's own responders, announced again when someone asks. */
  readonly #local = new Map<string, string[]>();
  readonly #downListeners = new Set<(nodeId: string) => void>();
  readonly #arrivals = new Set<() => void>();
  /** Discoveries in flight, by request type. */
  readonly #discoveries = new Map<string, Promise<void>>();
  #turn = 0;

  constructor(broadcasts: Broadcasts, logger: Logger) {
    this.#broadcasts = broadcasts;
    this.#logger = logger;
    broadcasts.on(RESPONDERS_CHANNEL, (news) => this.#receive(news as ResponderNews));
  }

  /** A node of this system answers `patterns` directly from now on (all of them, not only new ones). */
  announce(nodeId: string, patterns: string[]): Promise<void> {
    this.#local.set(nodeId, patterns);
    this.#learn(nodeId, patterns);
    return this.#send({ up: nodeId, patterns }, nodeId);
  }

  /** Nodes that stopped (a node of this system) or were marked dead: forget them, and tell the others. */
  withdraw(nodeIds: string[], sourceNode: string | null): Promise<void> {
    if (nodeIds.length === 0) return Promise.resolve();
    for (const nodeId of nodeIds) this.#local.delete(nodeId);
    this.#forget(nodeIds);
    return this.#send({ down: nodeIds }, sourceNode);
  }

  /** Calls `listener` with each node that goes away (its in-flight direct requests fail at once). */
  onDown(listener: (nodeId: string) => void): () => void {
    this.#downListeners.add(listener);
    return () => void this.#downListeners.delete(listener);
  }

  /**
   * A live node that answers `type` directly, round robin among them; undefined when none.
   * When none is known, it asks the namespace who answers and waits briefly for it (a
   * system's first request, or a responder that started a moment ago).
   */
  async pick(type: string): Promise<string | undefined> {
    let candidates = this.#matching(type);
    if (candidates.length === 0) {
      let discovery = this.#discoveries.get(type);
      if (!discovery) {
        discovery = this.#discover(type).finally(() => this.#discoveries.delete(type));
        this.#discoveries.set(type, discovery);
      }
      await discovery;
      candidates = this.#matching(type);
    }
    if (candidates.length === 0) return undefined;
    this.#turn = (this.#turn + 1) % 1_000_000;
    return candidates[this.#turn % candidates.length];
  }

  #matching(type: string): string[] {
    const nodes: string[] = [];
    for (const [nodeId, responder] of this.#responders) if (responder.matchers.some((matches) => matches(type))) nodes.push(nodeId);
    return nodes;
  }

  /** Asks who answers, then waits until a responder of `type` shows up or the wait ends. */
  async #discover(type: string): Promise<void> {
    let arrived: () => void = () => {};
    const found = new Promise<void>((resolve) => {
      arrived = () => {
        if (this.#matching(type).length > 0) resolve();
      };
    });
    this.#arrivals.add(arrived);
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.#send({ who: true }, null);
      await Promise.race([found, new Promise<void>((resolve) => (timer = setTimeout(resolve, DISCOVERY_WAIT_MS)))]);
    } finally {
      clearTimeout(timer);
      this.#arrivals.delete(arrived);
    }
  }

  #receive(news: ResponderNews): void {
    if ("who" in news) {
      for (const [nodeId, patterns] of this.#local) void this.#send({ up: nodeId, patterns }, nodeId);
    } else if ("up" in news) {
      this.#learn(news.up, news.patterns);
      this.#arrivals.forEach((arrived) => arrived());
    } else if (Array.isArray(news.down)) {
      this.#forget(news.down.filter((nodeId) => !this.#local.has(nodeId)));
    }
  }

  #learn(nodeId: string, patterns: string[]): void {
    this.#responders.set(nodeId, { patterns, matchers: patterns.map(patternMatcher) });
  }

  #forget(nodeIds: string[]): void {
    for (const nodeId of nodeIds) {
      if (!this.#responders.delete(nodeId)) continue;
      this.#downListeners.forEach((listener) => listener(nodeId));
    }
  }

  async #send(news: ResponderNews, sourceNode: string | null): Promise<void> {
    try {
      await this.#broadcasts.send(RESPONDERS_CHANNEL, news, sourceNode);
    } catch (error) {
      this.#logger.warn({ err: asError(error) }, "could not broadcast a change of the direct responders");
    }
  }
}
