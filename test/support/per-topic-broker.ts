import { MemoryBroker, type BrokerEventHandler, type Position, type PushletBroker, type ReplayRequest, type ReplayResult } from '../../src/index.js';
import type { Envelope } from '../../src/index.js';

/**
 * The in-memory broker presented as one whose ids are ordered per topic (as on Redis Cluster), so
 * that connections hand out cursors (`c1_…`) without a cluster: ids ordered across topics are
 * ordered within each topic too, so everything it answers stays true.
 */
export class PerTopicMemoryBroker implements PushletBroker {
  readonly ordering = 'per-topic';
  private readonly inner = new MemoryBroker({ maxCount: 1_000, maxAgeMs: 300_000, maxTopics: 1_000 });

  start(handler: BrokerEventHandler): Promise<void> {
    return this.inner.start(handler);
  }
  publish(topic: string, event: string, data: string): Promise<Envelope> {
    return this.inner.publish(topic, event, data);
  }
  watch(): Promise<void> {
    return this.inner.watch();
  }
  unwatch(): void {
    this.inner.unwatch();
  }
  replay(requests: readonly ReplayRequest[]): Promise<ReplayResult> {
    return this.inner.replay(requests);
  }
  positions(topics: readonly string[]): Promise<Position[]> {
    return this.inner.positions(topics);
  }
  stop(): Promise<void> {
    return this.inner.stop();
  }
}
