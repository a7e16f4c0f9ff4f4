/**
 * The core of the Pushlet client SDK (`pushlet-client-core.js`): subscribe, reconnect and resume
 * over WebSocket or SSE, and nothing else. What most pages need, at a smaller size; the full
 * client (`./index.ts`, `pushlet-client.js`) adds `publish`, `presence` and `refresh`.
 */
export { PushletClient } from './client-core.js';
export type { ClientEvents, ClientMessage, ClientState, PushletClientOptions, SubscribeOptions, TransportChoice } from './client-types.js';
export type { MessageHandler, Subscription, SubscriptionState } from './subscription.js';
export { PushletClientError, PushletConnectionError, PushletSubscribeError } from './client-errors.js';
export type { WebSocketConstructor, WebSocketLike } from './ws-transport.js';
export type { ResetData } from '../protocol/frames.js';
