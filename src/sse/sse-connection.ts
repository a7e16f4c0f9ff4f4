import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionSlot } from '../core/connection-tracker.js';
import type { Envelope } from '../core/envelope.js';
import { drained } from '../core/drain.js';
import type { Feed, FeedSink } from '../core/feed.js';
import { MESSAGES } from '../pushlet.messages.js';
import { encodeFrame, httpChunk, messageEncoding } from './sse-encoder.js';
import { SocketWriter, type WriteBatch } from '../core/write-batch.js';

/**
 * One open event stream. What the client has not read yet is bounded by `bufferBytes`, past
 * which the client is disconnected (it resumes from its last id) rather than letting the
 * server's memory grow.
 *
 * Once the headers are out, frames go straight to the socket when nothing wraps the response
 * (see {@link directSocket}): each message is encoded once, already framed as an HTTP chunk, and
 * every subscriber costs one `socket.write` of those shared bytes, instead of the four writes,
 * cork and next-tick uncork that `ServerResponse.write` spends per chunk. A burst within one
 * event-loop turn is corked and goes out in one write ({@link SocketWriter}).
 */
export class SseConnection implements FeedSink {
  feed: Feed | undefined;
  private closed = false;
  private delivered = false;
  /** Set when frames are written to the socket directly. */
  private socket: SocketWriter | undefined;
  /** Whether the body is `Transfer-Encoding: chunked` (HTTP/1.1), so direct writes need chunk framing. */
  private chunked = false;

  constructor(
    readonly request: IncomingMessage,
    private readonly response: ServerResponse,
    private readonly slot: ConnectionSlot,
    private readonly bufferBytes: number,
    private readonly resumeId: string | undefined,
    private readonly onSlow: (connection: SseConnection) => void,
    private readonly batch: WriteBatch,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends the status line and `headers` now, and picks the write path for everything after. */
  open(headers: Record<string, string>): void {
    this.response.writeHead(200, headers);
    this.response.flushHeaders();
    const socket = directSocket(this.response);
    this.socket = socket && new SocketWriter(socket, this.batch);
    this.chunked = this.response.chunkedEncoding;
  }

  deliver(envelope: Envelope): void {
    this.delivered = true;
    const encoding = messageEncoding(envelope);
    this.send(this.socket && this.chunked ? encoding.chunk : encoding.frame);
  }

  reset(topics: readonly string[]): void {
    const data = JSON.stringify({ topics: topics.filter((t) => t !== '*'), reason: MESSAGES.resetUnknownId });
    // Keeps the client's id: a reconnect after this frame resumes from the same place. Once
    // messages have gone out (a reset from the broker mid-stream), the frame carries no id at all,
    // so that the client keeps the id of the last message it got.
    this.write(encodeFrame('pushlet:reset', data, this.delivered ? undefined : this.resumeId));
  }

  /**
   * Paces replays: a promise that resolves once half the buffer has drained, or `undefined` when
   * there is room now.
   */
  whenWritable(): Promise<void> | undefined {
    if (this.closed || this.queuedBytes() < this.bufferBytes / 2) return undefined;
    return drained(this.socket?.socket ?? this.response);
  }

  /** Writes one SSE frame. */
  write(frame: Buffer | string): void {
    if (this.socket && this.chunked) this.send(httpChunk(typeof frame === 'string' ? Buffer.from(frame) : frame));
    else this.send(frame);
  }

  /**
   * Writes a frame that is shared by many connections, given both as a bare frame and framed as
   * an HTTP chunk, so that neither is encoded once per connection (heartbeats).
   */
  writeShared(frame: Buffer, chunk: Buffer): void {
    this.send(this.socket && this.chunked ? chunk : frame);
  }

  /** Ends the stream gracefully (shutdown); a client that cannot take the rest is cut off. */
  end(): void {
    if (this.closed) return;
    this.socket?.flush();
    this.response.end();
    if (this.queuedBytes() > 0) this.response.destroy();
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

  /** Bytes written but not yet taken by the kernel (the client is not reading fast enough). */
  private queuedBytes(): number {
    return this.socket ? this.socket.queuedBytes : this.response.writableLength;
  }

  /** Writes bytes already in their final wire form for this connection's write path. */
  private send(bytes: Buffer | string): void {
    if (this.closed) return;
    if (this.queuedBytes() + bytes.length > this.bufferBytes) {
      this.onSlow(this);
      this.destroy();
      return;
    }
    if (this.socket) this.socket.write(bytes);
    else this.response.write(bytes);
  }
}

/**
 * The socket under `response` when the rest of the body may be written to it directly: an
 * HTTP/1.x response whose headers are out and whose `write` nobody has wrapped (compression
 * middleware, for one, replaces it and must see every byte). Otherwise `undefined`, and frames
 * go through `response.write`.
 */
function directSocket(response: ServerResponse): Socket | undefined {
  const socket = response.socket;
  if (!socket || !response.headersSent || response.write !== ServerResponse.prototype.write) return undefined;
  if (response.getHeader('content-encoding') !== undefined) return undefined;
  return socket;
}
