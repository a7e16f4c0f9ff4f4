/**
 * Ids and resume cursors (docs/protocol.md, "Ids" and "Resume: no message lost").
 *
 * A position is `<milliseconds>-<sequence>`, the shape of Redis stream ids. Brokers whose ids
 * are totally ordered across topics (in memory, one Redis server) hand out plain positions, and
 * the id of the last message a client saw resumes every topic of its connection.
 *
 * Where each topic numbers its own ids (Redis Cluster), a connection shows its client a cursor
 * instead: `c1_<base>` followed by one `.<topic hash>_<ms - base>_<seq>` per topic, numbers in
 * base 36. It carries each topic's own position and stays within {@link MAX_ID_LENGTH}.
 *
 * Everything a client sends back is checked against this grammar before anything else, and
 * never written back as it came.
 */
export interface Position {
  readonly ms: number;
  readonly seq: number;
}

/** Longest id handed to a client, and longest one accepted from it. */
export const MAX_ID_LENGTH = 256;
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;
const PLAIN = /^(\d{1,15})-(\d{1,15})$/;
const CURSOR_PREFIX = 'c1_';
const ENTRY = /^([0-9a-z]{1,7})_([0-9a-z]{1,9})_([0-9a-z]{1,9})$/;
const BASE36 = /^[0-9a-z]{1,11}$/;

/** Negative when `a` comes before `b`. */
export function comparePositions(a: Position, b: Position): number {
  return a.ms - b.ms || a.seq - b.seq;
}

/** The largest sequence every id form can carry (a cursor entry's 9 base-36 digits, a plain id's 15 decimal ones). */
export const MAX_SEQ = 36 ** 9 - 1;

/**
 * The latest position before `position` that ids can express: `<ms>-<seq - 1>`, or
 * `<ms - 1>-<MAX_SEQ>` for a sequence of 0 (every broker's sequences stay far below it). A start
 * there replays `position` and everything after it.
 */
export function positionBefore(position: Position): Position {
  if (position.seq > 0) return { ms: position.ms, seq: position.seq - 1 };
  return position.ms > 0 ? { ms: position.ms - 1, seq: MAX_SEQ } : position;
}

export function formatPosition(position: Position): string {
  return `${position.ms}-${position.seq}`;
}

/** A plain position, or `undefined` for anything else. */
export function parsePosition(text: unknown): Position | undefined {
  if (typeof text !== 'string' || text.length > 31) return undefined;
  const match = PLAIN.exec(text);
  if (!match) return undefined;
  const ms = Number(match[1]);
  const seq = Number(match[2]);
  return Number.isSafeInteger(ms) && Number.isSafeInteger(seq) ? { ms, seq } : undefined;
}

/** What a client's id says, once checked against the grammar. */
export type ResumeId =
  { readonly kind: 'position'; readonly position: Position } | { readonly kind: 'cursor'; readonly positions: ReadonlyMap<string, Position> };

/**
 * Reads an id a client handed back (header, query parameter or command field): `undefined` for
 * anything that is not a well-formed id of this protocol (too long, not printable ASCII, neither
 * a position nor a cursor). Cursor positions are keyed by {@link topicHash}.
 */
export function parseResumeId(text: unknown): ResumeId | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_ID_LENGTH || !PRINTABLE_ASCII.test(text)) {
    return undefined;
  }
  if (!text.startsWith(CURSOR_PREFIX)) {
    const position = parsePosition(text);
    return position && { kind: 'position', position };
  }
  // A cursor of no entries is valid: it places no topic (each resumes with a reset).
  const [baseText, ...entries] = text.slice(CURSOR_PREFIX.length).split('.');
  if (baseText === undefined || !BASE36.test(baseText)) return undefined;
  const base = parseInt(baseText, 36);
  const positions = new Map<string, Position>();
  // Two topics of one connection may share a hash: such an entry cannot say which topic it
  // places, so it places neither (both resume with a reset); the other entries still count.
  const ambiguous = new Set<string>();
  for (const entry of entries) {
    const match = ENTRY.exec(entry);
    if (!match) return undefined;
    const ms = base + parseInt(match[2]!, 36);
    const seq = parseInt(match[3]!, 36);
    if (!Number.isSafeInteger(ms)) return undefined;
    if (positions.has(match[1]!)) ambiguous.add(match[1]!);
    positions.set(match[1]!, { ms, seq });
  }
  for (const hash of ambiguous) positions.delete(hash);
  return { kind: 'cursor', positions };
}

/** One topic's entry in a cursor whose base is `base` (milliseconds): `.<hash>_<ms - base>_<seq>`. */
export function cursorEntry(hash: string, position: Position, base: number): string {
  return `.${hash}_${(position.ms - base).toString(36)}_${position.seq.toString(36)}`;
}

/** The start of a cursor whose base is `base` (milliseconds); its entries follow. */
export function cursorHead(base: number): string {
  return CURSOR_PREFIX + base.toString(36);
}

/**
 * Writes a cursor of topic positions (keyed by {@link topicHash}), in the order given. Entries that
 * would take it past {@link MAX_ID_LENGTH} are left out: a resume finds no position for those
 * topics and says so with a reset.
 */
export function formatCursor(entries: ReadonlyArray<readonly [hash: string, position: Position]>): string {
  let base = Infinity;
  for (const [, position] of entries) if (position.ms < base) base = position.ms;
  if (!Number.isFinite(base)) base = 0;
  let out = cursorHead(base);
  for (const [hash, position] of entries) {
    const entry = cursorEntry(hash, position, base);
    if (out.length + entry.length > MAX_ID_LENGTH) break;
    out += entry;
  }
  return out;
}

/** A short stable key for a topic inside a cursor: 32-bit FNV-1a of its UTF-16 code units, base 36. */
export function topicHash(topic: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) {
    hash ^= topic.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(36);
}
