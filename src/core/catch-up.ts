import { comparePositions, type Position } from '../protocol/ids.js';

/**
 * The newest position one topic has delivered to its receiver. Anything at or before it is a
 * copy (the same message from history and from the live stream) and is dropped.
 */
export class TopicPosition {
  constructor(public last: Position | undefined = undefined) {}

  /** True, and remembers `position`, when it is newer than everything delivered so far. */
  advance(position: Position): boolean {
    if (this.last && comparePositions(position, this.last) <= 0) return false;
    this.last = position;
    return true;
  }
}

/**
 * "Hold live messages while history is read, deliver the history, then what was held, then go
 * live", written once. The feed uses it when a client resumes; the Redis broker when an instance
 * recovers after a lost link. Copies are not its business: receivers drop them with
 * {@link TopicPosition}.
 */
export class CatchUp<T> {
  private held: T[] | undefined = [];

  /** True until {@link finish} has handed out everything held. */
  get active(): boolean {
    return this.held !== undefined;
  }

  get heldCount(): number {
    return this.held?.length ?? 0;
  }

  /** Holds `item` while catching up; false once live (the caller delivers it now). */
  hold(item: T): boolean {
    if (!this.held) return false;
    this.held.push(item);
    return true;
  }

  /**
   * Delivers `replayed`, then everything held (including what arrives meanwhile), then goes live.
   * Stops early once `stopped()` says so; what is held is then dropped.
   */
  async finish(replayed: Iterable<T>, deliver: (item: T) => void | Promise<void>, stopped: () => boolean = () => false): Promise<void> {
    try {
      for (const item of replayed) {
        if (stopped()) return;
        await deliver(item);
      }
      const held = this.held ?? [];
      for (let i = 0; i < held.length && !stopped(); i++) await deliver(held[i]!);
    } finally {
      this.held = undefined;
    }
  }

  /** Stops holding and hands back what was held, for the caller to deliver or drop. */
  abandon(): T[] {
    const held = this.held ?? [];
    this.held = undefined;
    return held;
  }
}
