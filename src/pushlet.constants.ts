/** Injection token of the options with defaults filled in ({@link ResolvedPushletOptions}). */
export const PUSHLET_OPTIONS = Symbol('PUSHLET_OPTIONS');
/** Metadata key of `@PushletPublish`. */
export const PUSHLET_PUBLISH_METADATA = 'pushlet:publish';

export const DEFAULTS = {
  heartbeatInterval: 30_000,
  ssePath: '/events',
  wsPath: '/ws',
  wsFrame: 'binary',
  wsMaxPayload: 64 * 1024,
  wsCommandsPerSecond: 50,
  topicsPerConnection: 50,
  patternsPerConnection: 10,
  bufferBytes: 1024 * 1024,
  maxMessageBytes: 256 * 1024,
  maxRewind: 100,
  maxHistoryPage: 100,
  historyMaxCount: 1000,
  historyMaxAgeMs: 5 * 60_000,
  historyMaxTopics: Infinity,
  historyMaxBytes: 64 * 1024 * 1024,
  historyRecentWindowBytes: 4 * 1024 * 1024,
  presenceTtlMs: 15_000,
} as const;
