import type { PushletMessage } from '../interfaces/message.interface.js';
import { formatId, parseId, type ParsedId } from './message-id.js';

/**
 * A published message together with its encodings. Each transport encodes a message once, on
 * first use, and every subscriber of that transport writes the same bytes: serialisation costs
 * once per message and protocol, never once per subscriber.
 */
export class Envelope {
  private jsonText: string | undefined;
  private readonly encodings = new Map<symbol, unknown>();

  private constructor(
    readonly message: PushletMessage,
    readonly position: ParsedId,
    json?: string,
  ) {
    this.jsonText = json;
  }

  static create(position: ParsedId, topic: string, event: string, data: string): Envelope {
    const message: PushletMessage = {
      id: formatId(position.ms, position.seq),
      topic,
      event,
      data,
      timestamp: new Date(position.ms).toISOString(),
    };
    return new Envelope(message, position);
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
    let value = this.encodings.get(key) as T | undefined;
    if (value === undefined) {
      value = encode(this);
      this.encodings.set(key, value);
    }
    return value;
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
