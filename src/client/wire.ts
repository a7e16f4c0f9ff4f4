import type { CLOSE_CODES, EVENTS } from '../protocol/frames.js';

/**
 * The protocol's names the client SDK reads, as single constants rather than the `EVENTS` and
 * `CLOSE_CODES` objects: a bundle keeps only those used (the core build stays small). Each is
 * typed by the protocol's own value, so a change there fails to compile here.
 */
export const CONNECTED: typeof EVENTS.connected = 'pushlet:connected';
export const SUBSCRIBED: typeof EVENTS.subscribed = 'pushlet:subscribed';
export const ERROR: typeof EVENTS.error = 'pushlet:error';
export const RESET: typeof EVENTS.reset = 'pushlet:reset';
export const PONG: typeof EVENTS.pong = 'pushlet:pong';
export const JOIN: typeof EVENTS.join = 'pushlet:join';
export const LEAVE: typeof EVENTS.leave = 'pushlet:leave';
export const DISCONNECTED: typeof EVENTS.disconnected = 'pushlet:disconnected';
/** Close code: the server disconnected the connection's user. */
export const CLOSE_DISCONNECTED: typeof CLOSE_CODES.disconnected = 4002;
/** Prefix of the module's own events, from the shared wire contract. */
export { RESERVED_PREFIX as RESERVED } from '../protocol/topics.js';
