import type { Envelope } from '../core/envelope.js';
import type { DeliveryMeter } from '../core/counters.js';
import { noticeJson, type Notice } from '../protocol/frames.js';

const WS_FRAME = Symbol('pushlet:ws-frame');
const WS_TAIL = Symbol('pushlet:ws-tail');
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;

/**
 * Server-to-client frames (docs/protocol.md, "WebSocket"). Every frame is one UTF-8 JSON object,
 * sent as a binary frame (or a text frame with `ws: { frame: 'text' }`). A message is exactly
 * the message JSON, `{"id","topic","event","data","timestamp"}`; replies and notices have the
 * same shape (`protocol/frames.ts`).
 *
 * A message with its own id is encoded once per message and shared by every WebSocket client:
 * as a complete server frame (header and payload in one buffer, for connections that write to
 * their socket directly), and its payload alone, a view into that buffer (for `WebSocket.send`).
 */
class MessageEncoding {
  readonly payload: Buffer;
  private readonly frames: Partial<Record<number, Buffer>> = {};

  constructor(json: string, opcode: number) {
    const frame = serverFrame(Buffer.from(json), opcode);
    this.frames[opcode] = frame;
    this.payload = frame.subarray(frame.length - Buffer.byteLength(json));
  }

  frame(opcode: number): Buffer {
    return (this.frames[opcode] ??= serverFrame(this.payload, opcode));
  }
}

function messageEncoding(envelope: Envelope, opcode = OPCODE_BINARY): MessageEncoding {
  return envelope.encoded(WS_FRAME, opcode === OPCODE_BINARY ? encodeBinary : encodeText);
}

// Made once: looking an encoding up (every delivery does) allocates nothing.
const encodeBinary = (envelope: Envelope) => new MessageEncoding(envelope.json, OPCODE_BINARY);
const encodeText = (envelope: Envelope) => new MessageEncoding(envelope.json, OPCODE_TEXT);

/** The payload of a published message (the message JSON as UTF-8). */
export function messageFrame(envelope: Envelope): Buffer {
  return messageEncoding(envelope).payload;
}

/** The published message as a whole final, unmasked WebSocket frame, binary or text. */
export function messageWireFrame(envelope: Envelope, binary: boolean): Buffer {
  const opcode = binary ? OPCODE_BINARY : OPCODE_TEXT;
  return messageEncoding(envelope, opcode).frame(opcode);
}

/**
 * How WebSocket deliveries are counted, per frame type: the bytes of the whole shared frame,
 * header included (a Redis Cluster connection's own resume cursor is not counted apart). Read
 * once per message, from the encoding delivery has just cached.
 */
export const WS_METERS: Readonly<Record<'binary' | 'text', DeliveryMeter>> = {
  binary: { transport: 'ws', frameBytes: (envelope) => messageWireFrame(envelope, true).length },
  text: { transport: 'ws', frameBytes: (envelope) => messageWireFrame(envelope, false).length },
};

/**
 * A published message under a resume id of the connection's own (brokers that order ids per
 * topic): everything after the `id` member is encoded once per message and shared; each
 * connection writes `{"id":"<its id>"` in front. `framed` gives the whole WebSocket frame
 * (direct socket writes), otherwise the payload alone.
 */
export function messageWithId(envelope: Envelope, id: string, binary: boolean, framed: boolean): Buffer {
  const tail = envelope.encoded(WS_TAIL, (e) => {
    const json = e.json;
    // JSON.stringify writes `id` first, and an id holds no quote: the tail starts at `,"topic":`.
    return Buffer.from(json.slice(json.indexOf(',"topic":')));
  });
  // Ids are printable ASCII without quotes or backslashes (protocol/ids.ts): no JSON escaping.
  const head = `{"id":"${id}"`;
  const length = head.length + tail.length;
  const header = framed ? frameHeaderLength(length) : 0;
  const out = Buffer.allocUnsafe(header + length);
  if (framed) writeFrameHeader(out, length, binary ? OPCODE_BINARY : OPCODE_TEXT);
  out.write(head, header, 'latin1');
  tail.copy(out, header + head.length);
  return out;
}

export function noticeFrame(notice: Notice, now = Date.now()): Buffer {
  return Buffer.from(noticeJson(notice, now));
}

/** RFC 6455 section 5.2: FIN, opcode, payload length (7, 7+16 or 7+64 bits), no mask. */
function serverFrame(payload: Buffer, opcode: number): Buffer {
  const frame = Buffer.allocUnsafe(frameHeaderLength(payload.length) + payload.length);
  const header = writeFrameHeader(frame, payload.length, opcode);
  payload.copy(frame, header);
  return frame;
}

function frameHeaderLength(length: number): number {
  return length < 126 ? 2 : length < 65_536 ? 4 : 10;
}

function writeFrameHeader(frame: Buffer, length: number, opcode: number): number {
  const header = frameHeaderLength(length);
  frame[0] = 0x80 | opcode;
  if (header === 2) {
    frame[1] = length;
  } else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  return header;
}
