import { EVENTS } from '../protocol/frames.js';
import type { ClientFrame, ConnectRequest, Transport, TransportEnd, TransportHandlers } from './transport.js';

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

export interface WsTransportSettings {
  readonly url: URL;
  readonly WebSocket: WebSocketConstructor;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
}

const OPEN = 1;
const NORMAL_CLOSURE = 1000;
const decoder = new TextDecoder();

/**
 * One WebSocket connection: topics, resume id and token on the URL (one round trip subscribes
 * and resumes everything), JSON commands out, JSON frames in, and the protocol's ping: a pong
 * later than `pingTimeoutMs` drops the connection (a half-open TCP connection shows no close).
 */
export class WsTransport implements Transport {
  readonly kind = 'websocket';
  readonly topics: ReadonlySet<string>;
  private readonly socket: WebSocketLike;
  private opened = false;
  private finished = false;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private pings = 0;

  constructor(
    private readonly settings: WsTransportSettings,
    request: ConnectRequest,
    private readonly handlers: TransportHandlers,
  ) {
    this.topics = new Set(request.topics);
    const url = new URL(settings.url);
    for (const topic of request.topics) url.searchParams.append('topic', topic);
    if (request.lastEventId !== undefined) url.searchParams.set('lastEventId', request.lastEventId);
    if (request.token !== undefined) url.searchParams.set('token', request.token);
    this.socket = new settings.WebSocket(url.toString());
    this.socket.binaryType = 'arraybuffer';
    this.socket.onopen = () => {
      this.opened = true;
      this.schedulePing();
    };
    this.socket.onmessage = (event: MessageLike) => this.receive(event.data);
    this.socket.onerror = () => undefined; // a close event follows
    this.socket.onclose = (event: CloseLike) => {
      const normal = event.code === NORMAL_CLOSURE || event.code === 1001 || event.code === 1013;
      this.finish(
        this.opened && normal
          ? { kind: 'ended', code: event.code }
          : { kind: 'dropped', opened: this.opened, code: event.code, detail: `WebSocket closed with ${event.code} ${event.reason}`.trim() },
      );
    };
  }

  send(command: Record<string, unknown>): boolean {
    if (this.finished || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(command));
    return true;
  }

  close(): void {
    if (this.finished) return;
    this.finished = true;
    this.stopTimers();
    this.detach();
    try {
      this.socket.close(NORMAL_CLOSURE);
    } catch {
      // Closing a socket that never connected may throw in some implementations; it is gone either way.
    }
  }

  private receive(data: unknown): void {
    const text = typeof data === 'string' ? data : data instanceof ArrayBuffer ? decoder.decode(data) : ArrayBuffer.isView(data) ? decoder.decode(data as Uint8Array) : undefined;
    if (text === undefined) return;
    let frame: ClientFrame;
    try {
      frame = JSON.parse(text) as ClientFrame;
    } catch {
      return;
    }
    if (typeof frame !== 'object' || frame === null || typeof frame.event !== 'string') return;
    if (frame.event === EVENTS.pong) this.pong();
    this.handlers.frame(frame);
  }

  private schedulePing(): void {
    this.pingTimer = setTimeout(() => {
      this.pingTimer = undefined;
      if (!this.send({ action: 'ping', ref: `ping-${++this.pings}` })) return;
      this.pongTimer = setTimeout(() => this.dead(), this.settings.pingTimeoutMs);
    }, this.settings.pingIntervalMs);
  }

  private pong(): void {
    if (this.pongTimer === undefined) return;
    clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
    this.schedulePing();
  }

  /** No pong in time: the connection is presumed dead, and cut without waiting for a closing handshake. */
  private dead(): void {
    this.pongTimer = undefined;
    const socket = this.socket as WebSocketLike & { terminate?: () => void };
    this.finish({ kind: 'dropped', opened: true, detail: `no pong within ${this.settings.pingTimeoutMs} ms` });
    this.detach();
    if (socket.terminate) socket.terminate();
    else socket.close(4000, 'ping timeout');
  }

  private finish(end: TransportEnd): void {
    if (this.finished) return;
    this.finished = true;
    this.stopTimers();
    this.handlers.ended(end);
  }

  private stopTimers(): void {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = undefined;
  }

  private detach(): void {
    this.socket.onopen = this.socket.onmessage = this.socket.onclose = null;
    // Keep an error listener: `ws` emits 'error' when closed while connecting, and an unheard one throws.
    this.socket.onerror = () => undefined;
  }
}
