import type { IncomingMessage } from 'node:http';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { PUSHLET_BROKER, type PushletBroker } from './interfaces/broker.interface.js';
import type { PushletTransport, ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import { ConnectionTracker } from './core/connection-tracker.js';
import { PushletForbiddenError, PushletValidationError } from './core/errors.js';
import { Feed, type FeedSink } from './core/feed.js';
import { Heartbeat } from './core/heartbeat.js';
import { assertSubscribableTopic } from './core/topic.js';
import { TopicRegistry } from './core/topic-registry.js';
import { PUSHLET_OPTIONS } from './pushlet.constants.js';
import { MESSAGES } from './pushlet.messages.js';

/**
 * The module's runtime, shared by the service and the transports: options, broker, topic
 * registry, heartbeat and connection counts. Internal: applications use `PushletService`.
 */
@Injectable()
export class PushletHub implements OnModuleInit, OnApplicationShutdown {
  readonly registry: TopicRegistry;
  readonly heartbeat: Heartbeat;
  readonly connections: ConnectionTracker;
  published = 0;
  private slowLoggedAt = 0;
  private slowUnlogged = 0;

  constructor(
    @Inject(PUSHLET_OPTIONS) readonly options: ResolvedPushletOptions,
    @Inject(PUSHLET_BROKER) readonly broker: PushletBroker,
  ) {
    this.registry = new TopicRegistry(broker);
    this.heartbeat = new Heartbeat(options.heartbeatInterval);
    this.connections = new ConnectionTracker(options.limits);
  }

  get logger() {
    return this.options.logger;
  }

  async onModuleInit(): Promise<void> {
    await this.broker.start(this.registry.dispatch);
    this.heartbeat.start();
  }

  async onApplicationShutdown(): Promise<void> {
    this.heartbeat.stop();
    this.registry.close();
    try {
      await this.broker.stop();
    } catch (error) {
      this.logger.error(`broker did not stop cleanly: ${String(error)}`);
    }
  }

  /** Counts a client disconnected for reading too slowly, and logs it (at most once a second). */
  reportSlowConsumer(transport: PushletTransport, address: string | undefined): void {
    this.connections.countSlowConsumer();
    this.slowUnlogged += 1;
    const now = Date.now();
    if (now - this.slowLoggedAt < 1_000) return;
    const more = this.slowUnlogged > 1 ? ` (and ${this.slowUnlogged - 1} more since the last report)` : '';
    this.logger.warn(`disconnected a slow ${transport} client ${address ?? ''}: ${MESSAGES.slowConsumer}${more}`);
    this.slowLoggedAt = now;
    this.slowUnlogged = 0;
  }

  createFeed(sink: FeedSink): Feed {
    return new Feed(this.registry, this.broker, sink);
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
