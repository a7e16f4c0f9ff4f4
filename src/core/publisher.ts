import type { PushletMessage } from '../interfaces/message.interface.js';
import { MESSAGES } from '../pushlet.messages.js';
import { PushletValidationError } from './errors.js';
import type { RecoveryCore } from './recovery-core.js';

/** Where a publication came from: the server's own code (`PushletService`) or a client's publish command. */
export type PublishOrigin = 'server' | 'client';

/** What publishing counts: the acknowledgements, timed when someone observes them. */
export interface PublishCounters {
  /** A start time to hand to {@link acknowledged} (0 when nobody times it). */
  publishing(): number;
  acknowledged(origin: PublishOrigin, started: number): void;
}

/** Publishes one message: what the service and clients that publish share. */
export interface MessagePublisher {
  /**
   * Records and routes one message. Resolves with the message once the broker has it.
   * @throws PushletValidationError for a message over `limits.maxMessageBytes`.
   */
  publish(topic: string, event: string, data: string, origin: PublishOrigin): Promise<PushletMessage>;
}

/** Publishing: the size rule and the counters, one copy for the service and for clients that publish. */
export class Publisher implements MessagePublisher {
  constructor(
    private readonly core: RecoveryCore,
    private readonly limits: { readonly maxMessageBytes: number; readonly bufferBytes: number },
    private readonly counters: PublishCounters,
  ) {}

  async publish(topic: string, event: string, data: string, origin: PublishOrigin): Promise<PushletMessage> {
    const { maxMessageBytes, bufferBytes } = this.limits;
    // Quick bound first: a string of n UTF-16 units takes at most 3n bytes in UTF-8.
    if ((topic.length + event.length + data.length) * 3 > maxMessageBytes) {
      const size = Buffer.byteLength(topic) + Buffer.byteLength(event) + Buffer.byteLength(data);
      if (size > maxMessageBytes) throw new PushletValidationError(MESSAGES.messageTooLarge(size, maxMessageBytes, bufferBytes));
    }
    const started = this.counters.publishing();
    const envelope = await this.core.publish(topic, event, data);
    this.counters.acknowledged(origin, started);
    return envelope.message;
  }
}
