export { PushletModule } from './pushlet.module.js';
export { PUSHLET_MODULE_OPTIONS } from './pushlet.module-definition.js';
export { PushletService, type PushletHistoryReadOptions, type PushletStreamOptions, type PushletSubscribeOptions } from './pushlet.service.js';
export { PushletPublish, type PushletTopicResolver } from './decorators/pushlet-publish.decorator.js';
export { PushletPublishInterceptor } from './decorators/pushlet-publish.interceptor.js';
export { PUSHLET_OPTIONS } from './pushlet.constants.js';
export {
  PUSHLET_BROKER,
  type BrokerEvents,
  type BrokerPublication,
  type BrokerRecord,
  type PushletBroker,
  type PushletBrokerStatus,
  type PushletControlCommand,
  type TailRequest,
  type TopicRead,
} from './interfaces/broker.interface.js';
export type { RecoveryCoreStats } from './core/recovery-core.js';
export type { Position } from './protocol/ids.js';
export type { PushletMessage } from './interfaces/message.interface.js';
export type { PushletStats, PushletStatsOptions, PushletTransportFigures } from './interfaces/stats.interface.js';
export { PUSHLET_REFUSAL_REASONS, type PushletObserver, type PushletPublishOrigin, type PushletRefusalReason } from './metrics/pushlet-counters.js';
export type {
  PushletAuthenticateContext,
  PushletAuthorizeContext,
  PushletBrokerContext,
  PushletBrokerFactory,
  PushletClientPublishContext,
  PushletClientPublishDecision,
  PushletIdentity,
  PushletPresenceOptions,
  PushletGuard,
  PushletRouteOptions,
  PushletHistoryOptions,
  PushletLimitOptions,
  PushletModuleOptions,
  PushletSseOptions,
  PushletTransport,
  PushletWsOptions,
  ResolvedPushletOptions,
} from './interfaces/pushlet-options.interface.js';
export {
  PushletError,
  PushletForbiddenError,
  PushletLimitError,
  PushletUnauthorizedError,
  PushletUnavailableError,
  PushletUnsupportedError,
  PushletValidationError,
  PushletBrokerError,
} from './core/errors.js';
export { Envelope } from './core/envelope.js';
export { MemoryBroker } from './core/memory-broker.js';
export { MemoryPresenceStore, type PresenceEntry, type PresenceRefresh, type PresenceStore } from './core/presence.js';
// Redis: the option types name no ioredis type and the errors load no ioredis; the broker and its
// presence store are in `pushlet-nestjs/redis` (cluster/index.ts), which loads ioredis.
export type { PushletRedisClusterOptions, PushletRedisOptions } from './cluster/redis-options.js';
export { PushletRedisError, PushletRedisUnavailableError } from './cluster/redis-errors.js';
export { PushletErrorFilter } from './pushlet-error.filter.js';
export type {
  Command as WsCommand,
  CommandRef as WsRef,
  ControlEvent,
  HistoryData,
  Notice,
  PresenceData,
  PresenceMember,
  ResetData,
} from './protocol/index.js';
export { CLOSE_CODES, EVENTS } from './protocol/frames.js';
export { PushletEndpoints } from './pushlet.routes.js';
