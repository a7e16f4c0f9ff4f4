import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { parseConnectRequest, parseRewind } from '../core/connect-request.js';
import { httpStatusOf, PushletError, PushletLimitError, PushletRouteRefusal, PushletUnavailableError, PushletValidationError } from '../core/errors.js';
import type { Session } from '../core/session.js';
import { DEFAULT_TOPIC } from '../core/topic.js';
import { earlyFlushBytes, WriteBatch } from '../core/write-batch.js';
import { PushletHub, type TransportRuntime } from '../pushlet.hub.js';
import { PushletRoutes } from '../pushlet.routes.js';
import { SseConnection } from './sse-connection.js';
import { heartbeatFrame, httpChunk, SSE_HEADERS } from './sse-encoder.js';
import { parseSseFormat } from '../protocol/sse.js';
import { MESSAGES } from '../pushlet.messages.js';

/** How soon a client whose start could not be served is asked to come back (the SSE `retry:` field). */
const RETRY_MS = 1_000;

/** Express hands over Node's objects; Fastify wraps them (`raw`) and wants the reply hijacked. */
interface AdapterRequest {
  raw?: IncomingMessage;
}
interface AdapterResponse {
  raw?: ServerResponse;
  hijack?: () => void;
}
type RequestListener = (this: Server, request: IncomingMessage, response: ServerResponse) => void;
type RouteHandler = (req: AdapterRequest & IncomingMessage, res: AdapterResponse & ServerResponse) => void;

/**
 * The built-in SSE route (`GET /events` by default): parses the request, answers 400/403/503
 * before any stream starts, and hands the stream to a session. It is registered on the HTTP
 * adapter directly rather than through an `@Sse()` controller, because the contract needs what
 * `@Sse()` does not give at a configurable path: `Last-Event-ID`, exact headers, and an error
 * status before any stream starts. Users who want guards around it use `PushletService.stream()`.
 */
@Injectable()
export class SseTransport implements OnModuleInit, BeforeApplicationShutdown {
  /** The open streams by their response (one listener for all: a closure per stream costs memory). */
  private readonly connections = new Map<ServerResponse, SseConnection>();
  /** A response's `close` listener: `this` is the response. */
  private readonly closed: (this: ServerResponse) => void;
  private readonly batch: WriteBatch;
  private stopHeartbeat: (() => void) | undefined;
  private unmountDirect: (() => void) | undefined;
  private readonly runtime: TransportRuntime;

  constructor(
    hub: PushletHub,
    private readonly adapterHost: HttpAdapterHost,
    private readonly routes: PushletRoutes,
  ) {
    this.runtime = hub.transport();
    const connections = this.connections;
    this.closed = function (this: ServerResponse) {
      connections.get(this)?.session.dispose();
      connections.delete(this);
    };
    this.batch = new WriteBatch(earlyFlushBytes(this.runtime.options.limits.bufferBytes));
  }

  get openConnections(): number {
    return this.connections.size;
  }

  onModuleInit(): void {
    const sse = this.runtime.options.sse;
    if (!sse) return;
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter) {
      this.runtime.logger.warn('no HTTP adapter: the SSE route is not mounted');
      return;
    }
    const path = this.routes.path(sse.path);
    const route: RouteHandler = (req, res) => {
      res.hijack?.();
      this.serve(req.raw ?? req, res.raw ?? res, req, res);
    };
    adapter.get(path, route);
    this.serveDirectly(adapter, path, route);
    this.runtime.logger.log(`Mapped {${path}, GET} route (Pushlet Server-Sent Events)`);
    this.stopHeartbeat = this.runtime.heartbeat.onTick((now) => {
      const frame = heartbeatFrame(now);
      const chunk = httpChunk(frame);
      for (const connection of this.connections.values()) connection.writeShared(frame, chunk);
    });
  }

  beforeApplicationShutdown(): void {
    this.unmountDirect?.();
    this.runtime.gate.close();
    this.stopHeartbeat?.();
    for (const connection of this.connections.values()) connection.session.end('shutdown');
    this.connections.clear();
    this.batch.flushAll();
  }

  /**
   * Takes `GET <path>` off the HTTP server before the framework sees it, when the framework would
   * add nothing to it: an Express app with no middleware of its own before the route (Nest's body
   * parsers aside) and no guards to run. Express gives every request it handles a prototype of its
   * own and per-request state (`req.res`, `req.next` and the router's closure, `req.query`, ...)
   * that an open stream keeps alive for as long as it is open: about 4 KB a connection, most of an
   * idle stream's cost. Anything else (middleware that may wrap the response, guards, Fastify, a
   * path spelled differently) goes through the framework's route as before. Decided at the first
   * request, when the app's middleware and guards are all in place.
   */
  private serveDirectly(adapter: { getHttpServer?(): unknown; getInstance?(): unknown; getType?(): string }, path: string, route: RouteHandler): void {
    const server = adapter.getHttpServer?.() as Server | undefined;
    if (!server || typeof server.listeners !== 'function' || adapter.getType?.() !== 'express') return;
    let direct: boolean | undefined;
    const listeners = server.listeners('request') as RequestListener[];
    const dispatch = (request: IncomingMessage, response: ServerResponse): void => {
      if (request.method === 'GET' && pathOf(request.url) === path && (direct ??= this.frameworkAddsNothing(adapter, path, route))) {
        return this.serve(request, response, request, response);
      }
      for (const listener of listeners) listener.call(server, request, response);
    };
    for (const listener of listeners) server.removeListener('request', listener);
    // What the app's listeners were, for who looks for the Express app there (client-address.ts).
    server.on('request', Object.assign(dispatch, { framework: listeners }));
    this.unmountDirect = () => {
      server.removeListener('request', dispatch);
      for (const listener of listeners) server.on('request', listener);
    };
  }

  /** Whether the Express app runs nothing of its own before the route at `path` (and no guard would run). */
  private frameworkAddsNothing(adapter: { getInstance?(): unknown }, path: string, route: RouteHandler): boolean {
    try {
      return this.expressAddsNothing(adapter, path, route);
    } catch {
      return false; // an Express app not shaped as expected: its route serves the stream
    }
  }

  private expressAddsNothing(adapter: { getInstance?(): unknown }, path: string, route: RouteHandler): boolean {
    if (this.routes.hasGuards()) return false;
    const hooks = adapter as { onRequestHook?: unknown; onResponseHook?: unknown };
    if (hooks.onRequestHook || hooks.onResponseHook) return false;
    const app = adapter.getInstance?.() as { _router?: { stack?: unknown }; router?: { stack?: unknown } } | undefined;
    const stack = (app?._router ?? app?.router)?.stack;
    if (!Array.isArray(stack)) return false;
    for (const [index, layer] of (stack as ExpressLayer[]).entries()) {
      if (layer.route?.stack?.some((entry) => entry.handle === route)) return true;
      if (typeof layer.match === 'function' && !layer.match(path)) continue;
      if (layer.route || !(HARMLESS_MIDDLEWARE.has(layer.name ?? '') || isNestHookLayer(layer, index))) return false;
    }
    return false;
  }

  /** Serves one request on the route, answering 500 (or cutting the stream) if it fails. */
  private serve(request: IncomingMessage, response: ServerResponse, adapterRequest: unknown, adapterResponse: unknown): void {
    this.handle(request, response, adapterRequest, adapterResponse).catch((error: unknown) => {
      this.runtime.logger.error(`SSE request failed: ${String(error)}`);
      if (!response.headersSent) respondError(response, 500, 'internal error');
      else response.destroy();
    });
  }

  private async handle(request: IncomingMessage, response: ServerResponse, adapterRequest: unknown, adapterResponse: unknown): Promise<void> {
    const { gate, sessions } = this.runtime;
    let session: Session;
    let connection: SseConnection;
    let topics: string[];
    let lastEventId: string | undefined;
    let rewind: number | undefined;
    try {
      gate.checkOpen(request);
      await this.routes.check('sse', adapterRequest as IncomingMessage, adapterResponse);
      if (request.destroyed || response.destroyed) return;
      const connect = parseConnectRequest(request, [DEFAULT_TOPIC]);
      ({ topics, lastEventId } = connect);
      const format = parseSseFormat(connect.params.get('format'));
      if (format === undefined) throw gate.refused(new PushletValidationError(MESSAGES.sseFormat));
      rewind = parseRewind(connect.params);
      if (rewind === undefined) throw gate.refused(new PushletValidationError(MESSAGES.rewindType));
      const identity = await gate.identify(request, 'sse');
      if (request.destroyed || response.destroyed) return;
      connection = new SseConnection(request, response, this.batch, format);
      session = connection.session = sessions.open(connection, 'sse', request, identity);
    } catch (error) {
      return reject(response, error);
    }
    try {
      await session.admitAll(topics);
      if (request.destroyed || response.destroyed) return session.dispose();
      // The shutdown began while the topics were checked: it has ended the streams it knew of.
      gate.checkOpen(request);
    } catch (error) {
      session.dispose();
      return reject(response, error);
    }
    this.connections.set(response, connection);
    response.on('close', this.closed);
    // No TCP keep-alive: the heartbeat (always on) writes long before its first probe (2 h by
    // default on Linux) and finds a dead peer itself; setting it costs a system call per stream.
    request.socket.setNoDelay(true);
    request.socket.setTimeout(0);
    connection.open(SSE_HEADERS);
    // A request without a body is complete by now: read to its end, it is destroyed (Node's
    // autoDestroy) and released. When the client goes, Node's HTTP server destroys the requests
    // it still counts as incoming with an ECONNRESET error, and formats that error's stack unless
    // the request is destroyed already: 6 % of the CPU of an SSE connection churn (`--cpu-prof`).
    // A body is left unread (TCP holds the sender back) rather than read and thrown away. The
    // stream's end is the response's `close`, as before.
    if (request.complete) request.resume();
    try {
      await session.start(topics, lastEventId, [], rewind);
    } catch (error) {
      if (!(error instanceof PushletUnavailableError)) throw error;
      // Nothing was sent yet: the client reconnects with the same Last-Event-ID (EventSource does).
      connection.retryLater(RETRY_MS);
    }
  }
}

/** Express's body parsers: nothing they do reaches a GET without a body. */
const HARMLESS_MIDDLEWARE = new Set(['query', 'expressInit', 'jsonParser', 'urlencodedParser', 'rawParser', 'textParser']);

interface ExpressLayer {
  name?: string;
  handle?: unknown;
  route?: { stack?: Array<{ handle?: unknown }> };
  match?: (path: string) => boolean;
}

/**
 * The layer Nest's Express adapter puts first, which runs its request and response hooks (both
 * unset: checked before). Recognised by its source, as Nest exports nothing to compare it with.
 */
function isNestHookLayer(layer: ExpressLayer, index: number): boolean {
  return index === 0 && typeof layer.handle === 'function' && String(layer.handle).includes('onResponseHook');
}

/** The path of a request's origin-form target (`/events?topic=a` → `/events`); anything else is not matched. */
function pathOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * Answers a request turned away before its stream started: a guard's status and body, or the
 * module's error as `{ statusCode, message }`. A 503 at shutdown closes the connection after it:
 * a client that kept reconnecting on the same keep-alive connection would keep it busy, and
 * Node's `server.close()` waits for busy connections forever.
 */
function reject(response: ServerResponse, error: unknown): void {
  if (error instanceof PushletRouteRefusal) return respondJson(response, error.status, error.body);
  if (!(error instanceof PushletError)) throw error;
  const statusCode = httpStatusOf(error)!;
  const closing = error instanceof PushletLimitError && error.reason === 'shutdown';
  respondJson(response, statusCode, { statusCode, message: error.message }, closing ? { Connection: 'close' } : {});
}

function respondError(response: ServerResponse, statusCode: number, message: string): void {
  respondJson(response, statusCode, { statusCode, message });
}

function respondJson(response: ServerResponse, statusCode: number, value: Record<string, unknown>, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  response.writeHead(statusCode, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...(statusCode === 503 ? { 'Retry-After': '1' } : {}),
    ...headers,
  });
  response.end(body);
}
