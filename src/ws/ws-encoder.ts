import type { Envelope } from '../core/envelope.js';
import { MESSAGES } from '../pushlet.messages.js';
import type { WsRef } from './ws-commands.js';

const WS_FRAME = Symbol('pushlet:ws-frame');

/**
 * Server-to-client frames (PROTOCOL.md, "WebSocket"). Every frame is one UTF-8 JSON object,
 * sent as a binary frame (or a text frame with `ws: { frame: 'text' }`).
 *
 * A message is exactly the message JSON: `{"id","topic","event","data","timestamp"}`.
 *
 * Replies and notices have the same shape, so that clients written for messages (the Go client
 * reads `event`, `data`, `timestamp`) can read them too: `data` is always a string, `timestamp`
 * the time the frame was written, and `id`, `topic` and `ref` appear where they apply:
 *
 * - `pushlet:connected`: first frame. `id` = the position to resume from if the connection drops
 *   before its first message; `data` = `{"topics":[…]}` (the URL topics subscribed).
 * - `pushlet:subscribed` / `pushlet:unsubscribed`: `topic`, `ref`; `data` = `{"topics":[…]}`, the
 *   connection's topics afterwards. `subscribed` is sent once the topic is live, after any replay.
 * - `pushlet:pong`: `ref`; `data` = `""`.
 * - `pushlet:error`: `data` = why, in words; `topic` and `ref` when the command carried them.
 * - `pushlet:reset`: `id` = the `lastEventId` that cannot be resumed completely, `ref` of the
 *   subscribe that asked for it; `data` = `{"topics":[…],"reason":"…"}`. Sent before the replay.
 */
export type WsNoticeEvent =
  | 'pushlet:connected'
  | 'pushlet:subscribed'
  | 'pushlet:unsubscribed'
  | 'pushlet:pong'
  | 'pushlet:error'
  | 'pushlet:reset';

export interface WsNotice {
  readonly event: WsNoticeEvent;
  readonly data: string;
  readonly id?: string;
  readonly topic?: string;
  readonly ref?: WsRef;
}

/**
 * A published message, encoded once per message and shared by every WebSocket client: as a
 * complete server frame (header and payload in one buffer, for connections that write to their
 * socket directly), and its payload alone, a view into that buffer (for `WebSocket.send`).
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

const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;

function messageEncoding(envelope: Envelope, opcode = OPCODE_BINARY): MessageEncoding {
  return envelope.encoded(WS_FRAME, (e) => new MessageEncoding(e.json, opcode));
}

/** The payload of a published message (the message JSON as UTF-8). */
export function messageFrame(envelope: Envelope): Buffer {
  return messageEncoding(envelope).payload;
}

/** The published message as a whole final, unmasked WebSocket frame, binary or text. */
export function messageWireFrame(envelope: Envelope, binary: boolean): Buffer {
  const opcode = binary ? OPCODE_BINARY : OPCODE_TEXT;
  return messageEncoding(envelope, opcode).frame(opcode);
}

/** RFC 6455 section 5.2: FIN, opcode, payload length (7, 7+16 or 7+64 bits), no mask. */
function serverFrame(payload: Buffer, opcode: number): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
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
  payload.copy(frame, header);
  return frame;
}

export function noticeFrame({ id, topic, event, data, ref }: WsNotice, now = new Date()): Buffer {
  // Keys in message order; `undefined` ones are left out by JSON.stringify.
  return Buffer.from(JSON.stringify({ id, topic, event, data, timestamp: now.toISOString(), ref }));
}

export function connectedFrame(position: string, topics: readonly string[]): Buffer {
  return noticeFrame({ event: 'pushlet:connected', id: position, data: JSON.stringify({ topics }) });
}

export function subscribedFrame(topic: string, topics: readonly string[], ref: WsRef | undefined): Buffer {
  return noticeFrame({ event: 'pushlet:subscribed', topic, ref, data: JSON.stringify({ topics }) });
}

export function unsubscribedFrame(topic: string, topics: readonly string[], ref: WsRef | undefined): Buffer {
  return noticeFrame({ event: 'pushlet:unsubscribed', topic, ref, data: JSON.stringify({ topics }) });
}

export function pongFrame(ref: WsRef | undefined): Buffer {
  return noticeFrame({ event: 'pushlet:pong', ref, data: '' });
}

export function errorFrame(reason: string, about: { topic?: string; ref?: WsRef } = {}): Buffer {
  return noticeFrame({ event: 'pushlet:error', topic: about.topic, ref: about.ref, data: reason });
}

export function resetFrame(lastEventId: string, topics: readonly string[], ref: WsRef | undefined): Buffer {
  const data = JSON.stringify({ topics, reason: MESSAGES.resetUnknownId });
  return noticeFrame({ event: 'pushlet:reset', id: lastEventId, ref, data });
}
