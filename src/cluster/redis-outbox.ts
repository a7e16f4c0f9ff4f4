import { MESSAGES } from '../pushlet.messages.js';
import { isTransient, PushletRedisError } from './redis-errors.js';
import type { WireMessage } from './redis-codec.js';

/** A publication waiting for Redis to record it. */
interface Pending {
  readonly message: WireMessage;
  sent: boolean;
  readonly resolve: (id: string) => void;
  readonly reject: (error: Error) => void;
}

/** What the outbox needs: a way to send, and someone to tell when Redis stops answering. */
export interface OutboxTransport {
  send(message: WireMessage): Promise<string>;
  /** A send failed in a way that says Redis is unreachable (its outcome may be unknown). */
  unreachable(): void;
}

/**
 * Publications in the order they were made, each kept until Redis has recorded it and given it
 * its id. While the link is not ready they wait; when it is, they are sent in order, pipelined on
 * the one command connection. A publication whose outcome is unknown (the connection dropped
 * before the reply) is sent again: the publish script recognises a second copy and answers with
 * the first one's id, so nothing is recorded twice.
 */
export class RedisOutbox {
  private readonly pending: Pending[] = [];
  private counter = 0;

  constructor(
    private readonly origin: string,
    private readonly maxQueued: number,
    private readonly transport: OutboxTransport,
  ) {}

  /** Publications not yet recorded by Redis. */
  get size(): number {
    return this.pending.length;
  }

  /** Queues a publication; resolves to its id once Redis has recorded it. */
  publish(topic: string, event: string, data: string): Promise<string> {
    if (this.pending.length >= this.maxQueued) {
      return Promise.reject(new PushletRedisError(MESSAGES.redisQueueFull(this.maxQueued)));
    }
    return new Promise<string>((resolve, reject) => {
      this.counter += 1;
      this.pending.push({ message: { topic, event, data, origin: this.origin, counter: this.counter }, sent: false, resolve, reject });
    });
  }

  /** Sends every publication not sent yet, in order (call when the link is ready). */
  flush(): void {
    for (const item of this.pending) {
      if (item.sent) continue;
      item.sent = true;
      this.transport.send(item.message).then(
        (id) => this.settle(item, () => item.resolve(id)),
        (error: unknown) => this.failed(item, error),
      );
    }
  }

  /** The link went down: whatever was sent and not answered will be sent again. */
  resend(): void {
    for (const item of this.pending) item.sent = false;
  }

  /** Fails every publication still waiting (the broker stops). */
  rejectAll(error: Error): void {
    for (const item of this.pending.splice(0)) item.reject(error);
  }

  private failed(item: Pending, error: unknown): void {
    if (!this.pending.includes(item)) return;
    if (isTransient(error)) {
      item.sent = false;
      this.transport.unreachable();
      return;
    }
    this.settle(item, () => item.reject(new PushletRedisError(MESSAGES.redisPublishFailed(reason(error)))));
  }

  private settle(item: Pending, done: () => void): void {
    const index = this.pending.indexOf(item);
    if (index < 0) return;
    this.pending.splice(index, 1);
    done();
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
