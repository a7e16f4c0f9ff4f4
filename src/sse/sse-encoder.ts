import type { Envelope } from '../core/envelope.js';

const SSE_FRAME = Symbol('pushlet:sse-frame');
const LINE_BREAK = /\r\n|\r|\n/;
const CRLF = Buffer.from('\r\n');

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

/** A published message's SSE frame, bare and as one HTTP/1.1 chunk (`<size>\r\n<frame>\r\n`). */
export interface SseMessageEncoding {
  readonly frame: Buffer;
  readonly chunk: Buffer;
}

/**
 * The frame of a published message, encoded once per message and shared by every SSE client:
 * bare for responses written through `ServerResponse.write`, and already framed as an HTTP
 * chunk for connections that write chunked responses straight to their socket. One buffer holds
 * both (the bare frame is a view into the chunk); it is dropped once live delivery is done
 * ({@link Envelope.releaseEncodings}), and rebuilt only if a replay needs it.
 */
export function messageEncoding(envelope: Envelope): SseMessageEncoding {
  return envelope.encoded(SSE_FRAME, ({ message }) => {
    const text = encodeFrame(message.event, message.data, message.id);
    const length = Buffer.byteLength(text);
    const head = `${length.toString(16)}\r\n`;
    const chunk = Buffer.allocUnsafe(head.length + length + 2);
    chunk.write(head, 0, 'latin1');
    chunk.write(text, head.length, 'utf8');
    chunk.write('\r\n', head.length + length, 'latin1');
    return { chunk, frame: chunk.subarray(head.length, head.length + length) };
  });
}

/** The bare frame of a published message (see {@link messageEncoding}). */
export function messageFrame(envelope: Envelope): Buffer {
  return messageEncoding(envelope).frame;
}

/** `frame` framed as one chunk of a `Transfer-Encoding: chunked` body. */
export function httpChunk(frame: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${frame.length.toString(16)}\r\n`, 'latin1'), frame, CRLF]);
}

export function heartbeatFrame(now: Date): Buffer {
  return Buffer.from(`: heartbeat ${now.toISOString()}\n\n`);
}
