import { HttpException, type MessageEvent } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import type { PushletService } from '../../../src/index.js';

/**
 * Everything one `PushletService.stream()` subscription emits, in order: the `pushlet:connected`
 * frame (its id is the connection's resume id), `pushlet:reset` notices, and messages with their
 * ids. Message data is `<topic>#<seq>` (see {@link Ledger}), since a `MessageEvent` does not carry
 * its topic.
 */

export interface ConnectedFrame {
  readonly kind: 'connected';
  readonly id: string;
  readonly data: string;
}

export interface ResetFrame {
  readonly kind: 'reset';
  readonly topics: readonly string[];
  readonly reason: string;
  readonly data: string;
}

export interface MessageFrame {
  readonly kind: 'message';
  readonly id: string;
  readonly event: string;
  readonly data: string;
  /** From the data `<topic>#<seq>`; `undefined` for data of another shape. */
  readonly topic?: string;
  readonly seq?: number;
}

/** Any other `pushlet:*` frame (a disconnect notice, say). */
export interface NoticeFrame {
  readonly kind: 'notice';
  readonly event: string;
  readonly data: string;
}

export type Frame = ConnectedFrame | ResetFrame | MessageFrame | NoticeFrame;

/** `<topic>#<seq>`: topics cannot contain `#` (reserved for patterns), so the last `#` splits. */
export function parsePayload(data: string): { topic: string; seq: number } | undefined {
  const at = data.lastIndexOf('#');
  const seq = Number(data.slice(at + 1));
  return at > 0 && Number.isInteger(seq) ? { topic: data.slice(0, at), seq } : undefined;
}

export class StreamRecorder {
  readonly frames: Frame[] = [];
  /** How the stream ended, if it did. */
  error: unknown;
  completed = false;
  private readonly subscription: Subscription;
  private readonly waiters = new Set<() => void>();

  private constructor(
    readonly topics: readonly string[],
    readonly lastEventId: string | undefined,
    pushlet: PushletService,
    rewind?: number,
  ) {
    this.subscription = pushlet.stream(topics, { ...(lastEventId !== undefined && { lastEventId }), ...(rewind !== undefined && { rewind }) }).subscribe({
      next: (event) => this.record(event),
      error: (error: unknown) => {
        this.error = error;
        this.wake();
      },
      complete: () => {
        this.completed = true;
        this.wake();
      },
    });
  }

  /** Subscribes at once (the subscription is under way when this returns); see {@link connected}. */
  static open(pushlet: PushletService, topics: readonly string[], lastEventId?: string, rewind?: number): StreamRecorder {
    return new StreamRecorder(topics, lastEventId, pushlet, rewind);
  }

  get ended(): boolean {
    return this.completed || this.error !== undefined;
  }

  /** The `pushlet:connected` frame, once it came. */
  get connectedFrame(): ConnectedFrame | undefined {
    return this.frames.find((f): f is ConnectedFrame => f.kind === 'connected');
  }

  get messages(): MessageFrame[] {
    return this.frames.filter((f): f is MessageFrame => f.kind === 'message');
  }

  get resets(): ResetFrame[] {
    return this.frames.filter((f): f is ResetFrame => f.kind === 'reset');
  }

  /** Messages of `topic`, in arrival order. */
  messagesOf(topic: string): MessageFrame[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  resetsOf(topic: string): ResetFrame[] {
    return this.resets.filter((r) => r.topics.includes(topic));
  }

  /**
   * The id to resume from, as the stream handed it: the last message's, else the connected
   * frame's. Throws when the stream handed none.
   */
  get resumeId(): string {
    const id = this.messages.at(-1)?.id ?? this.connectedFrame?.id;
    if (!id) throw new Error(`no resume id yet: ${this.describe()}`);
    return id;
  }

  /** Waits (bounded) for the `pushlet:connected` frame; rejects if the stream ends first. */
  async connected(ms = 10_000): Promise<ConnectedFrame> {
    await this.waitFor(() => this.connectedFrame !== undefined, ms, 'pushlet:connected');
    return this.connectedFrame!;
  }

  /**
   * Waits until `check` holds, asked again at every frame. Bounded; rejects at once (with the
   * timeline) if the stream ends while `check` does not hold.
   */
  waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    let waiter: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    return new Promise<void>((resolve, reject) => {
      waiter = () => {
        if (check()) resolve();
        else if (this.ended) reject(new Error(`the stream ended (${this.endDescription()}) before ${what}: ${this.describe()}`));
      };
      // The timeline as it stands when the wait gives up.
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}; so far: ${this.describe()}`)), ms);
      this.waiters.add(waiter);
      waiter();
    }).finally(() => {
      clearTimeout(timer);
      this.waiters.delete(waiter!);
    });
  }

  /** Waits until message `seq` of `topic` arrived (and everything the stream sent before it). */
  waitForMessage(topic: string, seq: number, ms = 10_000): Promise<void> {
    return this.waitFor(() => this.messages.some((m) => m.topic === topic && m.seq === seq), ms, `${topic}#${seq}`);
  }

  /** Waits for the end of the stream, whichever way (bounded). */
  waitForEnd(ms: number): Promise<void> {
    return this.waitFor(() => this.ended, ms, 'the end of the stream');
  }

  /**
   * True when the stream failed the way a stream that cannot be served now must fail: an HTTP
   * 503 (the backend is unavailable; the client comes back with the same id).
   */
  get failedCleanly(): boolean {
    return this.error instanceof HttpException && this.error.getStatus() === 503;
  }

  close(): void {
    this.subscription.unsubscribe();
    this.waiters.clear();
  }

  /** The timeline in one line, for assertion messages. */
  describe(): string {
    const parts = this.frames.map((f) => {
      switch (f.kind) {
        case 'connected':
          return `connected(${f.data})`;
        case 'reset':
          return `reset(${f.topics.join(',')}: ${f.reason})`;
        case 'message':
          return f.data;
        case 'notice':
          return `${f.event}(${f.data})`;
      }
    });
    if (this.ended) parts.push(`[${this.endDescription()}]`);
    return parts.join(' | ') || '(nothing)';
  }

  private endDescription(): string {
    if (this.error === undefined) return this.completed ? 'completed' : 'open';
    const error = this.error as { name?: string; message?: string; getStatus?: () => number };
    return `error ${error.getStatus?.() ?? ''} ${error.name ?? ''}: ${error.message ?? String(this.error)}`;
  }

  private record(event: MessageEvent): void {
    const type = event.type;
    // Heartbeat comments have no type.
    if (type === undefined) return;
    const data = typeof event.data === 'string' ? event.data : JSON.stringify(event.data);
    if (type === 'pushlet:connected') {
      this.frames.push({ kind: 'connected', id: String(event.id ?? ''), data });
    } else if (type === 'pushlet:reset') {
      const parsed = JSON.parse(data) as { topics?: unknown; reason?: unknown };
      const topics = Array.isArray(parsed.topics) ? parsed.topics.map(String) : [];
      this.frames.push({ kind: 'reset', topics, reason: String(parsed.reason ?? ''), data });
    } else if (type.startsWith('pushlet:')) {
      this.frames.push({ kind: 'notice', event: type, data });
    } else {
      this.frames.push({ kind: 'message', id: String(event.id ?? ''), event: type, data, ...parsePayload(data) });
    }
    this.wake();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
