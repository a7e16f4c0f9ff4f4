import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConnectionSlot } from '../core/connection-tracker.js';
import type { Envelope } from '../core/envelope.js';
import type { Feed, FeedSink } from '../core/feed.js';
import { MESSAGES } from '../pushlet.messages.js';
import { encodeFrame, messageFrame } from './sse-encoder.js';

/**
 * One open event stream. Writes go straight to the response; what the client has not read yet
 * is bounded by `bufferBytes`, past which the client is disconnected (it resumes from its last
 * id) rather than letting the server's memory grow.
 */
export class SseConnection implements FeedSink {
  feed: Feed | undefined;
  private closed = false;
  private delivered = false;

  constructor(
    readonly request: IncomingMessage,
    private readonly response: ServerResponse,
    private readonly slot: ConnectionSlot,
    private readonly bufferBytes: number,
    private readonly resumeId: string | undefined,
    private readonly onSlow: (connection: SseConnection) => void,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  deliver(envelope: Envelope): void {
    this.delivered = true;
    this.write(messageFrame(envelope));
  }

  reset(topics: readonly string[]): void {
    const data = JSON.stringify({ topics: topics.filter((t) => t !== '*'), reason: MESSAGES.resetUnknownId });
    // Keeps the client's id: a reconnect after this frame resumes from the same place. Once
    // messages have gone out (a reset from the broker mid-stream), the frame carries no id at all,
    // so that the client keeps the id of the last message it got.
    this.write(encodeFrame('pushlet:reset', data, this.delivered ? undefined : this.resumeId));
  }

  whenWritable(): Promise<void> | undefined {
    if (this.closed || this.response.writableLength < this.bufferBytes / 2) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      this.response.on('drain', done);
      this.response.on('close', done);
    });
  }

  write(chunk: Buffer | string): void {
    if (this.closed) return;
    if (this.response.writableLength + chunk.length > this.bufferBytes) {
      this.onSlow(this);
      this.destroy();
      return;
    }
    this.response.write(chunk);
  }

  /** Ends the stream gracefully (shutdown); a client that cannot take the rest is cut off. */
  end(): void {
    if (this.closed) return;
    this.response.end();
    if (this.response.writableLength > 0) this.response.destroy();
    this.dispose();
  }

  /** Drops the connection at once, discarding whatever is queued. */
  destroy(): void {
    if (this.closed) return;
    this.response.destroy();
    this.dispose();
  }

  /** Releases everything the connection holds; called once, however it ended. */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.feed?.close();
    this.slot.release();
  }
}
