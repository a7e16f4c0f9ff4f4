import type { IncomingMessage, ServerResponse } from 'node:http';
import { Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { ConnectionSlot } from '../core/connection-tracker.js';
import { PushletError, PushletForbiddenError, PushletLimitError } from '../core/errors.js';
import { BROADCAST_TOPIC, DEFAULT_TOPIC } from '../core/topic.js';
import { WriteBatch } from '../core/write-batch.js';
import { PushletHub } from '../pushlet.hub.js';
import { SseConnection } from './sse-connection.js';
import { encodeFrame, heartbeatFrame, httpChunk, SSE_HEADERS } from './sse-encoder.js';

/** Express hands over Node's objects; Fastify wraps them (`raw`) and wants the reply hijacked. */
interface AdapterRequest {
  raw?: IncomingMessage;
}
interface AdapterResponse {
  raw?: ServerResponse;
  hijack?: () => void;
}

/**
 * The built-in SSE route (`GET /events` by default). It is registered on the HTTP adapter
 * directly rather than through an `@Sse()` controller, because the contract needs what `@Sse()`
 * does not give at a configurable path: `Last-Event-ID`, exact headers, and a 400/403/503 answer
 * before any stream starts. Users who want guards around it use `PushletService.stream()`.
 */
@Injectable()
export class SseTransport implements OnModuleInit, BeforeApplicationShutdown {
  private readonly connections = new Set<SseConnection>();
  private readonly batch = new WriteBatch();
  private stopHeartbeat: (() => void) | undefined;

  constructor(
    private readonly hub: PushletHub,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

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
    adapter.get(sse.path, (req: AdapterRequest & IncomingMessage, res: AdapterResponse & ServerResponse) => {
      const request = req.raw ?? req;
      const response = res.raw ?? res;
      res.hijack?.();
      this.handle(request, response).catch((error: unknown) => {
        this.hub.logger.error(`SSE request failed: ${String(error)}`);
        if (!response.headersSent) respondError(response, 500, 'internal error');
        else response.destroy();
      });
    });
    this.stopHeartbeat = this.hub.heartbeat.onTick((now) => {
      const frame = heartbeatFrame(now);
      const chunk = httpChunk(frame);
      for (const connection of this.connections) connection.writeShared(frame, chunk);
    });
  }

  beforeApplicationShutdown(): void {
    this.stopHeartbeat?.();
    for (const connection of this.connections) connection.end();
    this.connections.clear();
    this.batch.flushAll();
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const requested = url.searchParams.getAll('topic');
    const topics = requested.length === 0 ? [DEFAULT_TOPIC] : [...new Set(requested)];
    const lastEventId = headerValue(request.headers['last-event-id']) ?? url.searchParams.get('lastEventId') ?? undefined;

    let slot: ConnectionSlot;
    try {
      this.hub.validateTopics(topics);
      slot = this.hub.connections.acquire('sse', request.socket.remoteAddress ?? 'unknown');
    } catch (error) {
      return rejectRequest(response, error);
    }
    try {
      await this.hub.authorize(topics, 'sse', request);
    } catch (error) {
      slot.release();
      return rejectRequest(response, error);
    }
    if (request.destroyed || response.destroyed) {
      slot.release();
      return;
    }

    const connection = new SseConnection(
      request,
      response,
      slot,
      this.hub.options.limits.bufferBytes,
      lastEventId,
      (c) => this.hub.reportSlowConsumer('sse', c.request.socket.remoteAddress),
      this.batch,
    );
    this.connections.add(connection);
    response.on('close', () => {
      this.connections.delete(connection);
      connection.dispose();
    });
    request.socket.setNoDelay(true);
    request.socket.setKeepAlive(true);
    request.socket.setTimeout(0);
    connection.open(SSE_HEADERS);

    const from = lastEventId ?? (await this.hub.broker.position());
    if (connection.isClosed) return;
    connection.write(encodeFrame('pushlet:connected', JSON.stringify({ topics }), from));
    connection.feed = this.hub.createFeed(connection);
    await connection.feed.add([...topics, BROADCAST_TOPIC], from, lastEventId !== undefined);
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function rejectRequest(response: ServerResponse, error: unknown): void {
  if (!(error instanceof PushletError)) throw error;
  const status = error instanceof PushletForbiddenError ? 403 : error instanceof PushletLimitError ? 503 : 400;
  respondError(response, status, error.message);
}

function respondError(response: ServerResponse, statusCode: number, message: string): void {
  const body = JSON.stringify({ statusCode, message });
  response.writeHead(statusCode, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...(statusCode === 503 ? { 'Retry-After': '1' } : {}),
  });
  response.end(body);
}
