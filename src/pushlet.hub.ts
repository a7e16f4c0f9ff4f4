import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationShutdown, type LoggerService, type OnModuleInit } from '@nestjs/common';
import { PUSHLET_BROKER, type PushletBroker } from './interfaces/broker.interface.js';
import type { ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import { Admission, type ConnectionGate } from './core/admission.js';
import { ConnectionCommands } from './core/connection-commands.js';
import { Feed } from './core/feed.js';
import { Heartbeat } from './core/heartbeat.js';
import { HistoryReader } from './core/history-reader.js';
import { MemoryPresenceStore } from './core/presence.js';
import { PresenceManager, presenceReader, type PresenceReader } from './core/presence-manager.js';
import { Publisher } from './core/publisher.js';
import { RecoveryCore } from './core/recovery-core.js';
import type { SessionContext } from './core/session.js';
import { SessionRegistry, type SessionOpener } from './core/session-registry.js';
import { SlowConsumerReporter } from './core/slow-consumers.js';
import { settleWithin } from './core/timers.js';
import { TopicRegistry } from './core/topic-registry.js';
import { PushletCounters } from './metrics/pushlet-counters.js';
import { PUSHLET_OPTIONS } from './pushlet.constants.js';

/**
 * What a transport (the SSE route, the WebSocket endpoint, any later one) is given: its options,
 * the gate before a connection opens, sessions to open, the heartbeat, and the commands of
 * two-way connections. Transports parse requests and encode frames; the rules are behind these.
 */
export interface TransportRuntime {
  readonly options: Pick<ResolvedPushletOptions, 'sse' | 'ws' | 'limits'>;
  readonly logger: LoggerService;
  readonly gate: ConnectionGate;
  readonly sessions: SessionOpener;
  readonly heartbeat: Pick<Heartbeat, 'onTick'>;
  readonly commands: Pick<ConnectionCommands, 'open' | 'run' | 'malformed'>;
}

/** How long `app.close()` waits for the broker to stop before giving up on it. */
const BROKER_STOP_MS = 5_000;
/** How long `app.close()` waits for the presence leaves of the sessions it ended. */
const PRESENCE_STOP_MS = 2_000;
/** Event-loop turns Nest takes to finish the response of a completed `@Sse()` stream. */
const RESPONSE_END_TURNS = 3;

/**
 * The module's runtime: it composes the parts, each with one job, and runs their life cycle.
 * Internal: applications use `PushletService`; transports take the narrow parts they need.
 *
 * - {@link admission}: who may connect and to what (shutdown gate, `authenticate`, topic rules,
 *   `authorize`, connection limits, refusals counted);
 * - {@link sessions}: every open session (opened, sought by user, ended by control commands and
 *   at shutdown);
 * - {@link publisher}: publishing (the size rule, the counters);
 * - {@link commands}: the commands of two-way connections;
 * - {@link registry}, {@link core}, {@link heartbeat}, {@link presence}, {@link counters}.
 */
@Injectable()
export class PushletHub implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  /** The broker, driven by the recovery core: what every part of the module talks to. */
  readonly core: RecoveryCore;
  readonly registry: TopicRegistry;
  readonly heartbeat: Heartbeat;
  /** What `stats()` and the metrics report, counted as it happens. */
  readonly counters = new PushletCounters();
  readonly admission: Admission;
  readonly sessions: SessionRegistry;
  readonly publisher: Publisher;
  readonly commands: ConnectionCommands;
  /** Presence members of this instance, their joins and leaves (absent without the `presence` option). */
  readonly presenceManager: PresenceManager | undefined;
  /** Who is on a presence topic (says presence is off without the option). */
  readonly presence: PresenceReader;
  /** Pages of a topic's history (the `history` command and `PushletService.history()`). */
  readonly history: HistoryReader;
  private readonly slowConsumers: SlowConsumerReporter;

  constructor(
    @Inject(PUSHLET_OPTIONS) readonly options: ResolvedPushletOptions,
    @Inject(PUSHLET_BROKER) broker: PushletBroker,
  ) {
    const counters = this.counters;
    const logger = options.logger;
    const { recentWindowBytes, maxCount, maxAgeMs } = options.history;
    this.core = new RecoveryCore(broker, logger, { maxBytes: recentWindowBytes, maxCount, maxAgeMs });
    this.registry = new TopicRegistry(this.core, counters);
    this.heartbeat = new Heartbeat(options.heartbeatInterval);
    this.slowConsumers = new SlowConsumerReporter(logger);
    this.admission = new Admission(options, counters, logger, () => this.core.supportsPatterns);
    this.publisher = new Publisher(this.core, options.limits, counters);
    this.presenceManager = this.createPresence();
    this.presence = presenceReader(this.presenceManager);
    this.history = new HistoryReader(this.core);
    this.sessions = new SessionRegistry(this.admission, this.sessionContext(), (command) => this.core.control(command), logger);
    this.commands = new ConnectionCommands({
      options,
      admission: this.admission,
      publisher: this.publisher,
      presence: this.presence,
      history: this.history,
      logger,
    });
  }

  get logger() {
    return this.options.logger;
  }

  /** What a transport is given: the parts it needs, not the hub. */
  transport(): TransportRuntime {
    return { options: this.options, logger: this.logger, gate: this.admission, sessions: this.sessions, heartbeat: this.heartbeat, commands: this.commands };
  }

  /** What every session is given: its feed, the topic rules, and where its events are counted. */
  private sessionContext(): Omit<SessionContext, 'closed'> {
    const { admission, counters, presenceManager: presence } = this;
    return {
      feedOf: (sink, meter) => new Feed(this.registry, this.core, sink, meter),
      ordering: this.core.ordering,
      bufferBytes: this.options.limits.bufferBytes,
      maxRewind: this.options.limits.maxRewind,
      validateTopics: (topics, already) => admission.validateTopics(topics, already),
      authorize: (topics, transport, request, identity) => admission.authorize(topics, transport, request, identity),
      slowConsumer: (transport, address) => {
        counters.slowConsumer(transport);
        this.slowConsumers.report(transport, address);
      },
      refused: (error) => admission.refused(error),
      heartbeatMs: () => this.heartbeat.interval,
      ...(presence ? { joined: (session, topics) => presence.joined(session, topics), left: (session, topics) => presence.left(session, topics) } : {}),
      resumed: ({ resets, replayed }) => counters.resumed(resets > 0, replayed),
    };
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

  async onModuleInit(): Promise<void> {
    const registry = this.registry;
    await this.core.start({
      message: (envelope) => registry.message(envelope),
      gap: (topic, until) => registry.gap(topic, until),
      gapPattern: (pattern, until) => registry.gapPattern(pattern, until),
      control: this.sessions.onControl,
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
    this.admission.close();
    const ended = this.sessions.endAll();
    this.slowConsumers.flush();
    if (!ended) return;
    for (let turn = 0; turn < RESPONSE_END_TURNS; turn++) await new Promise((resolve) => setImmediate(resolve));
  }

  async onApplicationShutdown(): Promise<void> {
    this.heartbeat.stop();
    this.registry.close();
    // The leaves of the sessions just ended go out before the broker stops.
    if (this.presenceManager && (await settleWithin(this.presenceManager.stop(), PRESENCE_STOP_MS)) === 'timeout') {
      this.logger.warn(`presence leaves were still on their way after ${PRESENCE_STOP_MS} ms; their members expire instead`);
    }
    try {
      const outcome = await settleWithin(this.core.stop(), BROKER_STOP_MS);
      if (outcome === 'timeout') this.logger.warn(`the broker did not stop within ${BROKER_STOP_MS} ms; shutting down without it`);
    } catch (error) {
      this.logger.error(`broker did not stop cleanly: ${String(error)}`);
    }
  }
}
