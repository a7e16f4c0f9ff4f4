/**
 * The ISO 8601 text of millisecond `ms` (message and notice timestamps). `toISOString` costs
 * about half a microsecond, as much as the rest of a publication in memory: the last one is kept,
 * since messages and notices come in runs of the same millisecond.
 */
let isoMs = Number.NaN;
let isoText = '';

export function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}
