import { PROTOCOL_TEXTS as TEXTS } from './texts.js';

/** The pseudo-topic of messages sent with `publishToAll`. */
export const BROADCAST_TOPIC = '*';
/** Topic of SSE connections that name none. */
export const DEFAULT_TOPIC = 'default';
export const DEFAULT_EVENT = 'message';
/** Prefix of the module's own control events; no topic or published event may start with it. */
export const RESERVED_PREFIX = 'pushlet:';
export const MAX_TOPIC_LENGTH = 200;
export const MAX_EVENT_LENGTH = 100;
// Whitespace (including Unicode spaces) and C0/C1 control characters.
const BAD_TOPIC_CHARS = /[\s\p{Cc}]/u;
const BAD_EVENT_CHARS = /[\r\n\0]/;

/**
 * Why `topic` cannot be subscribed to, or `undefined` when it can: an exact topic, or a pattern
 * (docs/protocol.md, "Pattern subscriptions").
 */
export function topicProblem(topic: unknown): string | undefined {
  if (typeof topic !== 'string') return TEXTS.topicType;
  if (topic.length < 1 || topic.length > MAX_TOPIC_LENGTH) return TEXTS.topicLength;
  if (BAD_TOPIC_CHARS.test(topic)) return TEXTS.topicChars;
  if (topic.startsWith(RESERVED_PREFIX)) return TEXTS.topicReserved;
  if (isPattern(topic)) return patternProblem(topic);
  return undefined;
}

/** Why `topic` cannot be published to, or `undefined` when it can. */
export function publishTopicProblem(topic: unknown): string | undefined {
  if (typeof topic === 'string' && isPattern(topic)) return TEXTS.topicPattern;
  return topicProblem(topic);
}

/** Why `topic` is not an exact topic (presence, history: `whenPattern` says why a pattern is refused), or `undefined` when it is. */
export function exactTopicProblem(topic: unknown, whenPattern: string = TEXTS.patternExact): string | undefined {
  if (typeof topic === 'string' && isPattern(topic)) return whenPattern;
  return topicProblem(topic);
}

/** Whether a subscription names a pattern rather than one topic (it holds `*` or `#`). */
export function isPattern(subscription: string): boolean {
  return subscription.includes('*') || subscription.includes('#');
}

/**
 * The pattern grammar: `/`-separated segments, none empty; `*` is one whole segment, `#` zero or
 * more trailing segments and only last. `a*b`, `a//*` and `#/a` are refused.
 */
function patternProblem(pattern: string): string | undefined {
  const segments = pattern.split('/');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === '' || (segment.length > 1 && /[*#]/.test(segment)) || (segment === '#' && i !== segments.length - 1)) return TEXTS.patternSegment;
  }
  return undefined;
}

/**
 * Whether `topic` is one of `pattern`'s topics: `*` stands for one whole segment of at least one
 * character, a final `#` for zero or more segments. The broadcast topic of `publishToAll` is no
 * pattern's: a connection holds broadcasts anyway.
 */
export function matchesPattern(pattern: string, topic: string): boolean {
  if (topic === BROADCAST_TOPIC) return false;
  const want = pattern.split('/');
  const have = topic.split('/');
  for (let i = 0; i < want.length; i++) {
    const segment = want[i]!;
    if (segment === '#') return true;
    if (i >= have.length) return false;
    if (segment === '*' ? have[i] === '' : segment !== have[i]) return false;
  }
  return want.length === have.length;
}

/** Why `event` cannot be published, or `undefined` when it can. */
export function eventProblem(event: unknown): string | undefined {
  if (typeof event !== 'string') return TEXTS.eventType;
  if (event.length < 1 || event.length > MAX_EVENT_LENGTH) return TEXTS.eventLength;
  if (BAD_EVENT_CHARS.test(event)) return TEXTS.eventChars;
  if (event.startsWith(RESERVED_PREFIX)) return TEXTS.eventReserved;
  return undefined;
}
