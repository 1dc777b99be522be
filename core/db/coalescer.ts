/**
 * Coalescing: calls made in the same turn of the event loop are sent together, as one
 * statement and one commit. On this kind of machine a commit costs ~0.1-0.4 ms, so a
 * hundred concurrent emits or requests cost one commit instead of a hundred (DESIGN.md,
 * performance model). Used by emits (publisher.ts), requests and direct messages
 * (requests/inbox.ts). A `serial` coalescer keeps one chunk in flight: what arrives
 * meanwhile waits and leaves in the next chunk, so chunks commit in the order they were
 * made (direct messages keep their order across turns this way).
 */

interface Waiting<TItem, TResult> {
  item: TItem;
  resolve: (result: TResult) => void;
  reject: (error: unknown) => void;
}

/** Collects items and sends each turn's items through `send` (in chunks of at most `maxWeight`). */
export class Coalescer<TItem, TResult> {
  #waiting: Waiting<TItem, TResult>[] = [];
  #scheduled = false;
  #inFlight = false;

  /**
   * @param send sends a chunk of items and returns one result per item, in order; a
   *   rejection fails every item of the chunk (they shared one transaction).
   * @param weight how much of a chunk an item takes (an emit of 50 events takes 50).
   * @param serial one chunk in flight at a time (see the module comment).
   */
  constructor(
    private readonly send: (items: TItem[]) => Promise<TResult[]>,
    private readonly weight: (item: TItem) => number = () => 1,
    private readonly maxWeight = 500,
    private readonly serial = false,
  ) {}

  /** Queues `item` for this turn's chunk; resolves with its result. */
  add(item: TItem): Promise<TResult> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    if (!this.serial) {
      while (this.#waiting.length > 0) void this.#sendChunk(this.#takeChunk());
      return;
    }
    if (this.#inFlight || this.#waiting.length === 0) return;
    this.#inFlight = true;
    void this.#sendChunk(this.#takeChunk()).finally(() => {
      this.#inFlight = false;
      this.#flush();
    });
  }

  #takeChunk(): Waiting<TItem, TResult>[] {
    let total = 0;
    let take = 0;
    while (take < this.#waiting.length && (take === 0 || total + this.weight(this.#waiting[take]!.item) <= this.maxWeight)) {
      total += this.weight(this.#waiting[take]!.item);
      take += 1;
    }
    return this.#waiting.splice(0, take);
  }

  async #sendChunk(chunk: Waiting<TItem, TResult>[]): Promise<void> {
    try {
      const results = await this.send(chunk.map((waiting) => waiting.item));
      chunk.forEach((waiting, index) => waiting.resolve(results[index]!));
    } catch (error) {
      for (const waiting of chunk) waiting.reject(error);
    }
  }
}
