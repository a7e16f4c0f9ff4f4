import type { PushletMessage } from '../interfaces/message.interface.js';
import { formatId, parseId, type ParsedId } from './message-id.js';

/**
 * How a feed treats an envelope:
 * - `message`: a message with its final id; moves the feed's resume position (the default).
 * - `provisional`: a message delivered on this instance before its broker could record it (the
 *   Redis broker while Redis is unreachable). Its id is local, so it is delivered without moving
 *   the resume position: messages that others published meanwhile still pass when they are
 *   recovered later.
 * - `reset`: not a message but a notice that the broker may have lost messages of `topic` (its
 *   history was lost while this instance was cut off); feeds pass it on as a `pushlet:reset`.
 */
export type EnvelopeKind = 'message' | 'provisional' | 'reset';

/**
 * A published message together with its encodings. Each transport encodes a message once, on
 * first use, and every subscriber of that transport writes the same bytes: serialisation costs
 * once per message and protocol, never once per subscriber.
 */
export class Envelope {
  private jsonText: string | undefined;
  // Created on first use and dropped once live delivery is done: an envelope kept in history for
  // replays then costs only its message, not every protocol's bytes.
  private encodings: Map<symbol, unknown> | undefined;

  private constructor(
    readonly message: PushletMessage,
    readonly position: ParsedId,
    json?: string,
    readonly kind: EnvelopeKind = 'message',
  ) {
    this.jsonText = json;
  }

  static create(position: ParsedId, topic: string, event: string, data: string, kind: EnvelopeKind = 'message'): Envelope {
    const message: PushletMessage = {
      id: formatId(position.ms, position.seq),
      topic,
      event,
      data,
      timestamp: new Date(position.ms).toISOString(),
    };
    return new Envelope(message, position, undefined, kind);
  }

  /** A `reset` notice for the local subscribers of `topic` (see {@link EnvelopeKind}). */
  static resetNotice(topic: string, position: ParsedId): Envelope {
    return Envelope.create(position, topic, 'pushlet:reset', '', 'reset');
  }

  /** Rebuilds an envelope from the JSON text another instance published; `undefined` if it is not one. */
  static fromJson(json: string): Envelope | undefined {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      return undefined;
    }
    if (!isMessage(value)) return undefined;
    const position = parseId(value.id);
    if (!position) return undefined;
    const message: PushletMessage = {
      id: value.id,
      topic: value.topic,
      event: value.event,
      data: value.data,
      timestamp: value.timestamp,
    };
    return new Envelope(message, position, json);
  }

  get id(): string {
    return this.message.id;
  }

  get topic(): string {
    return this.message.topic;
  }

  /** The message as JSON text (`id`, `topic`, `event`, `data`, `timestamp`). */
  get json(): string {
    return (this.jsonText ??= JSON.stringify(this.message));
  }

  /** The encoding registered under `key`, computed on first use. */
  encoded<T>(key: symbol, encode: (envelope: Envelope) => T): T {
    const encodings = (this.encodings ??= new Map());
    let value = encodings.get(key) as T | undefined;
    if (value === undefined) {
      value = encode(this);
      encodings.set(key, value);
    }
    return value;
  }

  /** Forgets the cached encodings (they are rebuilt on demand, e.g. for a replay). */
  releaseEncodings(): void {
    this.encodings = undefined;
  }

}

function isMessage(value: unknown): value is PushletMessage {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === 'string' &&
    typeof v.topic === 'string' &&
    typeof v.event === 'string' &&
    typeof v.data === 'string' &&
    typeof v.timestamp === 'string'
  );
}
