import type { IncomingMessage } from 'node:http';
import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { PUSHLET_BROKER, type PushletBroker } from './interfaces/broker.interface.js';
import type { PushletTransport, ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import { ConnectionTracker, type ConnectionSlot } from './core/connection-tracker.js';
import { PushletForbiddenError, PushletLimitError, PushletValidationError } from './core/errors.js';
import { Feed } from './core/feed.js';
import { MemoryBroker } from './core/memory-broker.js';
import { Heartbeat } from './core/heartbeat.js';
import { Session, type SessionContext, type SessionOutput } from './core/session.js';
import { SlowConsumerReporter } from './core/slow-consumers.js';
import { assertSubscribableTopic } from './core/topic.js';
import { TopicRegistry } from './core/topic-registry.js';
import { PushletCounters } from './metrics/pushlet-counters.js';
import { PUSHLET_OPTIONS } from './pushlet.constants.js';
import { MESSAGES } from './pushlet.messages.js';

/** How long `app.close()` waits for the broker to stop before giving up on it. */
const BROKER_STOP_MS = 5_000;
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
  private readonly sessionContext: SessionContext;

  constructor(
    @Inject(PUSHLET_OPTIONS) readonly options: ResolvedPushletOptions,
    @Inject(PUSHLET_BROKER) readonly broker: PushletBroker,
  ) {
    const counters = this.counters;
    this.registry = new TopicRegistry(broker, counters);
    this.heartbeat = new Heartbeat(options.heartbeatInterval);
    this.connections = new ConnectionTracker(options.limits, (reason) => counters.refusal(reason));
    this.slowConsumers = new SlowConsumerReporter(options.logger);
    this.sessionContext = {
      feedOf: (sink, meter) => new Feed(this.registry, this.broker, sink, meter),
      ordering: broker.ordering,
      bufferBytes: options.limits.bufferBytes,
      validateTopics: (topics, already) => this.validateTopics(topics, already),
      authorize: (topics, transport, request) => this.authorize(topics, transport, request),
      slowConsumer: (transport, address) => {
        counters.slowConsumer(transport);
        this.slowConsumers.report(transport, address);
      },
      refused: (reason) => counters.refusal(reason),
      resumed: ({ resets, replayed }) => counters.resumed(resets > 0, replayed),
      closed: (session) => this.sessions.delete(session),
    };
  }

  get logger() {
    return this.options.logger;
  }

  async onModuleInit(): Promise<void> {
    await this.broker.start(this.registry);
    // The Redis broker names its server when it connects; the others are named here.
    if (this.broker instanceof MemoryBroker) this.logger.log('broker: in memory (this instance only; set the redis option to join others)');
    else if (!this.options.redis) this.logger.log(`broker: ${this.broker.constructor.name}`);
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
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), BROKER_STOP_MS);
      timer.unref();
    });
    try {
      const outcome = await Promise.race([this.broker.stop(), giveUp]);
      if (outcome === 'timeout') this.logger.warn(`the broker did not stop within ${BROKER_STOP_MS} ms; shutting down without it`);
    } catch (error) {
      this.logger.error(`broker did not stop cleanly: ${String(error)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Opens a session for a new connection: takes a slot (with a `request`: counted against the
   * limits and in `stats()`), or throws a `PushletLimitError`.
   */
  openSession(output: SessionOutput, transport: PushletTransport, request?: IncomingMessage): Session {
    // A 503 / close 1013 like a full server: the client comes back, to this instance or another.
    if (this.closing) throw new PushletLimitError(MESSAGES.shuttingDown);
    const address = request?.socket.remoteAddress ?? 'unknown';
    const slot = request ? this.connections.acquire(transport, address) : NO_SLOT;
    const session = new Session(this.sessionContext, output, transport, address, slot, request);
    this.sessions.add(session);
    return session;
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
  async authorize(topics: readonly string[], transport: PushletTransport, request: IncomingMessage): Promise<void> {
    const authorize = this.options.authorize;
    if (!authorize) return;
    for (const topic of topics) {
      let allowed = false;
      try {
        allowed = (await authorize({ topic, transport, request })) === true;
      } catch (error) {
        this.logger.warn(`authorize threw for topic "${topic}": ${String(error)}`);
      }
      if (!allowed) throw new PushletForbiddenError(MESSAGES.forbiddenTopic(topic));
    }
  }
}
