import type { RawData } from 'ws';
import { PushletValidationError } from '../core/errors.js';
import { assertSubscribableTopic } from '../core/topic.js';
import { MESSAGES } from '../pushlet.messages.js';

/** Whatever the client put in a command's `ref`; echoed in the reply. */
export type WsRef = string | number;

/**
 * Client-to-server commands, JSON in a text or binary frame (PROTOCOL.md, "WebSocket"):
 * `{"action":"subscribe","topic":"a","lastEventId"?:"…","ref"?:…}`,
 * `{"action":"unsubscribe","topic":"a","ref"?:…}`, `{"action":"ping","ref"?:…}`.
 * Other fields are ignored; `null` counts as absent for the optional ones.
 */
export type WsCommand =
  | { readonly action: 'subscribe'; readonly topic: string; readonly lastEventId?: string; readonly ref?: WsRef }
  | { readonly action: 'unsubscribe'; readonly topic: string; readonly ref?: WsRef }
  | { readonly action: 'ping'; readonly ref?: WsRef };

/** Why a frame is not a valid command, with what could be read of it (for the error frame). */
export interface WsCommandError {
  readonly reason: string;
  readonly topic?: string;
  readonly ref?: WsRef;
}

export type ParsedCommand = { readonly ok: true; readonly command: WsCommand } | { readonly ok: false; readonly error: WsCommandError };

type Fields = Record<string, unknown>;

/** Reads one command frame. Never throws: anything wrong comes back as an error to answer with. */
export function parseCommand(data: RawData): ParsedCommand {
  let value: unknown;
  try {
    value = JSON.parse(toText(data));
  } catch {
    return failed({ reason: MESSAGES.wsCommandNotJson });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return failed({ reason: MESSAGES.wsCommandNotObject });
  }
  const fields = value as Fields;
  const ref = fields.ref ?? undefined;
  if (ref !== undefined && !isRef(ref)) return failed({ reason: MESSAGES.wsRefType });
  switch (fields.action) {
    case 'ping':
      return { ok: true, command: { action: 'ping', ref } };
    case 'subscribe':
      return parseSubscribe(fields, ref);
    case 'unsubscribe':
      return parseUnsubscribe(fields, ref);
    default:
      return failed({ reason: MESSAGES.wsActionUnknown, ref });
  }
}

function parseSubscribe(fields: Fields, ref: WsRef | undefined): ParsedCommand {
  const topic = fields.topic;
  const problem = topicProblem(topic);
  if (problem) return failed({ reason: problem, topic: typeof topic === 'string' ? topic : undefined, ref });
  const lastEventId = fields.lastEventId ?? undefined;
  if (lastEventId !== undefined && typeof lastEventId !== 'string') {
    return failed({ reason: MESSAGES.wsLastEventIdType, topic: topic as string, ref });
  }
  return { ok: true, command: { action: 'subscribe', topic: topic as string, lastEventId, ref } };
}

function parseUnsubscribe(fields: Fields, ref: WsRef | undefined): ParsedCommand {
  const topic = fields.topic;
  const problem = topicProblem(topic);
  if (problem) return failed({ reason: problem, topic: typeof topic === 'string' ? topic : undefined, ref });
  return { ok: true, command: { action: 'unsubscribe', topic: topic as string, ref } };
}

/** The contract's verdict on a topic (which also keeps clients off the broadcast pseudo-topic `*`). */
function topicProblem(topic: unknown): string | undefined {
  try {
    assertSubscribableTopic(topic);
    return undefined;
  } catch (error) {
    if (error instanceof PushletValidationError) return error.message;
    throw error;
  }
}

function isRef(value: unknown): value is WsRef {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

function toText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function failed(error: WsCommandError): ParsedCommand {
  return { ok: false, error };
}

/**
 * The `commandsPerSecond` budget of one connection, as a token bucket: up to that many commands
 * at once, refilled at that rate. A connection that overdraws it is closed with 1008.
 */
export class CommandBudget {
  private readonly capacity: number;
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    now = performance.now(),
  ) {
    this.capacity = Math.max(1, perSecond);
    this.tokens = this.capacity;
    this.last = now;
  }

  /** Spends one command; false when the budget is exhausted. */
  take(now = performance.now()): boolean {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.perSecond) / 1_000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
