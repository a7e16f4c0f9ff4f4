/**
 * The Pushlet client SDK (`pushlet-nestjs/client`): Node-free, for browsers and Node 20+.
 * It imports nothing but the wire contract in `../protocol`.
 */
export { PushletClient, type HistoryOptions, type PresenceResult } from './pushlet-client.js';
export type { ClientEvents, ClientMessage, ClientState, PushletClientOptions, SubscribeOptions, TransportChoice } from './client-types.js';
export type { MessageHandler, Subscription, SubscriptionState } from './subscription.js';
export { CLIENT_TEXTS, PushletClientError, PushletCommandError, PushletConnectionError, PushletSubscribeError } from './client-errors.js';
export type { WebSocketConstructor, WebSocketLike } from './ws-transport.js';
export { backoffDelay } from './backoff.js';
export { EventStreamParser, type StreamEvent } from './sse-parser.js';
export type { PresenceMember, PushletIdentity, ResetData } from '../protocol/frames.js';
