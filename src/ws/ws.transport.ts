import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ApplicationConfig, HttpAdapterHost } from '@nestjs/core';
import type { RawData, WebSocket } from 'ws';
import { parseConnectRequest, parseRewind } from '../core/connect-request.js';
import { httpStatusOf, PushletLimitError, PushletRouteRefusal, PushletUnauthorizedError, PushletUnavailableError } from '../core/errors.js';
import type { Session } from '../core/session.js';
import { sessionEndWire } from '../core/session-end.js';
import { settleWithin } from '../core/timers.js';
import { earlyFlushBytes, WriteBatch } from '../core/write-batch.js';
import { PushletHub, type TransportRuntime } from '../pushlet.hub.js';
import { PushletRoutes } from '../pushlet.routes.js';
import { MESSAGES } from '../pushlet.messages.js';
import { parseCommandFrame } from './ws-commands.js';
import { EVENTS } from '../protocol/frames.js';
import { CLOSE_CODES, CLOSE_GRACE_MS, WsConnection, type WsConnectionHandlers, type WsConnectionSettings } from './ws-connection.js';
import { mountWsServer, type MountedWsServer } from './ws-server.js';

/**
 * The built-in WebSocket endpoint (`/ws` by default): one connection subscribes to and leaves
 * many topics while it stays open (docs/protocol.md, "WebSocket"). It parses upgrades and commands
 * and hands them to the connection's session; frames are described in `protocol/frames.ts`,
 * commands in `protocol/commands.ts`.
 */
@Injectable()
export class WsTransport implements OnModuleInit, BeforeApplicationShutdown {
  private readonly connections = new Set<WsConnection>();
  private mounted: MountedWsServer | undefined;
  private stopHeartbeat: (() => void) | undefined;
  private settings!: WsConnectionSettings;
  private readonly handlers: WsConnectionHandlers = {
    frame: (connection, data) => this.receive(connection, data),
    failed: (connection, error) => this.runtime.logger.error(`WebSocket connection from ${connection.address} failed: ${String(error)}`),
    closed: (connection) => this.connections.delete(connection),
  };
  private readonly runtime: TransportRuntime;

  constructor(
    hub: PushletHub,
    private readonly adapterHost: HttpAdapterHost,
    private readonly applicationConfig: ApplicationConfig,
    private readonly routes: PushletRoutes,
  ) {
    this.runtime = hub.transport();
  }

  get openConnections(): number {
    return this.connections.size;
  }

  async onModuleInit(): Promise<void> {
    const {
      options: { ws: options, limits },
      logger,
      gate,
      heartbeat,
    } = this.runtime;
    if (!options) return;
    const httpServer = this.adapterHost?.httpAdapter?.getHttpServer() as HttpServer | undefined;
    if (!httpServer) {
      logger.warn('no HTTP server: the WebSocket endpoint is not mounted');
      return;
    }
    this.settings = {
      binary: options.frame !== 'text',
      commandsPerSecond: options.commandsPerSecond,
      writeBatch: new WriteBatch(earlyFlushBytes(limits.bufferBytes)),
    };
    const path = this.routes.path(options.path);
    const admit = async (request: IncomingMessage) => {
      try {
        await this.routes.check('ws', request, undefined);
        // Who it is, before the upgrade is answered: a no is an HTTP 401, never an open socket.
        await gate.identify(request, 'ws');
        return undefined;
      } catch (error) {
        if (error instanceof PushletRouteRefusal) return { status: error.status, body: JSON.stringify(error.body) };
        if (!(error instanceof PushletUnauthorizedError)) throw error;
        const status = httpStatusOf(error)!;
        return { status, body: JSON.stringify({ statusCode: status, message: error.message }) };
      }
    };
    const refused = () => gate.refusedFor('origin');
    this.mounted = await mountWsServer({ ...options, path, admit, refused }, httpServer, this.applicationConfig?.getIoAdapter());
    logger.log(`Mapped {${path}} WebSocket endpoint (Pushlet, through ${this.mounted.via})`);
    this.mounted.server.on('connection', (socket: WebSocket, request: IncomingMessage) => this.accept(socket, request));
    this.stopHeartbeat = heartbeat.onTick(() => this.heartbeat());
  }

  /** Closes every client with 1001, waits briefly for the handshakes, then cuts the stragglers. */
  async beforeApplicationShutdown(): Promise<void> {
    this.runtime.gate.close();
    this.stopHeartbeat?.();
    this.settings?.writeBatch.flushAll();
    const open = [...this.connections];
    for (const connection of open) connection.session.end('shutdown');
    await settleWithin(Promise.allSettled(open.map((connection) => connection.ended)), CLOSE_GRACE_MS);
    const stragglers = [...this.connections];
    for (const connection of stragglers) connection.terminate();
    await settleWithin(Promise.allSettled(stragglers.map((connection) => connection.ended)), CLOSE_GRACE_MS);
    try {
      this.mounted?.unmount();
    } catch (error) {
      this.runtime.logger.error(`WebSocket server did not close cleanly: ${String(error)}`);
    }
    this.mounted = undefined;
  }

  /** One tick for every connection (the timer is shared by both transports: nothing may throw out of it). */
  private heartbeat(): void {
    for (const connection of this.connections) {
      try {
        connection.heartbeat();
      } catch (error) {
        this.runtime.logger.warn(`WebSocket heartbeat failed for ${connection.address}: ${String(error)}`);
        connection.terminate();
      }
    }
  }

  /** Runs inside the `ws` server's event: whatever goes wrong, the socket is dropped, never the process. */
  private accept(socket: WebSocket, request: IncomingMessage): void {
    // A protocol error (bad frame, frame over maxPayload) is followed by a close; never a crash.
    socket.on('error', (error) => this.runtime.logger.debug?.(`WebSocket client error: ${error.message}`));
    try {
      this.takeOn(socket, request);
    } catch (error) {
      this.runtime.logger.error(`WebSocket connection could not be set up: ${String(error)}`);
      socket.terminate();
    }
  }

  private takeOn(socket: WebSocket, request: IncomingMessage): void {
    let connection: WsConnection;
    let session: Session;
    try {
      this.runtime.gate.checkOpen(request);
      connection = new WsConnection(socket, request, this.settings, this.handlers);
      session = this.runtime.sessions.open(connection, 'ws', request);
    } catch (error) {
      if (!(error instanceof PushletLimitError)) throw error;
      // Turned away at shutdown: closed as the shutdown closes the others; at a limit, 1013.
      refuse(socket, error.reason === 'shutdown' ? sessionEndWire('shutdown').closeCode : CLOSE_CODES.tryAgainLater, error.message);
      return;
    }
    connection.session = session;
    this.connections.add(connection);
    connection.run(() => this.open(connection));
  }

  /**
   * First task of every connection: subscribes the URL's topics and broadcasts, resuming them
   * after `Last-Event-ID` / `?lastEventId=` when given, else rewinding them by `?rewind=` (a
   * malformed one is answered `pushlet:error` after `pushlet:connected`, and no rewind).
   */
  private async open(connection: WsConnection): Promise<void> {
    const { topics, lastEventId, params } = parseConnectRequest(connection.request);
    const rewind = parseRewind(params);
    await this.orRetryLater(connection, this.runtime.commands.open(connection.session, topics, lastEventId, rewind ?? 0));
    if (rewind === undefined) connection.session.notice({ event: EVENTS.error, data: MESSAGES.rewindType });
  }

  /** A start the broker cannot serve now closes with 1013: the client resumes later with the same id. */
  private async orRetryLater(connection: WsConnection, work: Promise<void>): Promise<void> {
    try {
      await work;
    } catch (error) {
      if (!(error instanceof PushletUnavailableError)) throw error;
      connection.close(CLOSE_CODES.tryAgainLater, MESSAGES.historyUnavailable);
    }
  }

  private receive(connection: WsConnection, data: RawData): void {
    const parsed = parseCommandFrame(data);
    const { session } = connection;
    const commands = this.runtime.commands;
    if (parsed.ok) connection.run(() => this.orRetryLater(connection, commands.run(session, parsed.command)));
    else connection.run(() => commands.malformed(session, parsed.error));
  }
}

/** Closes a connection that was never taken on; cut off if the peer does not complete the close. */
function refuse(socket: WebSocket, code: number, reason: string): void {
  const timer = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.close(code, reason);
}
