/**
 * Message ids are `<milliseconds>-<sequence>`, the shape of Redis stream ids, so that the
 * in-memory broker and the Redis broker hand out ids that compare the same way. Ids are
 * ordered first by time, then by sequence; within one broker they follow publication order.
 */
export interface ParsedId {
  readonly ms: number;
  readonly seq: number;
}

const ID_PATTERN = /^(\d{1,15})-(\d{1,15})$/;

/** Parses an id a client handed back; `undefined` for anything that is not a well-formed id. */
export function parseId(id: unknown): ParsedId | undefined {
  if (typeof id !== 'string' || id.length > 40) return undefined;
  const match = ID_PATTERN.exec(id);
  if (!match) return undefined;
  return { ms: Number(match[1]), seq: Number(match[2]) };
}

export function formatId(ms: number, seq: number): string {
  return `${ms}-${seq}`;
}

/** Negative when `a` comes before `b`. */
export function compareIds(a: ParsedId, b: ParsedId): number {
  return a.ms - b.ms || a.seq - b.seq;
}

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
