import type { ResetData } from '../protocol/frames.js';
import type { PushletClientError } from './client-errors.js';
import type { WebSocketConstructor } from './ws-transport.js';

/** Where the client's connection stands. */
export type ClientState = 'disconnected' | 'connecting' | 'connected';

/** Which transport to use; `auto` tries WebSocket and falls back to SSE when the upgrade fails. */
export type TransportChoice = 'websocket' | 'sse' | 'auto';

/** A message as the client hands it over. */
export interface ClientMessage {
  /** Opaque; the client keeps the last one to resume after it. */
  readonly id: string;
  /** The topic (`*` for a broadcast). `undefined` only from a server older than SSE `format=json`. */
  readonly topic: string | undefined;
  readonly event: string;
  readonly data: string;
  /** ISO 8601 publication time (`undefined` only from a server older than SSE `format=json`). */
  readonly timestamp: string | undefined;
}

/** Options of `PushletClient.subscribe`. */
export interface SubscribeOptions {
  /**
   * Deliver each new topic's latest `rewind` messages still in the server's history first (capped
   * by the server's `limits.maxRewind`; `1`: the latest value of a state topic), then live ones.
   * Only for topics this client did not hold yet, and only where no resume id applies: on the
   * first connection, or (WebSocket) a topic added later. Over SSE one rewind applies to every
   * topic of the stream (the largest asked); topics added to a running SSE connection resume
   * from its id instead.
   */
  rewind?: number;
}

export interface PushletClientOptions {
  /** Default `auto`. */
  transport?: TransportChoice;
  /** Default `/ws`. */
  wsPath?: string;
  /** Default `/events`. */
  ssePath?: string;
  /** The WebSocket constructor; default the global one (browsers). In Node 20 pass `ws`'s `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Default the global `fetch`. */
  fetch?: typeof fetch;
  /** Shortest wait before a reconnect. Default 500. */
  minReconnectDelayMs?: number;
  /** Longest wait before a reconnect. Default 30 000. */
  maxReconnectDelayMs?: number;
  /**
   * WebSocket: how long after each pong the next ping goes out; 0: no pings. Default the heartbeat
   * interval the server announces in `pushlet:connected`, at most 25 000.
   */
  pingIntervalMs?: number;
  /**
   * WebSocket: how long a ping may wait for its pong before the connection counts as dead.
   * Default 1.5 times the announced heartbeat, at most 10 000 (a dead link is noticed within
   * 2.5 heartbeats).
   */
  pingTimeoutMs?: number;
  /**
   * SSE: a stream silent this long (not even a heartbeat comment) counts as dead and is
   * reconnected; 0: never. Default 2.5 times the heartbeat interval the server announces in
   * `pushlet:connected` (none from a server that announces none).
   */
  sseIdleTimeoutMs?: number;
  /**
   * A token, or a function asked for one on every (re)connect: sent as `Authorization: Bearer`
   * on SSE and as the `token` query parameter on WebSocket.
   */
  token?: string | (() => string | Promise<string>);
}

/** The client's events (`client.on(name, listener)`). */
export interface ClientEvents {
  message: ClientMessage;
  /** The server could not replay everything these topics missed: reload their state. */
  reset: ResetData;
  state: ClientState;
  /**
   * A failed attempt, a drop or a server error; the client keeps retrying by itself, except after
   * the server disconnected it (`PushletConnectionError` with `code` 4002: state `disconnected` until `connect()`).
   */
  error: PushletClientError;
}
