/**
 * Server-Sent Events framing as text (docs/protocol.md, "Server-Sent Events"). Every field is made
 * safe here, whatever the caller passes: no value can forge a field or end a frame early.
 */

const LINE_BREAK = /\r\n|\r|\n/;
const FIELD_BREAKER = /[\r\n\0]/;
const FIELD_BREAKERS = /[\r\n\0]/g;

/** Headers of every event stream. */
export const SSE_HEADERS = {
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  Connection: 'keep-alive',
  'X-Accel-Buffering': 'no',
} as const;

/**
 * What a message frame's `data:` lines hold (`?format=` on the SSE URL):
 * - `text` (the default, the Go original's wire): the message's data as is;
 * - `json`: the message as JSON without its id, `{"topic","event","data","timestamp"}`, so that
 *   a client of several topics knows each message's topic. The frame's `id:` line stays the id.
 * Notices (`pushlet:*` events) are the same in both.
 */
export type SseFormat = 'text' | 'json';

/** The format a request asked for, or `undefined` when the value is not one. */
export function parseSseFormat(value: string | null): SseFormat | undefined {
  if (value === null || value === '' || value === 'text') return 'text';
  return value === 'json' ? 'json' : undefined;
}

/** The `data` of a message frame in the `json` format. */
export function sseJsonData(message: { readonly topic: string; readonly event: string; readonly data: string; readonly timestamp: string }): string {
  return JSON.stringify({ topic: message.topic, event: message.event, data: message.data, timestamp: message.timestamp });
}

/** One `data:` line per line of the payload, split on CRLF, CR or LF. */
export function sseDataLines(data: string): string {
  if (!LINE_BREAK.test(data)) return `data: ${data}\n`;
  let out = '';
  for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out;
}

/** A single-line field value: CR, LF and NUL removed (ids and event names never hold them). */
export function sseFieldValue(value: string): string {
  return FIELD_BREAKER.test(value) ? value.replace(FIELD_BREAKERS, '') : value;
}

/** The `id:` line of a frame. */
export function sseIdLine(id: string): string {
  return `id: ${sseFieldValue(id)}\n`;
}

/** A frame without its `id:` line: `event:`, the `data:` lines and the blank line that ends it. */
export function sseEventBody(event: string, data: string): string {
  return `event: ${sseFieldValue(event)}\n${sseDataLines(data)}\n`;
}

/** A complete frame. */
export function sseFrame(event: string, data: string, id?: string): string {
  return `${id === undefined ? '' : sseIdLine(id)}${sseEventBody(event, data)}`;
}

/** A comment line (heartbeats). */
export function sseComment(text: string): string {
  return `: ${sseFieldValue(text)}\n\n`;
}
