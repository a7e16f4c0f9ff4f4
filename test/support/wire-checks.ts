import assert from 'node:assert/strict';
import { MAX_ID_LENGTH, parseResumeId } from '../../src/protocol/ids.js';
import type { StreamEvent } from './chaos/event-stream.js';
import type { WsFrame } from './ws-client.js';

/** The module's own events that may appear on an SSE stream (heartbeats are comments). */
export const SSE_CONTROL_EVENTS = ['pushlet:connected', 'pushlet:reset'] as const;
/** The module's own events that may appear on a WebSocket (this module's commands only). */
export const WS_CONTROL_EVENTS = ['pushlet:connected', 'pushlet:subscribed', 'pushlet:unsubscribed', 'pushlet:pong', 'pushlet:error', 'pushlet:reset'] as const;

/** True for an id the server may hand to a client: within the grammar and the bound. */
export function isValidWireId(id: unknown): boolean {
  return typeof id === 'string' && id.length <= MAX_ID_LENGTH && parseResumeId(id) !== undefined;
}

/**
 * What every SSE stream must satisfy whatever the request held: only the module's control events
 * and `allowed` event types are dispatched, every `id` field is a valid id within 256 characters,
 * reset frames carry no id, and none of `forbidden` (what the client sent) is in the raw text.
 */
export function assertCleanEventStream(
  events: readonly StreamEvent[],
  raw: string,
  allowed: readonly string[],
  forbidden: readonly string[] = [],
  resetIds: 'absent' | 'valid' = 'absent',
): void {
  const types = new Set<string>([...SSE_CONTROL_EVENTS, ...allowed]);
  for (const event of events) {
    if (event.data !== undefined) assert.ok(types.has(event.event), `unexpected event type ${JSON.stringify(event.event)}`);
    if (event.id !== undefined) assert.ok(isValidWireId(event.id), `invalid id field ${JSON.stringify(event.id.slice(0, 300))}`);
    // Nest's @Sse() numbers every event without an id: there a reset carries the resume id instead.
    if (event.event === 'pushlet:reset' && resetIds === 'absent') assert.equal(event.id, undefined, 'a reset frame carries no id');
  }
  for (const attack of forbidden) {
    assert.ok(!raw.includes(attack), `the raw stream holds what the client sent: ${JSON.stringify(attack.slice(0, 80))}`);
  }
}

/** What a WebSocket test sent that must not come back: never as it came, or not at all. */
export interface WsForbidden {
  /** Must not appear unencoded (a topic may be named back, but only as a JSON string). */
  readonly raw?: readonly string[];
  /** Must not appear at all, neither as it came nor JSON-encoded (lastEventId, refused refs, actions). */
  readonly echoed?: readonly string[];
}

/**
 * The same for WebSocket frames: each one a JSON object whose `event` is a control event or one of
 * `allowed`, whose `id` (when present) is a valid id, and resets without an id; and nothing the
 * client sent comes back as `forbidden` says.
 */
export function assertCleanWsFrames(frames: readonly WsFrame[], allowed: readonly string[], forbidden: WsForbidden = {}): void {
  const types = new Set<string>([...WS_CONTROL_EVENTS, ...allowed]);
  for (const frame of frames) {
    assert.ok(
      frame.json !== undefined && typeof frame.json === 'object' && !Array.isArray(frame.json),
      `a frame is not a JSON object: ${frame.text.slice(0, 200)}`,
    );
    const json = frame.json;
    assert.ok(types.has(String(json.event)), `unexpected event ${JSON.stringify(json.event)}`);
    if ('id' in json) assert.ok(isValidWireId(json.id), `invalid id ${JSON.stringify(String(json.id).slice(0, 300))}`);
    if (json.event === 'pushlet:reset') assert.ok(!('id' in json), 'a reset frame carries no id');
    for (const attack of [...(forbidden.raw ?? []), ...(forbidden.echoed ?? [])]) {
      assert.ok(!frame.text.includes(attack), `a frame holds what the client sent: ${JSON.stringify(attack.slice(0, 80))}`);
    }
    for (const attack of forbidden.echoed ?? []) {
      const encoded = JSON.stringify(attack).slice(1, -1);
      assert.ok(!frame.text.includes(encoded), `a frame echoes what the client sent: ${encoded.slice(0, 80)}`);
    }
  }
}
