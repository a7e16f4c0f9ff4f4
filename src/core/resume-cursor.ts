import { cursorEntry, cursorHead, MAX_ID_LENGTH, topicHash, type Position } from '../protocol/ids.js';

interface CachedEntry {
  position: Position;
  text: string;
  readonly hash: string;
}

/**
 * Writes a connection's resume cursor (brokers that order ids per topic) once per delivery,
 * cheaply: each topic's entry is kept as text and rebuilt only when that topic's position moved,
 * and the base stays put unless a position falls below it. The grammar is `protocol/ids.ts`.
 */
export class ResumeCursorWriter {
  private base: number | undefined;
  private head = '';
  private readonly cache = new Map<string, CachedEntry>();
  /** The last cursor written, while no position has moved since. */
  private written: string | undefined;

  /** The cursor for `positions` (each topic of the connection with its position, in order). */
  write(positions: ReadonlyMap<string, { readonly position: { readonly last: Position | undefined } }>): string {
    let base = this.base;
    for (const { position } of positions.values()) {
      const last = position.last;
      if (last && (base === undefined || last.ms < base)) base = last.ms;
    }
    if (base === undefined) base = 0;
    if (base !== this.base) {
      this.base = base;
      this.head = cursorHead(base);
      this.cache.clear();
      this.written = undefined;
    }
    if (this.written !== undefined && this.unchanged(positions)) return this.written;
    let out = this.head;
    for (const [topic, { position }] of positions) {
      const last = position.last;
      if (!last) continue;
      let cached = this.cache.get(topic);
      if (!cached) {
        const hash = topicHash(topic);
        cached = { position: last, text: cursorEntry(hash, last, base), hash };
        this.cache.set(topic, cached);
      } else if (cached.position !== last) {
        cached.position = last;
        cached.text = cursorEntry(cached.hash, last, base);
      }
      if (out.length + cached.text.length > MAX_ID_LENGTH) break;
      out += cached.text;
    }
    if (this.cache.size > positions.size) for (const topic of this.cache.keys()) if (!positions.has(topic)) this.cache.delete(topic);
    this.written = out;
    return out;
  }

  /** True when every topic is cached at its current position (and no other topic is). */
  private unchanged(positions: ReadonlyMap<string, { readonly position: { readonly last: Position | undefined } }>): boolean {
    let count = 0;
    for (const [topic, { position }] of positions) {
      if (!position.last) continue;
      count += 1;
      if (this.cache.get(topic)?.position !== position.last) return false;
    }
    return count === this.cache.size;
  }
}
