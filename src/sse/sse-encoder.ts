import type { Envelope } from '../core/envelope.js';

const SSE_FRAME = Symbol('pushlet:sse-frame');
const LINE_BREAK = /\r\n|\r|\n/;

/** Headers of every event stream (PROTOCOL.md, "Server-Sent Events"). */
export const SSE_HEADERS = {
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  Connection: 'keep-alive',
  'X-Accel-Buffering': 'no',
} as const;

/**
 * One `data:` line per line of the payload, split on CRLF, CR or LF, so that no payload can
 * forge a field or end a frame early.
 */
function dataLines(data: string): string {
  if (!LINE_BREAK.test(data)) return `data: ${data}\n`;
  let out = '';
  for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out;
}

/** A complete SSE frame. `id` and `event` must already be free of line breaks. */
export function encodeFrame(event: string, data: string, id?: string): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\n${dataLines(data)}\n`;
}

/** The frame of a published message, encoded once per message and shared by every SSE client. */
export function messageFrame(envelope: Envelope): Buffer {
  return envelope.encoded(SSE_FRAME, ({ message }) => Buffer.from(encodeFrame(message.event, message.data, message.id)));
}

export function heartbeatFrame(now: Date): Buffer {
  return Buffer.from(`: heartbeat ${now.toISOString()}\n\n`);
}
