import type { PushletMessage } from '../interfaces/message.interface.js';
import { formatPosition, type Position } from '../protocol/ids.js';
import { isoTime } from '../protocol/iso-time.js';

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
    readonly position: Position,
    /** When the message was recorded (ms since the epoch): its position's `ms` unless the broker says otherwise. */
    readonly time: number,
    json?: string,
  ) {
    this.jsonText = json;
  }

  /** `time`: when it was recorded, for a broker whose positions are not times (`BrokerRecord.time`). */
  static create(position: Position, topic: string, event: string, data: string, time = position.ms): Envelope {
    const message: PushletMessage = {
      id: formatPosition(position),
      topic,
      event,
      data,
      timestamp: isoTime(time),
    };
    return new Envelope(message, position, time);
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
