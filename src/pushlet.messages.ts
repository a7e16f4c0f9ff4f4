import { PROTOCOL_TEXTS } from './protocol/texts.js';

/** Every error text the module produces, in one place (the wire contract's own texts included). */
export const MESSAGES = {
  ...PROTOCOL_TEXTS,
  maxMessageBytesTooLarge: (max: number, buffer: number) =>
    `Pushlet option limits.maxMessageBytes (${max}) must be at most half of limits.bufferBytes (${buffer}): raise bufferBytes or lower maxMessageBytes`,
  messageTooLarge: (size: number, max: number, buffer: number) =>
    `the message is ${size} bytes, over limits.maxMessageBytes (${max}; limits.bufferBytes is ${buffer}); send a reference to the data instead, or raise both limits`,
  routeForbidden: 'Forbidden resource',
  routeGuardUnknown: (name: string) =>
    `Pushlet option routes.guards names ${name}, which is not a provider of the app: add it to a module's providers, or pass an instance`,
  dataUnserializable: 'data must be a string or a JSON-serialisable value',
  tooManyTopics: (limit: number) => `too many topics for one connection (limit ${limit})`,
  tooManyPatterns: (limit: number) => `too many patterns for one connection (limit ${limit}, limits.patternsPerConnection)`,
  tooManyConnections: 'too many connections; try again later',
  tooManyConnectionsOfUser: 'too many connections of this user; close one and try again',
  unauthenticated: 'authentication required or refused',
  identityInvalid: 'the authenticate option must return false or an object with a non-empty string id (and, optionally, a numeric expiresAt)',
  identityExpired: 'the identity has expired; reconnect or refresh with a new token',
  refreshOtherUser: 'a refresh must name the same user as the connection',
  refreshUnsupported: 'refresh needs the authenticate option on the server',
  publishForbidden: (topic: string) => `not allowed to publish to "${topic}"`,
  presenceOff: (topic: string) => `"${topic}" is not a presence topic`,
  presenceUnavailable: 'presence cannot be read or updated right now (the store is unreachable); try again shortly',
  presenceTopics: 'Pushlet option presence.topics must be a function (topic) => boolean or an array of topic prefixes',
  disconnected: 'disconnected by the server',
  disconnectUserId: (max: number) => `disconnect(userId): userId must be a non-empty string of at most ${max} characters`,
  disconnectReason: 'disconnect(userId, reason): reason must be a string',
  brokerHasStopped: 'the broker has stopped',
  streamIdentity: 'stream(topics, { identity }): identity must be an object with a non-empty string id (and, optionally, a numeric expiresAt)',
  controlMalformed: 'ignored a malformed control command from the broker',
  tooManyConnectionsFromAddress: 'too many connections from this address; try again later',
  forbiddenTopic: (topic: string) => `not allowed to subscribe to "${topic}"`,
  slowConsumer: 'the client did not read fast enough; its outgoing buffer overflowed',
  shuttingDown: 'server shutting down',
  wsTooManyCommands: 'too many commands; send fewer per second',
  wsOriginForbidden: 'this origin may not open a WebSocket here',
  wsInternalError: 'internal error',
  positiveNumber: (name: string, value: string) =>
    `Pushlet option ${name} must be a positive number, got ${value}; give a number or a numeric string such as "5000"`,
  nonNegativeInteger: (name: string, value: string) =>
    `Pushlet option ${name} must be a whole number of 0 or more, got ${value}; give a number or a numeric string such as "2"`,
  booleanOption: (name: string, value: string) => `Pushlet option ${name} must be true or false, got ${value}; "true" and "false" are accepted too`,
  pathsMustDiffer: (path: string) => `Pushlet options sse.path and ws.path must differ (both are ${path})`,
  redisNotConfigured:
    "the redis option names no url, host, cluster or client (all unset or empty): distributed mode is off, so this instance's messages reach only its own clients",
  redisUnavailable: (address: string, cause: string) =>
    `cannot connect to Redis at ${address} (${cause}); start Redis or fix the redis option, or set redis.startWithoutRedis: true to start local-only and join when Redis is up`,
  redisOneSource: 'the redis option takes exactly one of url, host, cluster or client',
  redisWithBroker: 'the redis and broker options cannot be combined: the redis option selects the Redis broker',
  redisKeyPrefix: 'redis.keyPrefix must be a non-empty string without "{" or "}" (those mark hash tags in Redis Cluster)',
  redisClusterNodes: 'redis.cluster.nodes must list at least one node',
  redisClient: 'redis.client must be an ioredis Redis or Cluster instance',
  redisNotInstalled: 'the redis option needs the ioredis package, an optional peer dependency of pushlet-nestjs: npm install ioredis',
  redisUrl: (url: string) => `redis.url must be a redis:// or rediss:// URL, got "${url}"`,
  brokerNotConnected: 'the broker is not connected; history cannot be read right now',
  historyUnavailable: 'the message history cannot be read right now; reconnect with the same last event id shortly',
  redisTimeout: (what: string, ms: number) => `Redis did not answer ${what} within ${ms} ms`,
  publishFailed: (reason: string) => `the broker refused the publication: ${reason}`,
  brokerQueueFull: (max: number) => `${max} publications are already waiting for the broker (maxQueued, e.g. redis.maxQueued); try again once it is back`,
  brokerStopped: 'the module stopped before the broker recorded this publication; it was not published',
  brokerUnreadable: 'the broker answered an unreadable position',
  healthBrokerDown: (state: string) => `the broker is not connected (${state}): publications wait and clients cannot resume here`,
  healthQueueFull: (queued: number, max: number) => `${queued} publications wait for the broker, more than ${max}`,
  metricNameTaken: (name: string) =>
    `a metric named ${name} is already registered on this prom-client registry, and not by Pushlet: give PushletMetricsModule a registry of its own (the registry option)`,
} as const;
