import { Subject } from 'rxjs';
import type { BrokerEventHandler, PushletBroker } from '../interfaces/broker.interface.js';
import type { Position } from '../protocol/ids.js';
import type { Envelope } from './envelope.js';
import { BROADCAST_TOPIC } from './topic.js';

/** A local subscriber of a topic: a session's feed, called for every live message and gap. */
export interface ChannelListener {
  receive(envelope: Envelope): void;
  /** Messages of the topic (before `until`, when given) may have been lost on this instance. */
  gap(until?: Position): void;
}

/** A topic's live stream while it has local subscribers. */
export interface TopicChannel {
  readonly topic: string;
  /** The topic's messages as an RxJS stream. */
  readonly subject: Subject<Envelope>;
  /** Resolves once the broker delivers this topic's messages to this instance. */
  readonly ready: Promise<void>;
}

class Channel implements TopicChannel {
  readonly subject = new Subject<Envelope>();
  readonly listeners = new Set<ChannelListener>();

  constructor(
    readonly topic: string,
    readonly ready: Promise<void>,
  ) {
    // The Subject has one subscriber, which hands each message to every listener with a plain
    // call. Connections are listeners rather than RxJS subscribers: at thousands of subscribers
    // per topic, a Subscriber per connection cost about 1 µs more per delivery (measured with
    // `npm run bench`), which is most of what separated this module from a bare `ws` loop.
    this.subject.subscribe((envelope) => {
      for (const listener of this.listeners) listener.receive(envelope);
    });
  }
}

/**
 * One RxJS Subject per topic that has local subscribers, and none for a topic that has none.
 * The broker is told when a topic gains its first subscriber and loses its last, which is what
 * lets the Redis broker route by interest. `publishToAll` messages go to the broadcast channel,
 * which every connection holds once.
 */
export class TopicRegistry implements BrokerEventHandler {
  private readonly broadcastChannel = new Channel(BROADCAST_TOPIC, Promise.resolve());
  private readonly channels = new Map<string, Channel>();

  constructor(private readonly broker: PushletBroker) {}

  /** The stream of `publishToAll` messages. */
  get broadcast(): Subject<Envelope> {
    return this.broadcastChannel.subject;
  }

  /** Routes a message from the broker to the local subscribers of its topic. */
  readonly message = (envelope: Envelope): void => {
    this.channelOf(envelope.topic)?.subject.next(envelope);
    // Every live subscriber has written it by now (delivery is synchronous).
    envelope.releaseEncodings();
  };

  /** Tells the local subscribers of `topic` that messages may have been lost. */
  readonly gap = (topic: string, until?: Position): void => {
    const channel = this.channelOf(topic);
    if (!channel) return;
    for (const listener of [...channel.listeners]) listener.gap(until);
  };

  private channelOf(topic: string): Channel | undefined {
    return topic === BROADCAST_TOPIC ? this.broadcastChannel : this.channels.get(topic);
  }

  /** Adds `listener` to `topic`, creating the channel on first use. Pair with {@link release}. */
  acquire(topic: string, listener: ChannelListener): TopicChannel {
    let channel = this.channelOf(topic);
    if (!channel) {
      const ready = this.broker.watch(topic);
      // A failed watch is reported to whoever awaits `ready`; never an unhandled rejection.
      ready.catch(() => undefined);
      channel = new Channel(topic, ready);
      this.channels.set(topic, channel);
    }
    channel.listeners.add(listener);
    return channel;
  }

  release(topic: string, listener: ChannelListener): void {
    if (topic === BROADCAST_TOPIC) {
      this.broadcastChannel.listeners.delete(listener);
      return;
    }
    const channel = this.channels.get(topic);
    if (!channel || !channel.listeners.delete(listener) || channel.listeners.size > 0) return;
    this.channels.delete(topic);
    channel.subject.complete();
    this.broker.unwatch(topic);
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
    let count = this.broadcastChannel.listeners.size;
    for (const channel of this.channels.values()) count += channel.listeners.size;
    return count;
  }

  /** Ends every stream (at shutdown). */
  close(): void {
    for (const channel of this.channels.values()) channel.subject.complete();
    this.channels.clear();
    this.broadcastChannel.subject.complete();
    this.broadcastChannel.listeners.clear();
  }
}
