import { MESSAGES } from '../pushlet.messages.js';
import { PushletValidationError } from './errors.js';

/** The pseudo-topic of messages sent with `publishToAll`. */
export const BROADCAST_TOPIC = '*';
/** Topic of SSE connections that name none. */
export const DEFAULT_TOPIC = 'default';
export const DEFAULT_EVENT = 'message';
const RESERVED_PREFIX = 'pushlet:';
const MAX_TOPIC_LENGTH = 200;
const MAX_EVENT_LENGTH = 100;
// Whitespace (including Unicode spaces) and C0/C1 control characters.
const BAD_TOPIC_CHARS = /[\s\p{Cc}]/u;
const BAD_EVENT_CHARS = /[\r\n\0]/;

/** Throws a {@link PushletValidationError} unless `topic` is a valid topic to subscribe to. */
export function assertSubscribableTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string') throw new PushletValidationError(MESSAGES.topicType);
  if (topic.length < 1 || topic.length > MAX_TOPIC_LENGTH) {
    throw new PushletValidationError(MESSAGES.topicLength);
  }
  if (BAD_TOPIC_CHARS.test(topic)) throw new PushletValidationError(MESSAGES.topicChars);
  if (topic.startsWith(RESERVED_PREFIX)) throw new PushletValidationError(MESSAGES.topicReserved);
  if (topic.includes('*') || topic.includes('#')) {
    throw new PushletValidationError(MESSAGES.patternUnsupported);
  }
}

/** Throws unless `topic` may be published to. */
export function assertPublishableTopic(topic: unknown): asserts topic is string {
  if (typeof topic === 'string' && (topic.includes('*') || topic.includes('#'))) {
    throw new PushletValidationError(MESSAGES.topicPattern);
  }
  assertSubscribableTopic(topic);
}

/** Throws unless `event` is a publishable event name. */
export function assertEvent(event: unknown): asserts event is string {
  if (typeof event !== 'string') throw new PushletValidationError(MESSAGES.eventType);
  if (event.length < 1 || event.length > MAX_EVENT_LENGTH) {
    throw new PushletValidationError(MESSAGES.eventLength);
  }
  if (BAD_EVENT_CHARS.test(event)) throw new PushletValidationError(MESSAGES.eventChars);
  if (event.startsWith(RESERVED_PREFIX)) throw new PushletValidationError(MESSAGES.eventReserved);
}

/** Strings are sent as they are; any other JSON value as its JSON text. */
export function dataToString(data: unknown): string {
  if (typeof data === 'string') return data;
  let text: string | undefined;
  try {
    text = JSON.stringify(data);
  } catch {
    text = undefined;
  }
  if (text === undefined) throw new PushletValidationError(MESSAGES.dataUnserializable);
  return text;
}
