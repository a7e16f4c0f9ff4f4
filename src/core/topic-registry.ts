import { Subject } from 'rxjs';
import type { DeliveryMeter, MeteredListeners, CoreCounters } from './counters.js';
import type { Position } from '../protocol/ids.js';
import type { Envelope } from './envelope.js';
import type { CoreEventHandler, RecoveryCore } from './recovery-core.js';
import { BROADCAST_TOPIC } from './topic.js';
import { PatternIndex } from './pattern-index.js';

/** A local subscriber of a topic: a session's feed, called for every live message and gap. */
export interface ChannelListener {
  receive(envelope: Envelope): void;
  /** Messages of the topic (before `until`, when given) may have been lost on this instance. */
  gap(until?: Position): void;
  /** How its deliveries are counted; none for subscribers that are not connections (server-side consumers). */
  readonly meter?: DeliveryMeter;
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
  /** Listeners per kind of connection: a fan-out is counted once per kind, not once per listener. */
  readonly meters: MeteredListeners[] = [];

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

  /** Adds `listener`; false if it was here already. */
  add(listener: ChannelListener): boolean {
    if (this.listeners.has(listener)) return false;
    this.listeners.add(listener);
    const meter = listener.meter;
    if (!meter) return true;
    const kind = this.meters.find((entry) => entry.meter === meter);
    if (kind) kind.count += 1;
    else this.meters.push({ meter, count: 1 });
    return true;
  }

  /** Removes `listener`; false if it was not here. */
  delete(listener: ChannelListener): boolean {
    if (!this.listeners.delete(listener)) return false;
    const meter = listener.meter;
    if (!meter) return true;
    const at = this.meters.findIndex((entry) => entry.meter === meter);
    if (at >= 0 && --this.meters[at]!.count === 0) this.meters.splice(at, 1);
    return true;
  }

  clear(): void {
    this.listeners.clear();
    this.meters.length = 0;
  }
}

/**
 * One RxJS Subject per topic that has local subscribers, and none for a topic that has none.
 * The broker is told when a topic gains its first subscriber and loses its last, which is what
 * lets the Redis broker route by interest.
 *
 * Broadcasts (`publishToAll`, topic `*`) are handled here and nowhere else: their channel lives
 * as long as the registry, the broker watches it from the start (never unwatched), it is not
 * counted as a topic, and the helpers below say what a connection holds and names.
 */
export class TopicRegistry implements Pick<CoreEventHandler, 'message' | 'gap' | 'gapPattern'> {
  private readonly broadcastChannel = new Channel(BROADCAST_TOPIC, Promise.resolve());
  private readonly channels = new Map<string, Channel>();
  /** One channel per pattern with local subscribers; a message goes to its topic's channel and to each matching pattern's. */
  private readonly patternChannels = new PatternIndex<Channel>();
  /** Listeners of every topic but broadcasts, kept as they come and go (stats are read every second). */
  private topicSubscriptions = 0;

  constructor(
    private readonly broker: Pick<RecoveryCore, 'watch' | 'unwatch' | 'watchPattern' | 'unwatchPattern'>,
    private readonly counters?: CoreCounters,
  ) {
    // Every connection holds broadcasts: the broker watches them for as long as the instance runs.
    broker.watch(BROADCAST_TOPIC).catch(() => undefined);
  }

  /** The topics a connection holds: `topics` and broadcasts. */
  static withBroadcasts(topics: readonly string[]): string[] {
    return [...topics, BROADCAST_TOPIC];
  }

  /** The topics a connection subscribed to, as it is told them: broadcasts left out. */
  static subscribed(topics: readonly string[]): string[] {
    return topics.filter((topic) => topic !== BROADCAST_TOPIC);
  }

  /** The topics a reset names: broadcasts only when they alone are concerned, since every connection holds them. */
  static named(topics: readonly string[]): readonly string[] {
    return topics.length > 1 ? TopicRegistry.subscribed(topics) : topics;
  }

  /** The stream of `publishToAll` messages. */
  get broadcast(): Subject<Envelope> {
    return this.broadcastChannel.subject;
  }

  /** Routes a message from the broker to the local subscribers of its topic. */
  readonly message = (envelope: Envelope): void => {
    const channel = this.channelOf(envelope.topic);
    if (channel) {
      channel.subject.next(envelope);
      // Counted once per message, with the subscribers of each kind, while the encodings are cached.
      this.counters?.fannedOut(envelope, channel.meters);
    }
    if (this.patternChannels.size > 0) {
      for (const matched of this.patternChannels.match(envelope.topic)) {
        matched.subject.next(envelope);
        this.counters?.fannedOut(envelope, matched.meters);
      }
    }
    // Every live subscriber has written it by now (delivery is synchronous).
    envelope.releaseEncodings();
  };

  /** Tells the local subscribers of `topic` that messages may have been lost. */
  readonly gap = (topic: string, until?: Position): void => {
    const channel = this.channelOf(topic);
    if (!channel) return;
    for (const listener of [...channel.listeners]) listener.gap(until);
  };

  /** Tells the local subscribers of `pattern` that messages of its topics may have been lost. */
  readonly gapPattern = (pattern: string, until?: Position): void => {
    const channel = this.patternChannels.get(pattern);
    if (!channel) return;
    for (const listener of [...channel.listeners]) listener.gap(until);
  };

  /** Adds `listener` to `pattern`'s channel (created on first use; the broker then routes its topics here). Pair with {@link releasePattern}. */
  acquirePattern(pattern: string, listener: ChannelListener): TopicChannel {
    let channel = this.patternChannels.get(pattern);
    if (!channel) {
      const ready = this.broker.watchPattern(pattern);
      ready.catch(() => undefined);
      channel = new Channel(pattern, ready);
      this.patternChannels.set(pattern, channel);
    }
    if (channel.add(listener)) this.topicSubscriptions += 1;
    return channel;
  }

  releasePattern(pattern: string, listener: ChannelListener): void {
    const channel = this.patternChannels.get(pattern);
    if (!channel || !channel.delete(listener)) return;
    this.topicSubscriptions -= 1;
    if (channel.listeners.size > 0) return;
    this.patternChannels.delete(pattern);
    channel.subject.complete();
    this.broker.unwatchPattern(pattern);
  }

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
    if (channel.add(listener) && channel !== this.broadcastChannel) this.topicSubscriptions += 1;
    return channel;
  }

  release(topic: string, listener: ChannelListener): void {
    if (topic === BROADCAST_TOPIC) {
      this.broadcastChannel.delete(listener);
      return;
    }
    const channel = this.channels.get(topic);
    if (!channel || !channel.delete(listener)) return;
    this.topicSubscriptions -= 1;
    if (channel.listeners.size > 0) return;
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
    return this.broadcastChannel.listeners.size + this.topicSubscriptions;
  }

  /** Local subscriptions of topics (broadcasts not included). */
  get subscriptionCount(): number {
    return this.topicSubscriptions;
  }

  /** What `stats()` reports of the registry. */
  stats(): { topics: number; subscribers: number; subscriptions: number } {
    return { topics: this.topicCount, subscribers: this.subscriberCount, subscriptions: this.subscriptionCount };
  }

  /** Each topic with local subscribers and how many, most subscribed first. */
  topicSubscribers(): Array<{ topic: string; subscribers: number }> {
    const list = [...this.channels.values()].map((channel) => ({ topic: channel.topic, subscribers: channel.listeners.size }));
    return list.sort((a, b) => b.subscribers - a.subscribers || (a.topic < b.topic ? -1 : 1));
  }

  /** Ends every stream (at shutdown). */
  close(): void {
    for (const channel of this.channels.values()) channel.subject.complete();
    this.channels.clear();
    for (const [pattern, channel] of this.patternChannels.entries()) {
      channel.subject.complete();
      this.patternChannels.delete(pattern);
    }
    this.topicSubscriptions = 0;
    this.broadcastChannel.subject.complete();
    this.broadcastChannel.clear();
  }
}
