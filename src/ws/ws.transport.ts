import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ApplicationConfig, HttpAdapterHost } from '@nestjs/core';
import type { RawData, WebSocket } from 'ws';
import type { ConnectionSlot } from '../core/connection-tracker.js';
import { PushletError, PushletLimitError } from '../core/errors.js';
import { BROADCAST_TOPIC } from '../core/topic.js';
import { WriteBatch } from '../core/write-batch.js';
import { PushletHub } from '../pushlet.hub.js';
import { MESSAGES } from '../pushlet.messages.js';
import { parseCommand, type WsCommand, type WsRef } from './ws-commands.js';
import { CLOSE_CODES, CLOSE_GRACE_MS, WsConnection, type WsConnectionHandlers, type WsConnectionSettings } from './ws-connection.js';
import { connectedFrame, errorFrame, pongFrame, subscribedFrame, unsubscribedFrame } from './ws-encoder.js';
import { mountWsServer, type MountedWsServer } from './ws-server.js';

/** A topic named in the upgrade URL that could not be subscribed, and why. */
interface RefusedTopic {
  readonly topic: string;
  readonly reason: string;
}

/**
 * The built-in WebSocket endpoint (`/ws` by default): one connection subscribes to and leaves
 * many topics while it stays open, reading the same per-topic streams as SSE (PROTOCOL.md,
 * "WebSocket"). Frames are described in `ws-encoder.ts`, commands in `ws-commands.ts`.
 */
@Injectable()
export class WsTransport implements OnModuleInit, BeforeApplicationShutdown {
  private readonly connections = new Set<WsConnection>();
  private mounted: MountedWsServer | undefined;
  private stopHeartbeat: (() => void) | undefined;
  private shuttingDown = false;
  private settings!: WsConnectionSettings;
  private readonly handlers: WsConnectionHandlers = {
    createFeed: (sink) => this.hub.createFeed(sink),
    frame: (connection, data) => this.receive(connection, data),
    slow: (connection) => this.hub.reportSlowConsumer('ws', connection.address),
    failed: (connection, error) => this.hub.logger.error(`WebSocket connection from ${connection.address} failed: ${String(error)}`),
    closed: (connection) => this.connections.delete(connection),
  };

  constructor(
    private readonly hub: PushletHub,
    private readonly adapterHost: HttpAdapterHost,
    private readonly applicationConfig: ApplicationConfig,
  ) {}

  get openConnections(): number {
    return this.connections.size;
  }

  async onModuleInit(): Promise<void> {
    const options = this.hub.options.ws;
    if (!options) return;
    const httpServer = this.adapterHost?.httpAdapter?.getHttpServer() as HttpServer | undefined;
    if (!httpServer) {
      this.hub.logger.warn('no HTTP server: the WebSocket endpoint is not mounted');
      return;
    }
    this.settings = {
      binary: options.frame !== 'text',
      bufferBytes: this.hub.options.limits.bufferBytes,
      commandsPerSecond: options.commandsPerSecond,
      writeBatch: new WriteBatch(),
    };
    this.mounted = await mountWsServer(options, httpServer, this.applicationConfig?.getIoAdapter());
    this.mounted.server.on('connection', (socket: WebSocket, request: IncomingMessage) => this.accept(socket, request));
    this.stopHeartbeat = this.hub.heartbeat.onTick(() => this.heartbeat());
  }

  /** Closes every client with 1001, waits briefly for the handshakes, then cuts the stragglers. */
  async beforeApplicationShutdown(): Promise<void> {
    this.shuttingDown = true;
    this.stopHeartbeat?.();
    this.settings?.writeBatch.flushAll();
    const open = [...this.connections];
    for (const connection of open) connection.close(CLOSE_CODES.goingAway, MESSAGES.shuttingDown);
    await settleWithin(
      open.map((connection) => connection.ended),
      CLOSE_GRACE_MS,
    );
    const stragglers = [...this.connections];
    for (const connection of stragglers) connection.terminate();
    await settleWithin(
      stragglers.map((connection) => connection.ended),
      CLOSE_GRACE_MS,
    );
    try {
      this.mounted?.unmount();
    } catch (error) {
      this.hub.logger.error(`WebSocket server did not close cleanly: ${String(error)}`);
    }
    this.mounted = undefined;
  }

  /** One tick for every connection (the timer is shared by both transports: nothing may throw out of it). */
  private heartbeat(): void {
    for (const connection of this.connections) {
      try {
        connection.heartbeat();
      } catch (error) {
        this.hub.logger.warn(`WebSocket heartbeat failed for ${connection.address}: ${String(error)}`);
        connection.terminate();
      }
    }
  }

  /** Runs inside the `ws` server's event: whatever goes wrong, the socket is dropped, never the process. */
  private accept(socket: WebSocket, request: IncomingMessage): void {
    // A protocol error (bad frame, frame over maxPayload) is followed by a close; never a crash.
    socket.on('error', (error) => this.hub.logger.debug?.(`WebSocket client error: ${error.message}`));
    try {
      this.takeOn(socket, request);
    } catch (error) {
      this.hub.logger.error(`WebSocket connection could not be set up: ${String(error)}`);
      socket.terminate();
    }
  }

  private takeOn(socket: WebSocket, request: IncomingMessage): void {
    if (this.shuttingDown) {
      refuse(socket, CLOSE_CODES.goingAway, MESSAGES.shuttingDown);
      return;
    }
    let slot: ConnectionSlot;
    try {
      slot = this.hub.connections.acquire('ws', request.socket.remoteAddress ?? 'unknown');
    } catch (error) {
      if (!(error instanceof PushletLimitError)) throw error;
      refuse(socket, CLOSE_CODES.tryAgainLater, error.message);
      return;
    }
    const connection = new WsConnection(socket, request, slot, this.settings, this.handlers);
    this.connections.add(connection);
    connection.run(() => this.open(connection));
  }

  /**
   * First task of every connection: subscribes the URL's topics and broadcasts, resuming them
   * after `?lastEventId=` when given, else from the current position (as the SSE route does).
   */
  private async open(connection: WsConnection): Promise<void> {
    const url = new URL(connection.request.url ?? '/', 'http://localhost');
    const requested = [...new Set(url.searchParams.getAll('topic'))];
    const lastEventId = url.searchParams.get('lastEventId') ?? undefined;
    const { accepted, refused } = await this.admit(connection, requested);
    const from = lastEventId ?? (await this.hub.broker.position());
    connection.send(connectedFrame(from, accepted));
    for (const { topic, reason } of refused) connection.send(errorFrame(reason, { topic }));
    const resume = lastEventId === undefined ? undefined : { lastEventId };
    await connection.subscribe([...accepted, BROADCAST_TOPIC], from, resume);
  }

  /** Splits the URL's topics into those the connection may subscribe and those it may not. */
  private async admit(connection: WsConnection, topics: readonly string[]) {
    const accepted: string[] = [];
    const refused: RefusedTopic[] = [];
    for (const topic of topics) {
      try {
        this.hub.validateTopics([topic], accepted.length);
        await this.hub.authorize([topic], 'ws', connection.request);
        accepted.push(topic);
      } catch (error) {
        if (!(error instanceof PushletError)) throw error;
        refused.push({ topic, reason: error.message });
      }
    }
    return { accepted, refused };
  }

  private receive(connection: WsConnection, data: RawData): void {
    const parsed = parseCommand(data);
    if (!parsed.ok) {
      const { reason, topic, ref } = parsed.error;
      connection.run(() => connection.send(errorFrame(reason, { topic, ref })));
      return;
    }
    connection.run(() => this.execute(connection, parsed.command));
  }

  /** Runs one command; the module's own errors are answered with a `pushlet:error` frame. */
  private async execute(connection: WsConnection, command: WsCommand): Promise<void> {
    try {
      if (command.action === 'ping') connection.send(pongFrame(command.ref));
      else if (command.action === 'subscribe') await this.subscribe(connection, command.topic, command.lastEventId, command.ref);
      else this.unsubscribe(connection, command.topic, command.ref);
    } catch (error) {
      if (!(error instanceof PushletError)) throw error;
      const topic = command.action === 'ping' ? undefined : command.topic;
      connection.send(errorFrame(error.message, { topic, ref: command.ref }));
    }
  }

  /** Subscribing twice is not an error: the reply says the topic is subscribed, which it is. */
  private async subscribe(connection: WsConnection, topic: string, lastEventId: string | undefined, ref: WsRef | undefined): Promise<void> {
    if (!connection.feed.has(topic)) {
      this.hub.validateTopics([topic], connection.topics.length);
      await this.hub.authorize([topic], 'ws', connection.request);
      const resume = lastEventId === undefined ? undefined : { lastEventId, ref };
      await connection.subscribe([topic], lastEventId, resume);
    }
    connection.send(subscribedFrame(topic, connection.topics, ref));
  }

  /** Leaving a topic that is not subscribed is not an error either. */
  private unsubscribe(connection: WsConnection, topic: string, ref: WsRef | undefined): void {
    connection.feed.remove(topic);
    connection.send(unsubscribedFrame(topic, connection.topics, ref));
  }
}

/** Closes a connection that was never taken on; cut off if the peer does not complete the close. */
function refuse(socket: WebSocket, code: number, reason: string): void {
  const timer = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.close(code, reason);
}

/** Waits until every promise has settled, or `ms` have passed. */
async function settleWithin(promises: readonly Promise<unknown>[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([Promise.allSettled(promises), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
