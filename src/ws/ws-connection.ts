import type { IncomingMessage } from 'node:http';
import { WebSocket, type RawData } from 'ws';
import type { ConnectionSlot } from '../core/connection-tracker.js';
import type { Envelope } from '../core/envelope.js';
import { drained } from '../core/drain.js';
import type { Feed, FeedSink } from '../core/feed.js';
import { SocketWriter, type WriteBatch } from '../core/write-batch.js';
import { BROADCAST_TOPIC } from '../core/topic.js';
import { MESSAGES } from '../pushlet.messages.js';
import { CommandBudget, type WsRef } from './ws-commands.js';
import { messageFrame, messageWireFrame, resetFrame } from './ws-encoder.js';

/** How long a closing handshake may take before the socket is cut. */
export const CLOSE_GRACE_MS = 1_000;
/** Close reasons are limited to 123 bytes by RFC 6455. */
const MAX_CLOSE_REASON_BYTES = 123;

export const CLOSE_CODES = {
  goingAway: 1001,
  policyViolation: 1008,
  internalError: 1011,
  tryAgainLater: 1013,
} as const;

export interface WsConnectionSettings {
  /** Binary frames (the default) or text frames. */
  readonly binary: boolean;
  /** Unsent bytes allowed before the client counts as too slow. */
  readonly bufferBytes: number;
  readonly commandsPerSecond: number;
  /** Uncorks the sockets that messages were written to, once per event-loop turn. */
  readonly writeBatch: WriteBatch;
}

/** What the transport does with a connection's events. */
export interface WsConnectionHandlers {
  createFeed(sink: FeedSink): Feed;
  /** A frame from the client, within its command budget. */
  frame(connection: WsConnection, data: RawData): void;
  slow(connection: WsConnection): void;
  /** A command or the opening failed unexpectedly (the connection is closed with 1011). */
  failed(connection: WsConnection, error: unknown): void;
  closed(connection: WsConnection): void;
}

/**
 * One open WebSocket. Commands run one at a time, in arrival order, so that replies come in the
 * order of the commands. What the client has not read yet is bounded by `bufferBytes`, past
 * which it is disconnected (it resumes from its last id) rather than letting memory grow.
 *
 * Published messages skip `WebSocket.send` when no extension is negotiated: each message is
 * framed once for all clients ({@link messageWireFrame}) and written to the upgraded socket in
 * one write; a burst within one event-loop turn is corked and leaves in one system call
 * ({@link SocketWriter}). `ws` writes its own frames (replies, pings, close) synchronously to the
 * same socket, so frames never interleave.
 */
export class WsConnection implements FeedSink {
  readonly feed: Feed;
  readonly address: string;
  /** Resolves once the socket has closed, however that happened. */
  readonly ended: Promise<void>;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private alive = true;
  private tasks: Promise<void> = Promise.resolve();
  private queued = 0;
  private readonly budget: CommandBudget;
  private resuming: { lastEventId: string; ref?: WsRef } | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private markEnded!: () => void;
  /** The upgraded socket, when messages may be written to it directly (no extension negotiated). */
  private readonly raw: SocketWriter | undefined;

  constructor(
    private readonly socket: WebSocket,
    readonly request: IncomingMessage,
    private readonly slot: ConnectionSlot,
    private readonly settings: WsConnectionSettings,
    private readonly handlers: WsConnectionHandlers,
  ) {
    this.address = request.socket.remoteAddress ?? 'unknown';
    this.budget = new CommandBudget(settings.commandsPerSecond);
    this.raw = socket.extensions === '' ? new SocketWriter(request.socket, settings.writeBatch) : undefined;
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
    this.feed = handlers.createFeed(this);
    socket.on('close', () => this.dispose());
    socket.on('pong', () => (this.alive = true));
    socket.on('message', (data) => this.receive(data));
  }

  /** The topics the client subscribed to (broadcasts not included). */
  get topics(): string[] {
    return this.feed.topics.filter((topic) => topic !== BROADCAST_TOPIC);
  }

  deliver(envelope: Envelope): void {
    if (this.raw) this.sendFramed(messageWireFrame(envelope, this.settings.binary));
    else this.send(messageFrame(envelope));
  }

  reset(topics: readonly string[]): void {
    if (!this.resuming) return;
    const named = topics.filter((topic) => topic !== BROADCAST_TOPIC);
    this.send(resetFrame(this.resuming.lastEventId, named, this.resuming.ref));
  }

  /**
   * Subscribes the feed to `topics`; with `resume`, replays after its id first, and a reset
   * frame says when that cannot be complete. Resolves once the topics are live.
   */
  async subscribe(topics: readonly string[], from: string | undefined, resume?: { lastEventId: string; ref?: WsRef }): Promise<void> {
    this.resuming = resume;
    try {
      await this.feed.add(topics, from, resume !== undefined);
    } finally {
      this.resuming = undefined;
    }
  }

  /** Paces replays: waits while half the buffer is taken (the upgraded socket drains it). */
  whenWritable(): Promise<void> | undefined {
    if (this.state !== 'open' || this.socket.bufferedAmount < this.settings.bufferBytes / 2) return undefined;
    // The upgraded socket: `ws` itself emits no drain event.
    return drained(this.request.socket);
  }

  /** Writes one frame, unless the client has fallen too far behind; then it is disconnected. */
  send(frame: Buffer): void {
    if (this.state !== 'open') return;
    if (this.socket.bufferedAmount + frame.length > this.settings.bufferBytes) {
      this.handlers.slow(this);
      this.close(CLOSE_CODES.tryAgainLater, MESSAGES.slowConsumer);
      return;
    }
    this.socket.send(frame, { binary: this.settings.binary });
  }

  /** Writes a complete frame to the upgraded socket (see the class comment). */
  private sendFramed(frame: Buffer): void {
    if (this.state !== 'open' || this.socket.readyState !== WebSocket.OPEN) return;
    // The socket's own queue is all of `bufferedAmount` here: `ws` queues nothing without extensions.
    if (this.raw!.queuedBytes + frame.length > this.settings.bufferBytes) {
      this.handlers.slow(this);
      this.close(CLOSE_CODES.tryAgainLater, MESSAGES.slowConsumer);
      return;
    }
    this.raw!.write(frame);
  }

  /**
   * Runs `task` after the ones queued before it. A connection with more than two seconds' worth of
   * commands waiting (an `authorize` that is slow to answer) is closed with 1008.
   */
  run(task: () => Promise<void> | void): void {
    if (this.state !== 'open') return;
    if (this.queued >= 2 * Math.max(1, this.settings.commandsPerSecond)) {
      this.close(CLOSE_CODES.policyViolation, MESSAGES.wsTooManyCommands);
      return;
    }
    this.queued += 1;
    this.tasks = this.tasks
      .then(() => (this.state === 'open' ? task() : undefined))
      .catch((error: unknown) => {
        this.handlers.failed(this, error);
        this.close(CLOSE_CODES.internalError, MESSAGES.wsInternalError);
      })
      .finally(() => {
        this.queued -= 1;
      });
  }

  /** Heartbeat: a peer that did not answer the previous ping is cut off, the others pinged again. */
  heartbeat(): void {
    if (this.state === 'closed') return;
    if (!this.alive) {
      this.terminate();
      return;
    }
    this.alive = false;
    if (this.socket.readyState === WebSocket.OPEN) this.socket.ping();
  }

  /** Starts the closing handshake; a peer that does not complete it within the grace period is cut off. */
  close(code: number, reason: string): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.feed.close();
    this.graceTimer = setTimeout(() => this.terminate(), CLOSE_GRACE_MS);
    this.graceTimer.unref();
    try {
      this.socket.close(code, Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES ? reason : undefined);
    } catch {
      this.terminate();
    }
  }

  /** Drops the connection at once, discarding whatever is queued. */
  terminate(): void {
    if (this.state === 'closed') return;
    this.socket.terminate();
  }

  private receive(data: RawData): void {
    if (this.state !== 'open') return;
    if (!this.budget.take()) {
      this.close(CLOSE_CODES.policyViolation, MESSAGES.wsTooManyCommands);
      return;
    }
    try {
      this.handlers.frame(this, data);
    } catch (error) {
      this.handlers.failed(this, error);
      this.close(CLOSE_CODES.internalError, MESSAGES.wsInternalError);
    }
  }

  /** Releases everything the connection holds; runs once, when the socket has closed. */
  private dispose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.feed.close();
    this.slot.release();
    this.markEnded();
    this.handlers.closed(this);
  }
}
