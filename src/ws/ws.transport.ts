import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ApplicationConfig, HttpAdapterHost } from '@nestjs/core';
import type { RawData, WebSocket } from 'ws';
import { PushletError, PushletForbiddenError, PushletLimitError, PushletUnauthorizedError, PushletUnavailableError } from '../core/errors.js';
import type { Session } from '../core/session.js';
import { earlyFlushBytes, WriteBatch } from '../core/write-batch.js';
import { EVENTS, topicsNotice, type Command, type CommandRef } from '../protocol/index.js';
import { PushletHub } from '../pushlet.hub.js';
import type { PushletClientPublishDecision } from '../interfaces/pushlet-options.interface.js';
import { PushletRouteRefusal, PushletRoutes } from '../pushlet.routes.js';
import { MESSAGES } from '../pushlet.messages.js';
import { assertEvent, dataToString } from '../core/topic.js';
import { parseCommandFrame } from './ws-commands.js';
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
  private shuttingDown = false;
  private settings!: WsConnectionSettings;
  private readonly handlers: WsConnectionHandlers = {
    frame: (connection, data) => this.receive(connection, data),
    failed: (connection, error) => this.hub.logger.error(`WebSocket connection from ${connection.address} failed: ${String(error)}`),
    closed: (connection) => this.connections.delete(connection),
  };

  constructor(
    private readonly hub: PushletHub,
    private readonly adapterHost: HttpAdapterHost,
    private readonly applicationConfig: ApplicationConfig,
    private readonly routes: PushletRoutes,
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
      commandsPerSecond: options.commandsPerSecond,
      writeBatch: new WriteBatch(earlyFlushBytes(this.hub.options.limits.bufferBytes)),
    };
    const path = this.routes.path(options.path);
    const admit = async (request: IncomingMessage) => {
      try {
        await this.routes.check('ws', request, undefined);
        // Who it is, before the upgrade is answered: a no is an HTTP 401, never an open socket.
        await this.hub.identify(request, 'ws');
        return undefined;
      } catch (error) {
        if (error instanceof PushletUnauthorizedError) return { status: 401, body: JSON.stringify({ statusCode: 401, message: error.message }) };
        if (!(error instanceof PushletRouteRefusal)) throw error;
        return { status: error.status, body: JSON.stringify(error.body) };
      }
    };
    const refused = () => this.hub.counters.refusal('origin');
    this.mounted = await mountWsServer({ ...options, path, admit, refused }, httpServer, this.applicationConfig?.getIoAdapter());
    this.hub.logger.log(`Mapped {${path}} WebSocket endpoint (Pushlet, through ${this.mounted.via})`);
    this.mounted.server.on('connection', (socket: WebSocket, request: IncomingMessage) => this.accept(socket, request));
    this.stopHeartbeat = this.hub.heartbeat.onTick(() => this.heartbeat());
  }

  /** Closes every client with 1001, waits briefly for the handshakes, then cuts the stragglers. */
  async beforeApplicationShutdown(): Promise<void> {
    this.shuttingDown = true;
    this.stopHeartbeat?.();
    this.settings?.writeBatch.flushAll();
    const open = [...this.connections];
    for (const connection of open) connection.session.end('shutdown');
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
      this.hub.counters.refusal('shutdown');
      refuse(socket, CLOSE_CODES.goingAway, MESSAGES.shuttingDown);
      return;
    }
    const connection = new WsConnection(socket, request, this.settings, this.handlers);
    let session: Session;
    try {
      session = this.hub.openSession(connection, 'ws', request);
    } catch (error) {
      if (!(error instanceof PushletLimitError)) throw error;
      refuse(socket, CLOSE_CODES.tryAgainLater, error.message);
      return;
    }
    connection.session = session;
    this.connections.add(connection);
    connection.run(() => this.open(connection));
  }

  /**
   * First task of every connection: subscribes the URL's topics and broadcasts, resuming them
   * after `?lastEventId=` when given.
   */
  private async open(connection: WsConnection): Promise<void> {
    const url = new URL(connection.request.url ?? '/', 'http://localhost');
    const requested = [...new Set(url.searchParams.getAll('topic'))];
    const lastEventId = url.searchParams.get('lastEventId') ?? undefined;
    const session = connection.session;
    const { accepted, refused } = await session.admitEach(requested);
    await this.orRetryLater(connection, session.start(accepted, lastEventId, refused));
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
    const session = connection.session;
    if (!parsed.ok) {
      const { reason, topic, ref } = parsed.error;
      connection.run(() => session.notice({ event: EVENTS.error, data: reason, topic, ref }));
      return;
    }
    connection.run(() => this.orRetryLater(connection, this.execute(session, parsed.command)));
  }

  /** Runs one command; the module's own errors are answered with a `pushlet:error` frame. */
  private async execute(session: Session, command: Command): Promise<void> {
    try {
      switch (command.action) {
        case 'ping':
          session.notice({ event: EVENTS.pong, data: '', ref: command.ref });
          break;
        case 'subscribe':
          await this.subscribe(session, command.topics, command.lastEventId, command.ref);
          break;
        case 'unsubscribe':
          this.unsubscribe(session, command.topics, command.ref);
          break;
        case 'publish':
          await this.publish(session, command);
          break;
        case 'refresh':
          await this.refresh(session, command.token, command.ref);
          break;
        case 'presence':
          await this.presence(session, command.topic, command.ref);
          break;
      }
    } catch (error) {
      if (!(error instanceof PushletError)) throw error;
      session.notice({ event: EVENTS.error, data: error.message, topic: commandTopic(command), ref: command.ref });
    }
  }

  /**
   * A client's publication: allowed only where `authorizePublish` says yes (default no), then
   * `onClientPublish` may change or refuse it; published like the server's own (same rules and
   * size limit), answered with its id.
   */
  private async publish(session: Session, command: Extract<Command, { action: 'publish' }>): Promise<void> {
    const { authorizePublish, onClientPublish } = this.hub.options;
    const request = session.request!;
    const context = { topic: command.topic, event: command.event, data: command.data, identity: session.identity, request };
    let allowed = false;
    try {
      allowed = authorizePublish !== undefined && (await authorizePublish(context)) === true;
    } catch (error) {
      this.hub.logger.warn(`authorizePublish threw for topic "${command.topic}": ${String(error)}`);
    }
    if (!allowed) throw new PushletForbiddenError(MESSAGES.publishForbidden(command.topic));
    let { event, data } = command;
    if (onClientPublish) {
      let decision: PushletClientPublishDecision;
      try {
        decision = await onClientPublish(context);
      } catch (error) {
        // The app's hook failed: the publication is refused, the connection stays.
        this.hub.logger.warn(`onClientPublish threw for topic "${command.topic}": ${String(error)}`);
        decision = false;
      }
      if (decision === false) throw new PushletForbiddenError(MESSAGES.publishForbidden(command.topic));
      if (decision && decision.event !== undefined) event = decision.event;
      if (decision && decision.data !== undefined) data = dataToString(decision.data);
    }
    assertEvent(event);
    const message = await this.hub.publish(command.topic, event, data, 'client');
    session.notice({ event: EVENTS.published, data: '', id: message.id, topic: command.topic, ref: command.ref });
  }

  /** A new token for the connection: the hook runs again and must name the same user. */
  private async refresh(session: Session, token: string, ref: CommandRef | undefined): Promise<void> {
    const current = session.identity ?? undefined;
    const identity = await this.hub.authenticate(session.request!, { transport: 'ws', token, identity: current });
    if (current && identity.id !== current.id) throw new PushletUnauthorizedError(MESSAGES.refreshOtherUser);
    session.refreshIdentity(identity);
    session.notice({ event: EVENTS.refreshed, data: JSON.stringify({ expiresAt: identity.expiresAt ?? null }), ref });
  }

  /** Who is on a presence topic the connection may subscribe to. */
  private async presence(session: Session, topic: string, ref: CommandRef | undefined): Promise<void> {
    const { refused } = await session.admitEach([topic]);
    if (refused.length > 0) throw new PushletForbiddenError(refused[0]!.reason);
    let data;
    try {
      data = await this.hub.presence(topic);
    } catch (error) {
      // Presence that cannot be read now (Redis unreachable) is no reason to close the connection.
      if (!(error instanceof PushletUnavailableError)) throw error;
      session.notice({ event: EVENTS.error, data: error.message, topic, ref });
      return;
    }
    session.notice({ event: EVENTS.presence, data: JSON.stringify(data), topic, ref });
  }

  /**
   * Subscribes the topics the connection may have (a refused topic gets its own error, the
   * others still subscribe) and answers once they are live, after any replay. Subscribing twice
   * is not an error: the reply says the topic is subscribed, which it is.
   */
  private async subscribe(session: Session, topics: readonly string[], lastEventId: string | undefined, ref: CommandRef | undefined): Promise<void> {
    const { accepted, refused } = await session.admitEach(topics);
    for (const { topic, reason } of refused) session.notice({ event: EVENTS.error, data: reason, topic, ref });
    if (accepted.length === 0) return;
    await session.subscribe(accepted, lastEventId, ref);
    session.notice(topicsNotice(EVENTS.subscribed, session.topics, { topic: accepted.length === 1 ? accepted[0] : undefined, ref }));
  }

  /** Leaving a topic that is not subscribed is not an error either. */
  private unsubscribe(session: Session, topics: readonly string[], ref: CommandRef | undefined): void {
    session.unsubscribe(topics);
    session.notice(topicsNotice(EVENTS.unsubscribed, session.topics, { topic: topics.length === 1 ? topics[0] : undefined, ref }));
  }
}

/** The topic a failed command is about, named in its error frame. */
function commandTopic(command: Command): string | undefined {
  if (command.action === 'subscribe' || command.action === 'unsubscribe') return command.topics.length === 1 ? command.topics[0] : undefined;
  if (command.action === 'publish' || command.action === 'presence') return command.topic;
  return undefined;
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
