import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { EventEmitter } from 'node:events';
import type { WriteQueue } from '../core/bounded-writer.js';
import type { Envelope } from '../core/envelope.js';
import type { Session, SessionOutput } from '../core/session.js';
import { sessionEndWire, type SessionEndReason } from '../core/session-end.js';
import { SocketWriter, type WriteBatch } from '../core/write-batch.js';
import { sseFrame, type SseFormat } from '../protocol/sse.js';
import type { Notice } from '../protocol/frames.js';
import type { DeliveryMeter } from '../core/counters.js';
import { httpChunk, messageEncoding, messageWithId, SSE_METERS } from './sse-encoder.js';

/**
 * One open event stream: encodes frames and writes them. Its session decides what to write and
 * when to stop; its session's bounded writer decides whether the client keeps up.
 *
 * Once the headers are out, frames go straight to the socket when nothing wraps the response
 * (see {@link directSocket}): each message is encoded once, already framed as an HTTP chunk, and
 * every subscriber costs one `socket.write` of those shared bytes, instead of the four writes,
 * cork and next-tick uncork that `ServerResponse.write` spends per chunk. A burst within one
 * event-loop turn is corked and goes out in one write ({@link SocketWriter}).
 */
export class SseConnection implements SessionOutput, WriteQueue {
  session!: Session;
  /** Set when frames are written to the socket directly. */
  private socket: SocketWriter | undefined;
  /** Whether the body is `Transfer-Encoding: chunked` (HTTP/1.1), so direct writes need chunk framing. */
  private chunked = false;
  private closed = false;
  /** The session's bounded writer watches this connection's own queue. */
  readonly queue: WriteQueue = this;
  readonly meter: DeliveryMeter;

  constructor(
    readonly request: IncomingMessage,
    readonly response: ServerResponse,
    private readonly batch: WriteBatch,
    /** What message frames' `data:` lines hold (`?format=`). */
    private readonly format: SseFormat = 'text',
  ) {
    this.meter = SSE_METERS[format];
  }

  /** Bytes written but not yet taken by the kernel. */
  queuedBytes(): number {
    return this.socket ? this.socket.queuedBytes : this.response.writableLength;
  }

  get drainSource(): EventEmitter {
    return this.socket?.socket ?? this.response;
  }

  /** Sends the status line and `headers` now, and picks the write path for everything after. */
  open(headers: Record<string, string>): void {
    const response = this.response;
    response.writeHead(200, headers);
    const socket = directSocket(response);
    // The headers and the first frames written in this turn (`pushlet:connected`) leave together.
    if (socket) (this.socket = new SocketWriter(socket, this.batch)).hold();
    response.flushHeaders();
    this.chunked = response.chunkedEncoding;
  }

  message(envelope: Envelope, id: string | undefined): void {
    const direct = this.socket !== undefined && this.chunked;
    if (id !== undefined) this.send(messageWithId(envelope, id, direct, this.format));
    else {
      const encoding = messageEncoding(envelope, this.format);
      this.send(direct ? encoding.chunk : encoding.frame);
    }
  }

  notice(notice: Notice): void {
    this.write(Buffer.from(sseFrame(notice.event, notice.data, notice.id)));
  }

  /**
   * Writes a frame that is shared by many connections, given both as a bare frame and framed as
   * an HTTP chunk, so that neither is encoded once per connection (heartbeats).
   */
  writeShared(frame: Buffer, chunk: Buffer): void {
    this.send(this.socket && this.chunked ? chunk : frame);
  }

  /** Ends the stream before it started, asking the client to reconnect after `ms`. */
  retryLater(ms: number): void {
    this.write(Buffer.from(`retry: ${Math.round(ms)}\n\n`));
    this.session.end('shutdown');
  }

  end(reason: SessionEndReason): void {
    if (this.closed) return;
    this.closed = true;
    const { notice, graceful } = sessionEndWire(reason);
    // Ended with a notice (expired, disconnected) while its topics were checked (no headers yet):
    // the route sees the destroyed response and stops there.
    if (notice && !this.response.headersSent) this.response.destroy();
    // Ends that say why (their notice is written) close gracefully; only a failure cuts the stream.
    else if (graceful) {
      this.socket?.flush();
      this.response.end();
      if (this.queuedBytes() > 0) this.response.destroy();
    } else {
      this.response.destroy();
    }
  }

  /** Writes one bare SSE frame. */
  private write(frame: Buffer): void {
    this.send(this.socket && this.chunked ? httpChunk(frame) : frame);
  }

  /** Writes bytes already in their final wire form for this connection's write path. */
  private send(bytes: Buffer): void {
    if (this.closed || this.session.isEnded || !this.session.writer.admit(bytes.length)) return;
    if (this.socket) this.socket.write(bytes);
    else this.response.write(bytes);
  }
}

/**
 * The socket under `response` when the rest of the body may be written to it directly: an
 * HTTP/1.x response whose headers are about to go out and whose `write` (and `flushHeaders`) nobody has wrapped (compression
 * middleware, for one, replaces it and must see every byte). Otherwise `undefined`, and frames
 * go through `response.write`.
 */
function directSocket(response: ServerResponse): Socket | undefined {
  const socket = response.socket;
  if (!socket || response.write !== ServerResponse.prototype.write || response.flushHeaders !== ServerResponse.prototype.flushHeaders) return undefined;
  if (response.getHeader('content-encoding') !== undefined) return undefined;
  return socket;
}
