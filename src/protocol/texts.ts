/**
 * The texts the wire contract itself produces (validation, command errors, reset reasons). The
 * server's other texts live in `pushlet.messages.ts`, which includes these: one copy of each.
 */
export const PROTOCOL_TEXTS = {
  topicType: 'topic must be a string',
  topicLength: 'topic must be 1 to 200 characters long',
  topicChars: 'topic must not contain whitespace or control characters',
  topicReserved: 'topic must not start with "pushlet:"; that prefix is reserved for the module',
  topicPattern: 'topic must not contain "*" or "#" when publishing; those characters are reserved for subscription patterns',
  patternSegment:
    'a pattern is "/"-separated segments, none empty: "*" matches one whole segment ("orders/*"), "#" zero or more trailing segments and only last ("users/42/#"); "a*b" is not a pattern',
  patternExact: 'this needs an exact topic, not a pattern ("*" or "#")',
  patternUnavailable:
    'pattern subscriptions ("*" and "#") are not available with this broker (Redis Cluster routes exact topics only); subscribe to exact topics',
  eventType: 'event must be a string',
  eventLength: 'event must be 1 to 100 characters long',
  eventChars: 'event must not contain CR, LF or NUL',
  eventReserved: 'event names starting with "pushlet:" are the module\'s control events and cannot be published',
  sseFormat: 'format must be "text" (the message data as is) or "json" (the message as JSON with its topic)',
  commandNotJson: 'a command must be JSON text',
  commandNotObject: 'a command must be a JSON object such as {"action":"subscribe","topic":"a"}',
  actionUnknown: 'action must be "subscribe", "unsubscribe", "ping", "publish", "presence", "refresh" or "history"',
  tokenType: 'token must be a non-empty string of at most 8192 characters',
  refType: 'ref must be a string of at most 64 characters or a finite number',
  lastEventIdType: 'lastEventId must be a string',
  rewindType: 'rewind must be a whole number of 0 or more (how many of the latest messages of each topic to deliver first)',
  limitType: 'limit must be a whole number of 1 or more',
  beforeType: 'before must be a string: the id of a message',
  historyPattern: 'history is read per topic: a pattern ("*" or "#") has no history of its own; name one topic',
  topicsType: 'topics must be a non-empty array of topic strings',
  topicAndTopics: 'give either topic or topics, not both',
  resetUnknownId:
    'the last event id is not one this server handed out (malformed, unknown or from another deployment); messages may have been missed; delivery starts from now',
  resetTooOld:
    "messages after the last event id are no longer all in the history (too old, or lost with the broker's data); some may have been missed; delivery starts from now",
  resetHistoryLost: 'the broker lost messages of this topic (e.g. Redis lost its data); some may have been missed',
  resetCursorIncomplete: 'the last event id does not carry a position for this topic; delivery starts from now',
} as const;
