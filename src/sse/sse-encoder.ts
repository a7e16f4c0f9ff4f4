import type { Envelope } from '../core/envelope.js';
import type { DeliveryMeter } from '../core/counters.js';
import { sseComment, sseEventBody, sseFrame, sseIdLine, sseJsonData, type SseFormat } from '../protocol/sse.js';

export { SSE_HEADERS } from '../protocol/sse.js';

const SSE_FRAME = { text: Symbol('pushlet:sse-frame'), json: Symbol('pushlet:sse-json-frame') } as const;
const SSE_BODY = { text: Symbol('pushlet:sse-body'), json: Symbol('pushlet:sse-json-body') } as const;

/** What a message frame's `data:` lines hold in `format` (see {@link SseFormat}). */
function frameData(envelope: Envelope, format: SseFormat): string {
  return format === 'json' ? sseJsonData(envelope.message) : envelope.message.data;
}
const CRLF = Buffer.from('\r\n');

/** A published message's SSE frame, bare and as one HTTP/1.1 chunk (`<size>\r\n<frame>\r\n`). */
export interface SseMessageEncoding {
  readonly frame: Buffer;
  readonly chunk: Buffer;
}

/**
 * The frame of a published message with its own id, encoded once per message and shared by every
 * SSE client: bare for responses written through `ServerResponse.write`, and already framed as
 * an HTTP chunk for connections that write chunked responses straight to their socket. One
 * buffer holds both (the bare frame is a view into the chunk); it is dropped once live delivery
 * is done ({@link Envelope.releaseEncodings}), and rebuilt only if a replay needs it.
 */
export function messageEncoding(envelope: Envelope, format: SseFormat = 'text'): SseMessageEncoding {
  return envelope.encoded(SSE_FRAME[format], ENCODE_FRAME[format]);
}

// One encoder per format, made once: looking an encoding up (every delivery does) allocates nothing.
const ENCODE_FRAME: Readonly<Record<SseFormat, (envelope: Envelope) => SseMessageEncoding>> = {
  text: (envelope) => encodeFrame(envelope, 'text'),
  json: (envelope) => encodeFrame(envelope, 'json'),
};

function encodeFrame(envelope: Envelope, format: SseFormat): SseMessageEncoding {
  const { message } = envelope;
  const text = sseFrame(message.event, frameData(envelope, format), message.id);
  const length = Buffer.byteLength(text);
  const head = `${length.toString(16)}\r\n`;
  const chunk = Buffer.allocUnsafe(head.length + length + 2);
  chunk.write(head, 0, 'latin1');
  chunk.write(text, head.length, 'utf8');
  chunk.write('\r\n', head.length + length, 'latin1');
  return { chunk, frame: chunk.subarray(head.length, head.length + length) };
}

/**
 * How SSE deliveries are counted, per format: the bytes of the shared frame as an HTTP/1.1 chunk
 * (what a chunked response carries; a Redis Cluster connection's own resume cursor is not
 * counted apart). Read once per message, from the encoding delivery has just cached.
 */
export const SSE_METERS: Readonly<Record<SseFormat, DeliveryMeter>> = {
  text: { transport: 'sse', frameBytes: (envelope) => messageEncoding(envelope, 'text').chunk.length },
  json: { transport: 'sse', frameBytes: (envelope) => messageEncoding(envelope, 'json').chunk.length },
};

/**
 * A published message's frame under a resume id of the connection's own (brokers that order ids
 * per topic): the `event:` and `data:` lines are encoded once per message and shared; each
 * connection adds only its `id:` line in front.
 */
export function messageWithId(envelope: Envelope, id: string, chunked: boolean, format: SseFormat = 'text'): Buffer {
  const body = envelope.encoded(SSE_BODY[format], ({ message }) => Buffer.from(sseEventBody(message.event, frameData(envelope, format))));
  // Ids are printable ASCII (protocol/ids.ts), so one character is one byte.
  const idLine = sseIdLine(id);
  const length = idLine.length + body.length;
  const head = chunked ? `${length.toString(16)}\r\n` : '';
  const out = Buffer.allocUnsafe(head.length + length + (chunked ? 2 : 0));
  let at = out.write(head, 0, 'latin1');
  at += out.write(idLine, at, 'latin1');
  at += body.copy(out, at);
  if (chunked) {
    out[at] = 0x0d;
    out[at + 1] = 0x0a;
  }
  return out;
}

/** The bare frame of a published message (see {@link messageEncoding}). */
export function messageFrame(envelope: Envelope, format: SseFormat = 'text'): Buffer {
  return messageEncoding(envelope, format).frame;
}

/** `frame` framed as one chunk of a `Transfer-Encoding: chunked` body. */
export function httpChunk(frame: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${frame.length.toString(16)}\r\n`, 'latin1'), frame, CRLF]);
}

export function heartbeatFrame(now: Date): Buffer {
  return Buffer.from(sseComment(`heartbeat ${now.toISOString()}`));
}
