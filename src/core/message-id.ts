import { comparePositions, formatPosition, parsePosition, type Position } from '../protocol/ids.js';

/**
 * Message ids are positions `<milliseconds>-<sequence>` (see `protocol/ids.ts`), the shape of
 * Redis stream ids, so that the in-memory broker and the Redis broker hand out ids that compare
 * the same way.
 */
export type ParsedId = Position;
export const parseId = parsePosition;
export const formatId = (ms: number, seq: number): string => formatPosition({ ms, seq });
export const compareIds = comparePositions;

/** Hands out strictly increasing ids for one process. */
export class IdGenerator {
  private lastMs = 0;
  private seq = 0;

  /** The last id handed out (or the generator's start). */
  current(): ParsedId {
    return { ms: this.lastMs, seq: this.seq };
  }

  next(now = Date.now()): ParsedId {
    if (now > this.lastMs) {
      this.lastMs = now;
      this.seq = 0;
    } else {
      this.seq += 1;
    }
    return { ms: this.lastMs, seq: this.seq };
  }
}
