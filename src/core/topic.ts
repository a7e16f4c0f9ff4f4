import { eventProblem, publishTopicProblem, topicProblem } from '../protocol/topics.js';
import { MESSAGES } from '../pushlet.messages.js';
import { PushletValidationError } from './errors.js';

export { BROADCAST_TOPIC, DEFAULT_EVENT, DEFAULT_TOPIC } from '../protocol/topics.js';

/** Throws a {@link PushletValidationError} unless `topic` is a valid topic to subscribe to. */
export function assertSubscribableTopic(topic: unknown): asserts topic is string {
  const problem = topicProblem(topic);
  if (problem) throw new PushletValidationError(problem);
}

/** Throws unless `topic` may be published to. */
export function assertPublishableTopic(topic: unknown): asserts topic is string {
  const problem = publishTopicProblem(topic);
  if (problem) throw new PushletValidationError(problem);
}

/** Throws unless `event` is a publishable event name. */
export function assertEvent(event: unknown): asserts event is string {
  const problem = eventProblem(event);
  if (problem) throw new PushletValidationError(problem);
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
