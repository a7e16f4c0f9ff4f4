import type { BrokerEvents, BrokerPatterns, BrokerPublication, BrokerRecord, PushletBroker, TailRequest, TopicRead } from '../interfaces/broker.interface.js';
import type { Position } from '../protocol/ids.js';
import { MemoryHistory, type HistoryLimits } from './memory-history.js';
import { IdGenerator } from './message-id.js';

/**
 * The default broker: one process, history in memory, positions ordered across topics. Always
 * connected; a publication is recorded and delivered before `append` returns.
 */
export class MemoryBroker implements PushletBroker {
  readonly ordering = 'total';
  readonly description = 'in memory (this instance only; set the redis option to join others)';
  private readonly ids = new IdGenerator();
  /** One process: every record reaches the core already; the index is the history itself. */
  readonly patterns: BrokerPatterns = {
    subscribe: async () => undefined,
    unsubscribe: () => undefined,
    topicsAfter: async (after) => this.history.topicsAfter(after),
  };
  private readonly history: MemoryHistory;
  private events: BrokerEvents | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly limits: HistoryLimits) {
    this.history = new MemoryHistory(limits, this.ids.next());
  }

  async start(events: BrokerEvents): Promise<void> {
    this.events = events;
    const every = Math.max(1_000, Math.min(this.limits.maxAgeMs, 60_000));
    this.sweeper = setInterval(() => this.history.sweep(), every);
    this.sweeper.unref();
  }

  isConnected(): boolean {
    return true;
  }

  append(publications: readonly BrokerPublication[]): Array<Promise<Position>> {
    return publications.map(({ topic, event, data }) => Promise.resolve(this.record(topic, event, data).position));
  }

  /** Records and delivers one message at once; returns it with its position (for tests and benchmarks). */
  record(topic: string, event: string, data: string): BrokerRecord {
    const record: BrokerRecord = { position: this.ids.next(), topic, event, data };
    this.history.append(record);
    this.events?.records([record]);
    return record;
  }

  /** One process: every topic is routed here already. */
  async subscribe(): Promise<void> {}

  unsubscribe(): void {}

  async read(requests: ReadonlyArray<{ readonly topic: string; readonly after: Position }>): Promise<TopicRead[]> {
    return this.history.read(requests);
  }

  async tail(requests: readonly TailRequest[]): Promise<BrokerRecord[][]> {
    return this.history.tail(requests);
  }

  /** Everything published so far has been delivered: the last position is every topic's. */
  async positions(topics: readonly string[]): Promise<Position[]> {
    const current = this.ids.current();
    return topics.map(() => current);
  }

  /** Topics that currently hold history (for stats and tests). */
  get historyTopics(): number {
    return this.history.topicCount;
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.events = undefined;
    this.history.clear();
  }
}
