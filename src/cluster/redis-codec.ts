import { Envelope } from '../core/envelope.js';
import { formatId, parseId, type ParsedId } from '../core/message-id.js';

/**
 * What the Redis broker stores in a stream entry (field `m`) and publishes (`<id> <body>`):
 * `[topic, event, data, origin, counter]` as JSON. `origin` is the publishing broker's random
 * id and `counter` its publication number: together they let receivers drop a publication that
 * reaches them twice (sent again after a connection loss left its fate unknown).
 */
export interface WireMessage {
  readonly topic: string;
  readonly event: string;
  readonly data: string;
  readonly origin: string;
  readonly counter: number;
}

/** A message read from Redis, with its id and origin. */
export interface Received {
  readonly envelope: Envelope;
  readonly origin: string;
  readonly counter: number;
}

export function encodeBody(message: WireMessage): string {
  return JSON.stringify([message.topic, message.event, message.data, message.origin, message.counter]);
}

export function decodeBody(body: string): WireMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length < 5) return undefined;
  const [topic, event, data, origin, counter] = value as unknown[];
  if (typeof topic !== 'string' || typeof event !== 'string' || typeof data !== 'string') return undefined;
  if (typeof origin !== 'string' || typeof counter !== 'number') return undefined;
  return { topic, event, data, origin, counter };
}

/** Builds the envelope of a message read from Redis; `undefined` if it is not one of ours. */
export function receive(id: string, body: string): Received | undefined {
  const position = parseId(id);
  const message = decodeBody(body);
  if (!position || !message) return undefined;
  return {
    envelope: Envelope.create(position, message.topic, message.event, message.data),
    origin: message.origin,
    counter: message.counter,
  };
}

/**
 * Splits a pub/sub payload: one or more `<id> <body>` lines (a batch of one topic's messages,
 * see `PUBLISH_SCRIPT`), in id order. Lines that are not ours are skipped.
 */
export function receivePublications(payload: string): Received[] {
  const out: Received[] = [];
  let from = 0;
  while (from < payload.length) {
    let end = payload.indexOf('\n', from);
    if (end < 0) end = payload.length;
    const space = payload.indexOf(' ', from);
    if (space > from && space < end) {
      const received = receive(payload.slice(from, space), payload.slice(space + 1, end));
      if (received) out.push(received);
    }
    from = end + 1;
  }
  return out;
}

/** A position in the text form Redis takes (`XRANGE key (<id> +` reads after it). */
export function idText(position: ParsedId): string {
  return formatId(position.ms, position.seq);
}
