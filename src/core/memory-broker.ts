import type { BrokerEventHandler, PushletBroker, PushletBrokerStatus, PushletControlCommand, ReplayRequest, ReplayResult } from '../interfaces/broker.interface.js';
import type { Position } from '../protocol/ids.js';
import { Envelope } from './envelope.js';
import { MemoryHistory, type HistoryLimits } from './memory-history.js';
import { IdGenerator } from './message-id.js';

const READY: PushletBrokerStatus = { connected: true, state: 'ready', queued: 0 };

/** The default broker: one process, history in memory, ids ordered across topics. */
export class MemoryBroker implements PushletBroker {
  readonly ordering = 'total';
  private readonly ids = new IdGenerator();
  private readonly history: MemoryHistory;
  private handler: BrokerEventHandler | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly limits: HistoryLimits) {
    this.history = new MemoryHistory(limits, this.ids.next());
  }

  async start(handler: BrokerEventHandler): Promise<void> {
    this.handler = handler;
    const every = Math.max(1_000, Math.min(this.limits.maxAgeMs, 60_000));
    this.sweeper = setInterval(() => this.history.sweep(), every);
    this.sweeper.unref();
  }

  async publish(topic: string, event: string, data: string): Promise<Envelope> {
    return this.publishNow(topic, event, data);
  }

  /** Synchronous publish: assigns the id, records and delivers before returning. */
  publishNow(topic: string, event: string, data: string): Envelope {
    const envelope = Envelope.create(this.ids.next(), topic, event, data);
    this.history.append(envelope);
    this.handler?.message(envelope);
    return envelope;
  }

  /** One process: the command is this instance's alone, delivered at once. */
  async control(command: PushletControlCommand): Promise<void> {
    this.handler?.control?.(command);
  }

  /** Everything published so far has been delivered: the last id is every topic's position. */
  async positions(topics: readonly string[]): Promise<Position[]> {
    const current = this.ids.current();
    return topics.map(() => current);
  }

  async watch(): Promise<void> {}

  unwatch(): void {}

  async replay(requests: readonly ReplayRequest[]): Promise<ReplayResult> {
    return this.history.replay(requests);
  }

  /** Topics that currently hold history (for stats and tests). */
  get historyTopics(): number {
    return this.history.topicCount;
  }

  /** In the process: always connected, nothing ever waits. */
  status(): PushletBrokerStatus {
    return READY;
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.handler = undefined;
    this.history.clear();
  }
}
