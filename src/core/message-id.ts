import type { Position } from '../protocol/ids.js';

/**
 * Message ids are positions `<milliseconds>-<sequence>` (see `protocol/ids.ts`, which parses,
 * formats and compares them), the shape of Redis stream ids, so that the in-memory broker and
 * the Redis broker hand out ids that compare the same way.
 */

/** Hands out strictly increasing positions for one process. */
export class IdGenerator {
  private lastMs = 0;
  private seq = 0;

  /** The last position handed out (or the generator's start). */
  current(): Position {
    return { ms: this.lastMs, seq: this.seq };
  }

  next(now = Date.now()): Position {
    if (now > this.lastMs) {
      this.lastMs = now;
      this.seq = 0;
    } else {
      this.seq += 1;
    }
    return { ms: this.lastMs, seq: this.seq };
  }
}
