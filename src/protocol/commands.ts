import { type CommandRef } from './frames.js';
import { PROTOCOL_TEXTS as TEXTS } from './texts.js';
import { DEFAULT_EVENT, eventProblem, exactTopicProblem, publishTopicProblem, topicProblem } from './topics.js';

/**
 * Client-to-server commands over WebSocket, JSON in a text or binary frame (docs/protocol.md, "WebSocket"):
 * `{"action":"subscribe","topic":"a"}` or `{"action":"subscribe","topics":["a","b"]}`, either
 * with `"lastEventId"` to resume; `{"action":"unsubscribe","topic":"a"}` (or `topics`);
 * `{"action":"ping"}`; `{"action":"publish","topic":"a","event":"e","data":…}` (data: a string as is,
 * any other JSON value as its JSON text; event defaults to `message`); `{"action":"presence","topic":"a"}`;
 * `{"action":"refresh","token":"…"}`; `{"action":"history","topic":"a","limit":n,"before":"<id>"}`. `subscribe`
 * may carry `"rewind": n` (the latest n messages of each topic first, when no `lastEventId` places it). Any command may carry `"ref"`, echoed in its reply. Other fields are
 * ignored; `null` counts as absent.
 */
export type Command =
  | {
      readonly action: 'subscribe';
      readonly topics: readonly string[];
      readonly lastEventId?: string;
      readonly rewind?: number;
      readonly ref?: CommandRef;
    }
  | { readonly action: 'unsubscribe'; readonly topics: readonly string[]; readonly ref?: CommandRef }
  | { readonly action: 'ping'; readonly ref?: CommandRef }
  | { readonly action: 'publish'; readonly topic: string; readonly event: string; readonly data: string; readonly ref?: CommandRef }
  | { readonly action: 'presence'; readonly topic: string; readonly ref?: CommandRef }
  | { readonly action: 'refresh'; readonly token: string; readonly ref?: CommandRef }
  | { readonly action: 'history'; readonly topic: string; readonly limit?: number; readonly before?: string; readonly ref?: CommandRef };

/** Why a frame is not a valid command, with what could safely be read of it (for the error frame). */
export interface CommandError {
  readonly reason: string;
  readonly topic?: string;
  readonly ref?: CommandRef;
}

export type ParsedCommand = { readonly ok: true; readonly command: Command } | { readonly ok: false; readonly error: CommandError };

/** Longest `ref` string echoed back. */
export const MAX_REF_LENGTH = 64;
/** Most topics one command may name (a whole resubscription fits). */
export const MAX_TOPICS_PER_COMMAND = 1_000;

/** Longest `token` a `refresh` command may carry. */
export const MAX_TOKEN_LENGTH = 8_192;

type Fields = Record<string, unknown>;

/** Reads one command. Never throws: anything wrong comes back as an error to answer with. */
export function parseCommand(text: string): ParsedCommand {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return failed({ reason: TEXTS.commandNotJson });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return failed({ reason: TEXTS.commandNotObject });
  const fields = value as Fields;
  const ref = fields.ref ?? undefined;
  if (ref !== undefined && !isRef(ref)) return failed({ reason: TEXTS.refType });
  switch (fields.action) {
    case 'ping':
      return { ok: true, command: { action: 'ping', ref } };
    case 'subscribe':
    case 'unsubscribe':
      return parseTopicCommand(fields.action, fields, ref);
    case 'publish':
      return parsePublish(fields, ref);
    case 'presence': {
      const problem = exactTopicProblem(fields.topic);
      if (problem) return failed({ reason: problem, topic: echoable(fields.topic), ref });
      return { ok: true, command: { action: 'presence', topic: fields.topic as string, ref } };
    }
    case 'refresh': {
      const token = fields.token;
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return failed({ reason: TEXTS.tokenType, ref });
      return { ok: true, command: { action: 'refresh', token, ref } };
    }
    case 'history':
      return parseHistory(fields, ref);
    default:
      return failed({ reason: TEXTS.actionUnknown, ref });
  }
}

function parseTopicCommand(action: 'subscribe' | 'unsubscribe', fields: Fields, ref: CommandRef | undefined): ParsedCommand {
  const single = fields.topic ?? undefined;
  const many = fields.topics ?? undefined;
  if (single !== undefined && many !== undefined) return failed({ reason: TEXTS.topicAndTopics, ref });
  let topics: string[];
  if (many !== undefined) {
    if (!Array.isArray(many) || many.length === 0 || many.length > MAX_TOPICS_PER_COMMAND) return failed({ reason: TEXTS.topicsType, ref });
    for (const topic of many) {
      const problem = topicProblem(topic);
      if (problem) return failed({ reason: problem, topic: echoable(topic), ref });
    }
    topics = [...new Set(many as string[])];
  } else {
    const problem = topicProblem(single);
    if (problem) return failed({ reason: problem, topic: echoable(single), ref });
    topics = [single as string];
  }
  if (action === 'unsubscribe') return { ok: true, command: { action, topics, ref } };
  const lastEventId = fields.lastEventId ?? undefined;
  if (lastEventId !== undefined && typeof lastEventId !== 'string') {
    return failed({ reason: TEXTS.lastEventIdType, topic: topics.length === 1 ? topics[0] : undefined, ref });
  }
  const rewind = fields.rewind ?? undefined;
  if (rewind !== undefined && !(typeof rewind === 'number' && Number.isSafeInteger(rewind) && rewind >= 0)) {
    return failed({ reason: TEXTS.rewindType, topic: topics.length === 1 ? topics[0] : undefined, ref });
  }
  return { ok: true, command: { action, topics, lastEventId, ...(rewind !== undefined && { rewind }), ref } };
}

/**
 * A `history` command: one plain topic (not a pattern), `limit` a whole number of 1 or more
 * (the server caps it), `before` an id string (checked against the id grammar by the server,
 * never echoed).
 */
function parseHistory(fields: Fields, ref: CommandRef | undefined): ParsedCommand {
  const topic = fields.topic;
  const problem = exactTopicProblem(topic, TEXTS.historyPattern);
  if (problem) return failed({ reason: problem, topic: echoable(topic), ref });
  const limit = fields.limit ?? undefined;
  if (limit !== undefined && !(typeof limit === 'number' && Number.isSafeInteger(limit) && limit >= 1)) {
    return failed({ reason: TEXTS.limitType, topic: topic as string, ref });
  }
  const before = fields.before ?? undefined;
  if (before !== undefined && typeof before !== 'string') return failed({ reason: TEXTS.beforeType, topic: topic as string, ref });
  return { ok: true, command: { action: 'history', topic: topic as string, limit, before, ref } };
}

/**
 * A `publish` command: the same topic and event rules as `PushletService.publish()` (size and
 * permission are the server's to check).
 */
function parsePublish(fields: Fields, ref: CommandRef | undefined): ParsedCommand {
  const topic = fields.topic;
  const topicIssue = publishTopicProblem(topic);
  if (topicIssue) return failed({ reason: topicIssue, topic: echoable(topic), ref });
  const event = fields.event ?? DEFAULT_EVENT;
  const eventIssue = eventProblem(event);
  if (eventIssue) return failed({ reason: eventIssue, topic: topic as string, ref });
  const raw = fields.data ?? '';
  const data = typeof raw === 'string' ? raw : JSON.stringify(raw);
  return { ok: true, command: { action: 'publish', topic: topic as string, event: event as string, data, ref } };
}

/** A topic from a bad command is named in the reply only if it is a short string (JSON-encoded there). */
function echoable(topic: unknown): string | undefined {
  return typeof topic === 'string' && topic.length <= 200 ? topic : undefined;
}

function isRef(value: unknown): value is CommandRef {
  return (typeof value === 'string' && value.length <= MAX_REF_LENGTH) || (typeof value === 'number' && Number.isFinite(value));
}

function failed(error: CommandError): ParsedCommand {
  return { ok: false, error };
}
