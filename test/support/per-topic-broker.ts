import { MemoryBroker, type BrokerEvents, type BrokerPublication, type Position, type PushletBroker, type TopicRead } from '../../src/index.js';

/**
 * The in-memory broker presented as one whose positions are ordered per topic (as on Redis
 * Cluster), so that connections hand out cursors (`c1_…`) without a cluster: positions ordered
 * across topics are ordered within each topic too, so everything it answers stays true.
 */
export class PerTopicMemoryBroker implements PushletBroker {
  readonly ordering = 'per-topic';
  readonly description = 'in memory, ordered per topic (tests)';
  private readonly inner = new MemoryBroker({ maxCount: 1_000, maxAgeMs: 300_000, maxTopics: 1_000 });

  start(events: BrokerEvents): Promise<void> {
    return this.inner.start(events);
  }
  isConnected(): boolean {
    return true;
  }
  append(publications: readonly BrokerPublication[]): Array<Promise<Position>> {
    return this.inner.append(publications);
  }
  subscribe(): Promise<void> {
    return this.inner.subscribe();
  }
  unsubscribe(): void {
    this.inner.unsubscribe();
  }
  read(requests: ReadonlyArray<{ readonly topic: string; readonly after: Position }>): Promise<TopicRead[]> {
    return this.inner.read(requests);
  }
  positions(topics: readonly string[]): Promise<Position[]> {
    return this.inner.positions(topics);
  }
  stop(): Promise<void> {
    return this.inner.stop();
  }
}
