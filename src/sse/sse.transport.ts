import type { IncomingMessage, ServerResponse } from 'node:http';
import { Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { PushletError, PushletForbiddenError, PushletLimitError, PushletUnauthorizedError, PushletUnavailableError } from '../core/errors.js';
import type { Session } from '../core/session.js';
import { DEFAULT_TOPIC } from '../core/topic.js';
import { earlyFlushBytes, WriteBatch } from '../core/write-batch.js';
import { PushletHub } from '../pushlet.hub.js';
import { PushletRouteRefusal, PushletRoutes } from '../pushlet.routes.js';
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

/**
 * The built-in SSE route (`GET /events` by default): parses the request, answers 400/403/503
 * before any stream starts, and hands the stream to a session. It is registered on the HTTP
 * adapter directly rather than through an `@Sse()` controller, because the contract needs what
 * `@Sse()` does not give at a configurable path: `Last-Event-ID`, exact headers, and an error
 * status before any stream starts. Users who want guards around it use `PushletService.stream()`.
 */
@Injectable()
export class SseTransport implements OnModuleInit, BeforeApplicationShutdown {
  private readonly connections = new Set<SseConnection>();
  private readonly batch: WriteBatch;
  private stopHeartbeat: (() => void) | undefined;
  /** Set when the app starts shutting down: from then on no stream starts, since none would be ended. */
  private shuttingDown = false;

  constructor(
    private readonly hub: PushletHub,
    private readonly adapterHost: HttpAdapterHost,
    private readonly routes: PushletRoutes,
  ) {
    this.batch = new WriteBatch(earlyFlushBytes(hub.options.limits.bufferBytes));
  }

  get openConnections(): number {
    return this.connections.size;
  }

  onModuleInit(): void {
    const sse = this.hub.options.sse;
    if (!sse) return;
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter) {
      this.hub.logger.warn('no HTTP adapter: the SSE route is not mounted');
      return;
    }
    const path = this.routes.path(sse.path);
    adapter.get(path, (req: AdapterRequest & IncomingMessage, res: AdapterResponse & ServerResponse) => {
      const request = req.raw ?? req;
      const response = res.raw ?? res;
      res.hijack?.();
      this.handle(request, response, req, res).catch((error: unknown) => {
        this.hub.logger.error(`SSE request failed: ${String(error)}`);
        if (!response.headersSent) respondError(response, 500, 'internal error');
        else response.destroy();
      });
    });
    this.hub.logger.log(`Mapped {${path}, GET} route (Pushlet Server-Sent Events)`);
    this.stopHeartbeat = this.hub.heartbeat.onTick((now) => {
      const frame = heartbeatFrame(now);
      const chunk = httpChunk(frame);
      for (const connection of this.connections) connection.writeShared(frame, chunk);
    });
  }

  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
    this.stopHeartbeat?.();
    for (const connection of this.connections) connection.session.end('shutdown');
    this.connections.clear();
    this.batch.flushAll();
  }

  private async handle(request: IncomingMessage, response: ServerResponse, adapterRequest: unknown, adapterResponse: unknown): Promise<void> {
    if (this.shuttingDown) return refuseWhileShuttingDown(response);
    try {
      await this.routes.check('sse', adapterRequest as IncomingMessage, adapterResponse);
    } catch (error) {
      if (!(error instanceof PushletRouteRefusal)) throw error;
      return respondJson(response, error.status, error.body);
    }
    if (request.destroyed || response.destroyed) return;
    const url = new URL(request.url ?? '/', 'http://localhost');
    const requested = url.searchParams.getAll('topic');
    const topics = requested.length === 0 ? [DEFAULT_TOPIC] : [...new Set(requested)];
    const lastEventId = headerValue(request.headers['last-event-id']) ?? url.searchParams.get('lastEventId') ?? undefined;
    const format = parseSseFormat(url.searchParams.get('format'));
    if (format === undefined) {
      this.hub.counters.refusal('invalid');
      return respondError(response, 400, MESSAGES.sseFormat);
    }

    let identity;
    try {
      identity = await this.hub.identify(request, 'sse');
    } catch (error) {
      return rejectRequest(response, error);
    }
    if (request.destroyed || response.destroyed) return;
    const connection = new SseConnection(request, response, this.batch, format);
    let session: Session;
    try {
      session = this.hub.openSession(connection, 'sse', request, identity);
    } catch (error) {
      return rejectRequest(response, error);
    }
    connection.session = session;
    try {
      await session.admitAll(topics);
    } catch (error) {
      session.dispose();
      return rejectRequest(response, error);
    }
    if (request.destroyed || response.destroyed) {
      session.dispose();
      return;
    }
    if (this.shuttingDown) {
      // The shutdown began while the topics were checked: it has ended the streams it knew of.
      session.dispose();
      return refuseWhileShuttingDown(response);
    }
    this.connections.add(connection);
    response.on('close', () => {
      this.connections.delete(connection);
      session.dispose();
    });
    request.socket.setNoDelay(true);
    request.socket.setKeepAlive(true);
    request.socket.setTimeout(0);
    connection.open(SSE_HEADERS);
    try {
      await session.start(topics, lastEventId);
    } catch (error) {
      if (!(error instanceof PushletUnavailableError)) throw error;
      // Nothing was sent yet: the client reconnects with the same Last-Event-ID (EventSource does).
      connection.retryLater(RETRY_MS);
    }
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function rejectRequest(response: ServerResponse, error: unknown): void {
  if (!(error instanceof PushletError)) throw error;
  const status =
    error instanceof PushletUnauthorizedError ? 401 : error instanceof PushletForbiddenError ? 403 : error instanceof PushletLimitError ? 503 : 400;
  respondError(response, status, error.message);
}

/**
 * 503, and the connection closed after it: a client that kept reconnecting on the same keep-alive
 * connection would keep it busy, and Node's `server.close()` waits for busy connections forever.
 */
function refuseWhileShuttingDown(response: ServerResponse): void {
  respondJson(response, 503, { statusCode: 503, message: MESSAGES.shuttingDown }, { Connection: 'close' });
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
