import type { EventEmitter } from 'node:events';
import { drained } from './drain.js';

/** What a {@link BoundedWriter} watches: the bytes a connection has queued, and where they drain. */
export interface WriteQueue {
  /** Bytes written but not yet taken by the kernel. */
  queuedBytes(): number;
  /** Emits `drain` (and `close`) as the queue empties. */
  readonly drainSource: EventEmitter;
}

/** Who a {@link BoundedWriter} tells when its connection falls behind (an object, not a closure: one fewer per connection). */
export interface OverflowHandler {
  overflow(): void;
}

/**
 * One connection's outgoing bound, for every transport: what the client has not read yet stays
 * within `limit` bytes; past it the connection is a slow consumer and `owner.overflow()` runs once (the
 * session then ends it, and the client resumes from its last id). A frame larger than what is
 * left is still written when nothing is queued, so that one large message (within
 * `limits.maxMessageBytes`) can never cut every subscriber off. Replays are paced by
 * {@link whenWritable}.
 */
export class BoundedWriter {
  private overflowed = false;

  constructor(
    private readonly queue: WriteQueue,
    private readonly limit: number,
    private readonly owner: OverflowHandler,
  ) {}

  /** True when `bytes` more may be queued; otherwise reports the overflow (once) and returns false. */
  admit(bytes: number): boolean {
    if (this.overflowed) return false;
    const queued = this.queue.queuedBytes();
    if (queued === 0 || queued + bytes <= this.limit) return true;
    this.overflowed = true;
    this.owner.overflow();
    return false;
  }

  /** A promise that resolves once half the bound has drained, or `undefined` when there is room now. */
  whenWritable(): Promise<void> | undefined {
    if (this.overflowed || this.queue.queuedBytes() < this.limit / 2) return undefined;
    return drained(this.queue.drainSource);
  }
}
