import http from 'node:http';
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { WebSocket, type RawData } from 'ws';
import { EventStreamParser } from './event-stream.js';

export type Transport = 'sse' | 'ws';

/** One frame as the chaos client sees it, whatever the transport. */
export interface ChaosFrame {
  /** The event name: `message`, `pushlet:connected`, `pushlet:reset`, ... */
  readonly event: string;
  /** The frame's data as a string (SSE: the joined data lines; WS: the `data` field). */
  readonly data: string;
  /** The frame's `topic` field (WS only). */
  readonly topic?: string;
}

export interface StreamHandlers {
  /** The client's resume id moves to `id` (SSE: an `id:` field; WS: a connected or message frame's id). */
  id(id: string): void;
  frame(frame: ChaosFrame): void;
  /** The connection ended, for whatever reason; called once. */
  closed(cause: string): void;
}

/** An open SSE or WebSocket connection that the client can close politely or cut. */
export interface StreamConnection {
  /** Ends the connection the ordinary way (SSE: FIN; WS: the closing handshake). */
  close(): void;
  /** Cuts the connection at once with a TCP reset. */
  destroy(): void;
}

export interface OpenOptions {
  readonly baseUrl: string;
  readonly topics: readonly string[];
  readonly lastEventId: string | undefined;
  readonly timeoutMs: number;
}

/**
 * Opens an SSE stream (`GET /events?topic=…`, `Last-Event-ID` when resuming) and resolves once
 * the response headers are in; rejects on a refused connection, a non-200 or the timeout.
 */
export function openSse(options: OpenOptions, handlers: StreamHandlers): Promise<StreamConnection> {
  const query = options.topics.map((t) => `topic=${encodeURIComponent(t)}`).join('&');
  const headers: Record<string, string> = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
  // EventSource sends no header while its last event id is the empty string.
  if (options.lastEventId) headers['Last-Event-ID'] = options.lastEventId;
  return new Promise((resolve, reject) => {
    let socket: Socket | undefined;
    let ended = false;
    const end = (cause: string) => {
      if (ended) return;
      ended = true;
      handlers.closed(cause);
    };
    const request = http.get(`${options.baseUrl}/events?${query}`, { headers, agent: false }, (response) => {
      clearTimeout(timer);
      if (response.statusCode !== 200) {
        response.resume();
        request.destroy();
        reject(new Error(`SSE answered ${response.statusCode}`));
        return;
      }
      const decoder = new StringDecoder('utf8');
      const parser = new EventStreamParser((event) => {
        if (event.id !== undefined) handlers.id(event.id);
        if (event.data !== undefined) handlers.frame({ event: event.event, data: event.data });
      });
      response.on('data', (chunk: Buffer) => parser.feed(decoder.write(chunk)));
      response.on('end', () => end('the server ended the stream'));
      response.on('close', () => end('the stream closed'));
      response.on('error', (error) => end(`stream error: ${error.message}`));
      resolve({
        close: () => {
          request.destroy();
          end('closed by the client');
        },
        destroy: () => {
          if (socket && !socket.destroyed) socket.resetAndDestroy();
          request.destroy();
          end('cut by the client');
        },
      });
    });
    request.on('socket', (s: Socket) => (socket = s));
    request.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
      end(`request error: ${error.message}`);
    });
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
  });
}

/**
 * Opens a WebSocket (`/ws?topic=…&lastEventId=…`) and resolves once it is open; rejects on a
 * refused upgrade or the timeout.
 */
export function openWs(options: OpenOptions, handlers: StreamHandlers): Promise<StreamConnection> {
  const params = new URLSearchParams(options.topics.map((t): [string, string] => ['topic', t]));
  if (options.lastEventId) params.set('lastEventId', options.lastEventId);
  const url = `${options.baseUrl.replace(/^http/, 'ws')}/ws?${params}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: options.timeoutMs });
    let socket: Socket | undefined;
    let opened = false;
    let ended = false;
    const end = (cause: string) => {
      if (ended) return;
      ended = true;
      handlers.closed(cause);
    };
    ws.on('upgrade', (response: http.IncomingMessage) => (socket = response.socket as Socket));
    ws.on('error', (error) => {
      if (!opened) reject(error);
      end(`socket error: ${error.message}`);
    });
    ws.on('close', (code: number) => end(`closed with ${code}`));
    ws.on('message', (raw: RawData) => {
      const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : Buffer.concat(raw as Buffer[]).toString('utf8');
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        handlers.frame({ event: 'chaos:unparsable', data: text });
        return;
      }
      const event = String(json.event);
      // The connected frame's id and every message's id are resume positions; notices' are not.
      if (typeof json.id === 'string' && (event === 'pushlet:connected' || !event.startsWith('pushlet:'))) handlers.id(json.id);
      handlers.frame({ event, data: typeof json.data === 'string' ? json.data : JSON.stringify(json.data), topic: json.topic as string | undefined });
    });
    ws.once('open', () => {
      opened = true;
      resolve({
        close: () => {
          ws.close(1000);
          // A peer that does not complete the handshake promptly is cut off.
          setTimeout(() => ws.terminate(), 1_000).unref();
        },
        destroy: () => {
          if (socket && !socket.destroyed) socket.resetAndDestroy();
          ws.terminate();
          end('cut by the client');
        },
      });
    });
  });
}
