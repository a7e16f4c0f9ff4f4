import { Subject } from 'rxjs';
import type { PushletBroker } from '../interfaces/broker.interface.js';
import type { Envelope } from './envelope.js';
import { BROADCAST_TOPIC } from './topic.js';

/** A topic's live stream while it has local subscribers. */
export interface TopicChannel {
  readonly topic: string;
  readonly subject: Subject<Envelope>;
  /** Resolves once the broker delivers this topic's messages to this instance. */
  readonly ready: Promise<void>;
}

interface Entry extends TopicChannel {
  holders: number;
}

/**
 * One RxJS Subject per topic that has local subscribers, and none for a topic that has none.
 * The broker is told when a topic gains its first subscriber and loses its last, which is what
 * lets the Redis broker route by interest. `publishToAll` messages go to the broadcast subject,
 * which every connection subscribes to once.
 */
export class TopicRegistry {
  readonly broadcast = new Subject<Envelope>();
  private readonly channels = new Map<string, Entry>();
  private broadcastHolders = 0;

  constructor(private readonly broker: PushletBroker) {}

  /** Routes a message from the broker to the local subscribers of its topic. */
  readonly dispatch = (envelope: Envelope): void => {
    if (envelope.topic === BROADCAST_TOPIC) this.broadcast.next(envelope);
    else this.channels.get(envelope.topic)?.subject.next(envelope);
    // Every live subscriber has written it by now (delivery is synchronous).
    envelope.releaseEncodings();
  };

  /** Takes a hold on `topic`'s channel, creating it on first hold. Pair with {@link release}. */
  acquire(topic: string): TopicChannel {
    if (topic === BROADCAST_TOPIC) {
      this.broadcastHolders += 1;
      return { topic, subject: this.broadcast, ready: Promise.resolve() };
    }
    let entry = this.channels.get(topic);
    if (!entry) {
      const ready = this.broker.watch(topic);
      // A failed watch is reported to whoever awaits `ready`; never an unhandled rejection.
      ready.catch(() => undefined);
      entry = { topic, subject: new Subject<Envelope>(), ready, holders: 0 };
      this.channels.set(topic, entry);
    }
    entry.holders += 1;
    return entry;
  }

  release(topic: string): void {
    if (topic === BROADCAST_TOPIC) {
      this.broadcastHolders -= 1;
      return;
    }
    const entry = this.channels.get(topic);
    if (!entry) return;
    entry.holders -= 1;
    if (entry.holders <= 0) {
      this.channels.delete(topic);
      entry.subject.complete();
      this.broker.unwatch(topic);
    }
  }

  /** Topics with local subscribers. */
  topics(): string[] {
    return [...this.channels.keys()];
  }

  get topicCount(): number {
    return this.channels.size;
  }

  /** Local subscriptions, counted per topic (broadcast included). */
  get subscriberCount(): number {
    let count = this.broadcastHolders;
    for (const entry of this.channels.values()) count += entry.holders;
    return count;
  }

  /** Ends every stream (at shutdown). */
  close(): void {
    for (const entry of this.channels.values()) entry.subject.complete();
    this.channels.clear();
    this.broadcast.complete();
  }
}
