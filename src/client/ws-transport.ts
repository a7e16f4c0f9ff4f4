import { PONG } from './wire.js';
import type { PushletClientOptions } from './client-types.js';
import { DEAD_LINK_FACTOR, type ClientFrame, type ConnectRequest, type Transport, type TransportHandlers } from './transport.js';

/**
 * The part of the WHATWG `WebSocket` the client uses (browsers' own, or `ws` in Node). Handler
 * parameters are typed `never` so that every implementation's own event types fit; the events
 * are read as {@link MessageLike} and {@link CloseLike}.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
}

interface MessageLike {
  readonly data: unknown;
}

interface CloseLike {
  readonly code: number;
  readonly reason: string;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;
const NORMAL_CLOSURE = 1000;
/** Closes after which the server expects the client back: done, shutdown (1001), try again later (1013). */
const ORDERLY_CLOSES = [NORMAL_CLOSURE, 1001, 1013];
const decoder = new TextDecoder();
const ignore = () => undefined;

/** The WebSocket constructor to use: the option's, else the global one (browsers), else none. */
export function webSocketConstructor(options: PushletClientOptions): WebSocketConstructor | undefined {
  return options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}

/**
 * Opens one WebSocket connection: topics, resume id and token on the URL (one round trip subscribes
 * and resumes everything), JSON commands out, JSON frames in, and the protocol's ping: a pong later
 * than `pingTimeoutMs` drops the connection (a half-open TCP connection shows no close).
 */
export function openWebSocket(request: ConnectRequest, options: PushletClientOptions, handlers: TransportHandlers): Transport {
  // Unless set: at most 25 s and 10 s, less when the server announces a shorter heartbeat (heartbeat, 1.5 × heartbeat).
  let pingIntervalMs = options.pingIntervalMs ?? 25_000;
  let pingTimeoutMs = options.pingTimeoutMs ?? 10_000;
  const { url } = request;
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (request.lastEventId !== undefined) url.searchParams.set('lastEventId', request.lastEventId);
  if (request.token !== undefined) url.searchParams.set('token', request.token);
  const socket = new (webSocketConstructor(options)!)(url.toString());
  let opened = false;
  /** The next ping, or (while `awaitingPong`) the deadline of the last one. */
  let timer: ReturnType<typeof setTimeout> | undefined;
  let awaitingPong = false;

  // No `finished` flag: once the connection is over its handlers are detached, `send` sees the
  // socket no longer open, and the client ignores a transport it no longer holds.
  /** Stops the timer and the handlers; `onerror` stays: `ws` emits 'error' when closed while connecting, and an unheard one throws. */
  const stop = (): void => {
    clearTimeout(timer);
    socket.onopen = socket.onmessage = socket.onclose = null;
  };
  const send = (command: Record<string, unknown>): boolean => {
    if (socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(command));
    return true;
  };
  const schedulePing = (): void => {
    awaitingPong = false;
    clearTimeout(timer);
    if (pingIntervalMs <= 0) return;
    timer = setTimeout(() => {
      awaitingPong = send({ action: 'ping' });
      if (awaitingPong) timer = setTimeout(dead, pingTimeoutMs);
    }, pingIntervalMs);
  };
  /** No pong in time: the connection is presumed dead, and cut without waiting for a closing handshake. */
  const dead = (): void => {
    stop();
    const cut = socket as WebSocketLike & { terminate?: () => void };
    if (cut.terminate) cut.terminate();
    else cut.close(4000, 'ping timeout');
    handlers.ended({ opened, reason: `no pong within ${pingTimeoutMs} ms` });
  };

  socket.binaryType = 'arraybuffer';
  socket.onerror = ignore; // a close event follows
  socket.onopen = () => {
    opened = true;
    schedulePing();
  };
  socket.onmessage = (event: MessageLike) => {
    const frame = parseFrame(event.data);
    if (!frame) return;
    if (frame.event === PONG && awaitingPong) schedulePing();
    handlers.frame(frame);
  };
  socket.onclose = ({ code, reason }: CloseLike) => {
    stop();
    handlers.ended({ opened, code, reason: opened && ORDERLY_CLOSES.includes(code) ? '' : `WebSocket closed with ${code} ${reason}`.trim() });
  };
  return {
    kind: 'websocket',
    topics: new Set(request.topics),
    send,
    heartbeat(ms) {
      pingIntervalMs = options.pingIntervalMs ?? Math.min(pingIntervalMs, ms);
      pingTimeoutMs = options.pingTimeoutMs ?? Math.min(pingTimeoutMs, ms * (DEAD_LINK_FACTOR - 1));
      if (!awaitingPong) schedulePing();
    },
    close() {
      stop();
      try {
        socket.close(NORMAL_CLOSURE);
      } catch {
        // Closing a socket that never connected may throw in some implementations; it is gone either way.
      }
    },
  };
}

/** A frame's JSON object (text, or UTF-8 in a binary frame); `undefined` for anything else. */
function parseFrame(data: unknown): ClientFrame | undefined {
  try {
    const frame = JSON.parse(typeof data === 'string' ? data : decoder.decode(data as ArrayBuffer)) as ClientFrame | null;
    return typeof frame?.event === 'string' ? frame : undefined;
  } catch {
    return undefined;
  }
}
