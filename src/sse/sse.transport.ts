import type { IncomingMessage, ServerResponse } from 'node:http';
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
  private readonly runtime: TransportRuntime;

  constructor(
    hub: PushletHub,
    private readonly adapterHost: HttpAdapterHost,
    private readonly routes: PushletRoutes,
  ) {
    this.runtime = hub.transport();
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
    adapter.get(path, (req: AdapterRequest & IncomingMessage, res: AdapterResponse & ServerResponse) => {
      const request = req.raw ?? req;
      const response = res.raw ?? res;
      res.hijack?.();
      this.handle(request, response, req, res).catch((error: unknown) => {
        this.runtime.logger.error(`SSE request failed: ${String(error)}`);
        if (!response.headersSent) respondError(response, 500, 'internal error');
        else response.destroy();
      });
    });
    this.runtime.logger.log(`Mapped {${path}, GET} route (Pushlet Server-Sent Events)`);
    this.stopHeartbeat = this.runtime.heartbeat.onTick((now) => {
      const frame = heartbeatFrame(now);
      const chunk = httpChunk(frame);
      for (const connection of this.connections) connection.writeShared(frame, chunk);
    });
  }

  beforeApplicationShutdown(): void {
    this.runtime.gate.close();
    this.stopHeartbeat?.();
    for (const connection of this.connections) connection.session.end('shutdown');
    this.connections.clear();
    this.batch.flushAll();
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
      await session.start(topics, lastEventId, [], rewind);
    } catch (error) {
      if (!(error instanceof PushletUnavailableError)) throw error;
      // Nothing was sent yet: the client reconnects with the same Last-Event-ID (EventSource does).
      connection.retryLater(RETRY_MS);
    }
  }
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
