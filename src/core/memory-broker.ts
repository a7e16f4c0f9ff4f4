import type { PushletBroker, ReplayResult } from '../interfaces/broker.interface.js';
import { Envelope } from './envelope.js';
import { MemoryHistory, type HistoryLimits } from './memory-history.js';
import { formatId, IdGenerator } from './message-id.js';

/** The default broker: one process, history in memory. */
export class MemoryBroker implements PushletBroker {
  private readonly ids = new IdGenerator();
  private readonly history: MemoryHistory;
  private deliver: ((envelope: Envelope) => void) | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly limits: HistoryLimits) {
    this.history = new MemoryHistory(limits, this.ids.next());
  }

  async start(deliver: (envelope: Envelope) => void): Promise<void> {
    this.deliver = deliver;
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
    this.deliver?.(envelope);
    return envelope;
  }

  async position(): Promise<string> {
    const { ms, seq } = this.ids.current();
    return formatId(ms, seq);
  }

  async watch(): Promise<void> {}

  unwatch(): void {}

  async replay(topics: readonly string[], afterId: string): Promise<ReplayResult> {
    return this.history.replay(topics, afterId);
  }

  /** Topics that currently hold history (for stats and tests). */
  get historyTopics(): number {
    return this.history.topicCount;
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.deliver = undefined;
    this.history.clear();
  }
}
