import type { BrokerPublication, BrokerRecord } from '../interfaces/broker.interface.js';
import { formatPosition, parsePosition, type Position } from '../protocol/ids.js';

/**
 * What the Redis broker stores in a stream entry (field `m`) and publishes (`<id> <body>`):
 * `[topic, event, data, origin, counter]` as JSON. `origin` is the publishing broker's random
 * id and `counter` its publication number: together they let receivers drop a publication that
 * reaches them twice (sent again after a connection loss left its fate unknown).
 */
export type WireMessage = BrokerPublication;

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

/** The record of a message read from Redis; `undefined` if it is not one of ours. */
export function receive(id: string, body: string): BrokerRecord | undefined {
  const position = parsePosition(id);
  const message = decodeBody(body);
  if (!position || !message) return undefined;
  return { position, ...message };
}

/**
 * Splits a pub/sub payload: one or more `<id> <body>` lines (a batch of one topic's messages,
 * see `PUBLISH_SCRIPT`), in id order. Lines that are not ours are skipped.
 */
export function receivePublications(payload: string): BrokerRecord[] {
  const out: BrokerRecord[] = [];
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
export function idText(position: Position): string {
  return formatPosition(position);
}
