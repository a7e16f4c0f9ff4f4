import type { IncomingMessage } from 'node:http';
import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { PUSHLET_BROKER, type PushletBroker, type PushletControlCommand } from './interfaces/broker.interface.js';
import type { PushletTransport, ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import { ConnectionTracker, type ConnectionSlot } from './core/connection-tracker.js';
import { PushletForbiddenError, PushletLimitError, PushletUnauthorizedError, PushletValidationError } from './core/errors.js';
import type { PresenceData, PushletIdentity } from './protocol/frames.js';
import { checkControl, MAX_REASON_BYTES, MAX_USER_ID_LENGTH, truncateUtf8 } from './core/control.js';
import { Feed } from './core/feed.js';
import { clientAddress } from './core/client-address.js';
import { Heartbeat } from './core/heartbeat.js';
import { MemoryPresenceStore } from './core/presence.js';
import { PresenceManager } from './core/presence-manager.js';
import { RecoveryCore } from './core/recovery-core.js';
import { Session, type SessionContext, type SessionOutput } from './core/session.js';
import { SlowConsumerReporter } from './core/slow-consumers.js';
import { assertSubscribableTopic } from './core/topic.js';
import { TopicRegistry } from './core/topic-registry.js';
import { PushletCounters, type PushletPublishOrigin } from './metrics/pushlet-counters.js';
import type { PushletMessage } from './interfaces/message.interface.js';
import { PUSHLET_OPTIONS } from './pushlet.constants.js';
import { MESSAGES } from './pushlet.messages.js';

/** How long `app.close()` waits for the broker to stop before giving up on it. */
const BROKER_STOP_MS = 5_000;
/** How long `app.close()` waits for the presence leaves of the sessions it ended. */
const PRESENCE_STOP_MS = 2_000;
/** Event-loop turns Nest takes to finish the response of a completed `@Sse()` stream. */
const RESPONSE_END_TURNS = 3;
const NO_SLOT: ConnectionSlot = { release: () => undefined };

/**
 * The module's runtime, shared by the service and the transports: options, broker, topic
 * registry, heartbeat, connection counts and every open session. Internal: applications use
 * `PushletService`.
 */
@Injectable()
export class PushletHub implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  readonly registry: TopicRegistry;
  readonly heartbeat: Heartbeat;
  readonly connections: ConnectionTracker;
  readonly slowConsumers: SlowConsumerReporter;
  /** What `stats()` and the metrics report, counted as it happens. */
  readonly counters = new PushletCounters();
  /** Every open session, whatever its transport: all of them end at shutdown. */
  readonly sessions = new Set<Session>();
  private closing = false;
  /** Identities found by {@link identify} for requests whose session is not open yet (WebSocket upgrades). */
  private readonly identities = new WeakMap<IncomingMessage, PushletIdentity | null>();
  private readonly sessionContext: SessionContext;
  /** Presence members of this instance, their joins and leaves (absent without the `presence` option). */
  readonly presenceManager: PresenceManager | undefined;
  /** The broker, driven by the recovery core: what every part of the module talks to. */
  readonly core: RecoveryCore;

  constructor(
    @Inject(PUSHLET_OPTIONS) readonly options: ResolvedPushletOptions,
    @Inject(PUSHLET_BROKER) broker: PushletBroker,
  ) {
    const counters = this.counters;
    this.core = new RecoveryCore(broker, options.logger);
    this.registry = new TopicRegistry(this.core, counters);
    this.heartbeat = new Heartbeat(options.heartbeatInterval);
    this.connections = new ConnectionTracker(options.limits, (reason) => counters.refusal(reason));
    this.slowConsumers = new SlowConsumerReporter(options.logger);
    this.presenceManager = this.createPresence();
    this.sessionContext = {
      feedOf: (sink, meter) => new Feed(this.registry, this.core, sink, meter),
      ordering: this.core.ordering,
      bufferBytes: options.limits.bufferBytes,
      validateTopics: (topics, already) => this.validateTopics(topics, already),
      authorize: (topics, transport, request, identity) => this.authorize(topics, transport, request, identity),
      slowConsumer: (transport, address) => {
        counters.slowConsumer(transport);
        this.slowConsumers.report(transport, address);
      },
      refused: (reason) => counters.refusal(reason),
      heartbeatMs: () => this.heartbeat.interval,
      ...this.presenceHooks(),
      resumed: ({ resets, replayed }) => counters.resumed(resets > 0, replayed),
      closed: (session) => this.sessions.delete(session),
    };
  }

  get logger() {
    return this.options.logger;
  }

  /**
   * The presence store the broker offers (Redis: shared by every instance), else one in memory;
   * joins and leaves are published as messages of their topic, straight to the broker: not
   * counted as publications, and their `pushlet:` event names are the module's own.
   */
  private createPresence(): PresenceManager | undefined {
    const presence = this.options.presence;
    if (!presence) return undefined;
    const store = this.core.presenceStore(presence.ttlMs) ?? new MemoryPresenceStore();
    return new PresenceManager(
      store,
      presence,
      { publish: (topic, event, data) => this.core.publish(topic, event, data), servedTopics: () => this.registry.topics() },
      this.logger,
    );
  }

  private presenceHooks(): Pick<SessionContext, 'joined' | 'left'> {
    const manager = this.presenceManager;
    if (!manager) return {};
    return { joined: (session, topics) => manager.joined(session, topics), left: (session, topics) => manager.left(session, topics) };
  }

  async onModuleInit(): Promise<void> {
    const registry = this.registry;
    await this.core.start({
      message: (envelope) => registry.message(envelope),
      gap: (topic, until) => registry.gap(topic, until),
      control: (command) => this.onControl(command),
    });
    this.presenceManager?.start();
    this.heartbeat.start();
  }

  /**
   * Ends every session still open (the transports end theirs first, each its own way). Streams of
   * `stream()` routes end through Nest, which finishes their responses a few turns later: those
   * turns pass here, so that the HTTP server finds their connections idle when it closes.
   */
  async beforeApplicationShutdown(): Promise<void> {
    // From here on no session opens: a connection that arrives before the HTTP server stops
    // listening (a client reconnecting at once) would get a session nothing ends.
    this.closing = true;
    const open = [...this.sessions];
    for (const session of open) session.end('shutdown');
    this.slowConsumers.flush();
    if (open.length === 0) return;
    for (let turn = 0; turn < RESPONSE_END_TURNS; turn++) await new Promise((resolve) => setImmediate(resolve));
  }

  async onApplicationShutdown(): Promise<void> {
    this.heartbeat.stop();
    this.registry.close();
    // The leaves of the sessions just ended go out before the broker stops.
    if (this.presenceManager && (await settledWithin(this.presenceManager.stop(), PRESENCE_STOP_MS)) === 'timeout') {
      this.logger.warn(`presence leaves were still on their way after ${PRESENCE_STOP_MS} ms; their members expire instead`);
    }
    try {
      const outcome = await settledWithin(this.core.stop(), BROKER_STOP_MS);
      if (outcome === 'timeout') this.logger.warn(`the broker did not stop within ${BROKER_STOP_MS} ms; shutting down without it`);
    } catch (error) {
      this.logger.error(`broker did not stop cleanly: ${String(error)}`);
    }
  }

  /**
   * Opens a session for a new connection: takes a slot (with a `request`: counted against the
   * limits and in `stats()`), or throws a `PushletLimitError`.
   */
  openSession(output: SessionOutput, transport: PushletTransport, request?: IncomingMessage, identity?: PushletIdentity | null): Session {
    // A 503 / close 1013 like a full server: the client comes back, to this instance or another.
    if (this.closing) throw new PushletLimitError(MESSAGES.shuttingDown);
    const address = clientAddress(request);
    const who = identity ?? (request ? this.takeIdentity(request) : undefined) ?? null;
    const slot = request ? this.connections.acquire(transport, address, who?.id) : NO_SLOT;
    const session = new Session(this.sessionContext, output, transport, address, slot, request, who);
    this.sessions.add(session);
    return session;
  }

  /**
   * Runs the `authenticate` option for a new connection's request (before any header or upgrade
   * answer) and keeps the identity for its session. Without the option, connections are anonymous
   * (`null`).
   * @throws PushletUnauthorizedError when the hook says no, throws, or returns an expired identity.
   */
  async identify(request: IncomingMessage, transport: PushletTransport): Promise<PushletIdentity | null> {
    if (!this.options.authenticate) return null;
    try {
      const identity = await this.askAuthenticate(request, { transport });
      // The WebSocket session opens after the upgrade, in another callback: it takes it from here.
      if (transport === 'ws') this.identities.set(request, identity);
      return identity;
    } catch (error) {
      if (error instanceof PushletUnauthorizedError) this.counters.refusal('unauthenticated');
      throw error;
    }
  }

  /**
   * Asks the `authenticate` option (on a new connection, or with a `refresh` command's token) and
   * checks what it returned.
   * @throws PushletUnauthorizedError when it says no, throws, returns no valid identity, or one already expired.
   */
  async authenticate(request: IncomingMessage, context: { transport: PushletTransport; token?: string; identity?: PushletIdentity }): Promise<PushletIdentity> {
    const identity = await this.askAuthenticate(request, context);
    if (identity === null) throw new PushletUnauthorizedError(MESSAGES.unauthenticated);
    return identity;
  }

  /** The `authenticate` option's answer, checked: an identity, or `null` for an anonymous connection. */
  private async askAuthenticate(
    request: IncomingMessage,
    context: { transport: PushletTransport; token?: string; identity?: PushletIdentity },
  ): Promise<PushletIdentity | null> {
    const authenticate = this.options.authenticate;
    if (!authenticate) throw new PushletUnauthorizedError(MESSAGES.refreshUnsupported);
    let identity: unknown;
    try {
      identity = await authenticate(request, context);
    } catch (error) {
      this.logger.warn(`authenticate threw: ${String(error)}`);
      throw new PushletUnauthorizedError(MESSAGES.unauthenticated);
    }
    if (identity === false) throw new PushletUnauthorizedError(MESSAGES.unauthenticated);
    if (identity === null) return null;
    if (!isIdentity(identity)) {
      this.logger.error(MESSAGES.identityInvalid);
      throw new PushletUnauthorizedError(MESSAGES.unauthenticated);
    }
    if (identity.expiresAt !== undefined && identity.expiresAt <= Date.now()) throw new PushletUnauthorizedError(MESSAGES.identityExpired);
    return identity;
  }

  /**
   * Records and routes one message (the size limit checked here: one copy of the rule for the
   * service and for clients that publish). Resolves with the message once the broker has it.
   */
  async publish(topic: string, event: string, data: string, origin: PushletPublishOrigin): Promise<PushletMessage> {
    const { maxMessageBytes, bufferBytes } = this.options.limits;
    // Quick bound first: a string of n UTF-16 units takes at most 3n bytes in UTF-8.
    if ((topic.length + event.length + data.length) * 3 > maxMessageBytes) {
      const size = Buffer.byteLength(topic) + Buffer.byteLength(event) + Buffer.byteLength(data);
      if (size > maxMessageBytes) throw new PushletValidationError(MESSAGES.messageTooLarge(size, maxMessageBytes, bufferBytes));
    }
    const counters = this.counters;
    const started = counters.publishing();
    const envelope = await this.core.publish(topic, event, data);
    counters.acknowledged(origin, started);
    return envelope.message;
  }

  /**
   * Who is on presence topic `topic`, across instances.
   * @throws PushletValidationError when `topic` is not a presence topic.
   */
  async presence(topic: string): Promise<PresenceData> {
    if (!this.presenceManager) throw new PushletValidationError(MESSAGES.presenceOff(topic));
    return this.presenceManager.members(topic);
  }

  /**
   * How many are on presence topic `topic`, across instances.
   * @throws PushletValidationError when `topic` is not a presence topic.
   */
  async presenceCount(topic: string): Promise<number> {
    if (!this.presenceManager) throw new PushletValidationError(MESSAGES.presenceOff(topic));
    return this.presenceManager.count(topic);
  }

  /** The open sessions of user `userId` on this instance. */
  sessionsOf(userId: string): Session[] {
    return [...this.sessions].filter((session) => session.identity?.id === userId && !session.isEnded);
  }

  /**
   * Closes every connection of user `userId`: this instance's at once (their number is the
   * result), every other instance's through the broker's control channel.
   * @throws PushletValidationError for a user id that is not a non-empty string, or a reason that is not a string.
   * @throws the broker's error when it cannot send the command (this instance's connections are closed already).
   */
  async disconnect(userId: string, reason?: string): Promise<number> {
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
      throw new PushletValidationError(MESSAGES.disconnectUserId(MAX_USER_ID_LENGTH));
    }
    if (reason !== undefined && typeof reason !== 'string') throw new PushletValidationError(MESSAGES.disconnectReason);
    const command: PushletControlCommand = { kind: 'disconnect', userId, reason: truncateUtf8(reason ?? MESSAGES.disconnected, MAX_REASON_BYTES) };
    const closed = this.runControl(command);
    await this.core.control(command);
    return closed;
  }

  /** A control command from the broker (any instance's, this one's included): checked again, then run. */
  private onControl(command: PushletControlCommand): void {
    const checked = checkControl(command);
    if (!checked) {
      this.logger.warn(MESSAGES.controlMalformed);
      return;
    }
    const closed = this.runControl(checked);
    if (closed > 0) this.logger.debug?.(`closed ${closed} connection(s) of a disconnected user`);
  }

  /** Runs one control command on this instance; resolves with the number of connections it closed. */
  private runControl(command: PushletControlCommand): number {
    switch (command.kind) {
      case 'disconnect': {
        const sessions = this.sessionsOf(command.userId);
        for (const session of sessions) session.end('disconnected', command.reason);
        return sessions.length;
      }
    }
  }

  /** The identity {@link identify} found for a WebSocket upgrade, handed over once. */
  private takeIdentity(request: IncomingMessage): PushletIdentity | null | undefined {
    const identity = this.identities.get(request);
    this.identities.delete(request);
    return identity;
  }

  /**
   * Checks a connection's topic list against the contract and the limit, throwing a
   * {@link PushletValidationError} for the first problem.
   */
  validateTopics(topics: readonly unknown[], alreadySubscribed = 0): asserts topics is string[] {
    const limit = this.options.limits.topicsPerConnection;
    if (topics.length + alreadySubscribed > limit) throw new PushletValidationError(MESSAGES.tooManyTopics(limit));
    for (const topic of topics) assertSubscribableTopic(topic);
  }

  /** Asks the `authorize` option about each topic; throws {@link PushletForbiddenError} at the first no. */
  async authorize(topics: readonly string[], transport: PushletTransport, request: IncomingMessage, identity: PushletIdentity | null = null): Promise<void> {
    const authorize = this.options.authorize;
    if (!authorize) return;
    for (const topic of topics) {
      let allowed = false;
      try {
        allowed = (await authorize({ topic, transport, request, identity })) === true;
      } catch (error) {
        this.logger.warn(`authorize threw for topic "${topic}": ${String(error)}`);
      }
      if (!allowed) throw new PushletForbiddenError(MESSAGES.forbiddenTopic(topic));
    }
  }
}

/** An identity as the contract has it: a plain object with a non-empty string `id`, and a finite `expiresAt` if any. */
export function isIdentity(value: unknown): value is PushletIdentity {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const { id, expiresAt } = value as { id?: unknown; expiresAt?: unknown };
  if (typeof id !== 'string' || id.length === 0) return false;
  return expiresAt === undefined || (typeof expiresAt === 'number' && Number.isFinite(expiresAt));
}

/** Waits for `work`, or `'timeout'` after `ms` (the timer does not hold the process open). */
async function settledWithin(work: Promise<unknown>, ms: number): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work.then(() => 'done' as const), giveUp]);
  } finally {
    clearTimeout(timer);
  }
}
