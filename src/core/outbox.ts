import type { BrokerPublication } from '../interfaces/broker.interface.js';
import type { Position } from '../protocol/ids.js';
import { MESSAGES } from '../pushlet.messages.js';
import { PushletBrokerError } from './errors.js';

/** A publication waiting for the broker to record it. */
interface Pending {
  readonly message: BrokerPublication;
  readonly resolve: (position: Position) => void;
  readonly reject: (error: Error) => void;
}

/** What the outbox needs: a way to send, and someone to tell when the broker stops answering. */
export interface OutboxTransport {
  /** Sends messages in order (batched as the broker sees fit); one answer per message, in order. */
  send(messages: readonly BrokerPublication[]): Array<Promise<Position>>;
  /** Whether a failed send says the broker is unreachable (its outcome unknown), rather than a refusal. */
  isUnreachable(error: unknown): boolean;
  /** A send failed because the broker is unreachable. */
  unreachable(): void;
}

/**
 * Publications in the order they were made, each kept until the broker has recorded it and given
 * it its position. While the link is not ready they wait; when it is, they are sent in order. A
 * publication whose outcome is unknown (the connection dropped before the reply) is sent again
 * with the same origin and counter: the broker recognises a second copy and answers with the
 * first one's position, so nothing is recorded twice.
 */
export class Outbox {
  /** Not yet recorded by the broker, in publication order (a Set keeps insertion order). */
  private readonly pending = new Set<Pending>();
  /** Of those, the ones to send at the next flush, in order. */
  private unsent: Pending[] = [];
  private counter = 0;

  constructor(
    private readonly origin: string,
    private readonly maxQueued: number,
    private readonly transport: OutboxTransport,
  ) {}

  /** Publications not yet recorded by the broker. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Queues a publication; resolves to its position once the broker has recorded it. With `now`
   * (the link is ready and the broker takes publications at once), it is sent straight away, or
   * with those queued before it, in order, if any are.
   */
  publish(topic: string, event: string, data: string, now = false): Promise<Position> {
    if (this.pending.size >= this.maxQueued) {
      return Promise.reject(new PushletBrokerError(MESSAGES.brokerQueueFull(this.maxQueued)));
    }
    this.counter += 1;
    const message: BrokerPublication = { topic, event, data, origin: this.origin, counter: this.counter };
    let item!: Pending;
    const recorded = new Promise<Position>((resolve, reject) => (item = { message, resolve, reject }));
    this.pending.add(item);
    if (now && this.unsent.length === 0) {
      this.follow(item, this.transport.send([message])[0]!);
    } else {
      this.unsent.push(item);
      if (now) this.flush();
    }
    return recorded;
  }

  /** Sends every publication not sent yet, in order (call when the link is ready). */
  flush(): void {
    // Answered meanwhile (a late reply to an earlier attempt): nothing to send again.
    const items = this.unsent.filter((item) => this.pending.has(item));
    this.unsent = [];
    if (items.length === 0) return;
    const answers = this.transport.send(items.map((item) => item.message));
    items.forEach((item, i) => this.follow(item, answers[i]!));
  }

  /** The link went down: whatever was sent and not answered will be sent again, in order. */
  resend(): void {
    this.unsent = [...this.pending];
  }

  /** Fails every publication still waiting (the broker stops). */
  rejectAll(error: Error): void {
    const items = [...this.pending];
    this.pending.clear();
    this.unsent = [];
    for (const item of items) item.reject(error);
  }

  /** Settles a sent publication with the broker's answer (unless a late answer to an earlier attempt did already). */
  private follow(item: Pending, answer: Promise<Position>): void {
    answer.then(
      (position) => this.settle(item, () => item.resolve(position)),
      (error: unknown) => this.failed(item, error),
    );
  }

  private failed(item: Pending, error: unknown): void {
    if (!this.pending.has(item)) return;
    // Unreachable: the link goes down, and `resend` queues it again with everything after it.
    if (this.transport.isUnreachable(error)) this.transport.unreachable();
    else this.settle(item, () => item.reject(new PushletBrokerError(MESSAGES.publishFailed(reason(error)))));
  }

  private settle(item: Pending, done: () => void): void {
    if (!this.pending.delete(item)) return;
    done();
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
