import type { EventEmitter } from 'node:events';
import { clientAddress } from '../core/client-address.js';
import type { IncomingMessage } from 'node:http';
import { WebSocket, type RawData } from 'ws';
import type { WriteQueue } from '../core/bounded-writer.js';
import type { Envelope } from '../core/envelope.js';
import type { Session, SessionOutput } from '../core/session.js';
import { sessionEndWire, type SessionEndReason } from '../core/session-end.js';
import { SocketWriter, type WriteBatch } from '../core/write-batch.js';
import { CLOSE_CODES, type Notice } from '../protocol/frames.js';
import { MESSAGES } from '../pushlet.messages.js';
import { CommandBudget } from './ws-commands.js';
import type { DeliveryMeter } from '../core/counters.js';
import { messageFrame, messageWireFrame, messageWithId, noticeFrame, WS_METERS } from './ws-encoder.js';

export { CLOSE_CODES } from '../protocol/frames.js';

/** How long a closing handshake may take before the socket is cut. */
export const CLOSE_GRACE_MS = 1_000;
/** Close reasons are limited to 123 bytes by RFC 6455. */
const MAX_CLOSE_REASON_BYTES = 123;

export interface WsConnectionSettings {
  /** Binary frames (the default) or text frames. */
  readonly binary: boolean;
  readonly commandsPerSecond: number;
  /** Uncorks the sockets that messages were written to, once per event-loop turn. */
  readonly writeBatch: WriteBatch;
}

/** What the transport does with a connection's events. */
export interface WsConnectionHandlers {
  /** A frame from the client, within its command budget. */
  frame(connection: WsConnection, data: RawData): void;
  /** A command or the opening failed unexpectedly (the connection is closed with 1011). */
  failed(connection: WsConnection, error: unknown): void;
  closed(connection: WsConnection): void;
}

/**
 * One open WebSocket: encodes and writes frames, runs commands one at a time in arrival order
 * (so replies come in the order of the commands), answers the heartbeat and closes. Its session
 * decides what to write and when to stop.
 *
 * Published messages skip `WebSocket.send` when no extension is negotiated: each message is
 * framed once for all clients ({@link messageWireFrame}) and written to the upgraded socket in
 * one write; a burst within one event-loop turn is corked and leaves in one system call
 * ({@link SocketWriter}). `ws` writes its own frames (replies, pings, close) synchronously to the
 * same socket, so frames never interleave.
 */
export class WsConnection implements SessionOutput, WriteQueue {
  session!: Session;
  /** Resolves once the socket has closed, however that happened. */
  readonly ended: Promise<void>;
  readonly queue: WriteQueue = this;
  readonly meter: DeliveryMeter;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private alive = true;
  private tasks: Promise<void> = Promise.resolve();
  private queued = 0;
  private readonly budget: CommandBudget;
  private graceTimer: NodeJS.Timeout | undefined;
  private markEnded!: () => void;
  /** The upgraded socket, when messages may be written to it directly (no extension negotiated). */
  private readonly raw: SocketWriter | undefined;

  constructor(
    private readonly socket: WebSocket,
    readonly request: IncomingMessage,
    private readonly settings: WsConnectionSettings,
    private readonly handlers: WsConnectionHandlers,
  ) {
    this.budget = new CommandBudget(settings.commandsPerSecond);
    this.meter = WS_METERS[settings.binary ? 'binary' : 'text'];
    this.raw = socket.extensions === '' ? new SocketWriter(request.socket, settings.writeBatch) : undefined;
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
    socket.on('close', () => this.dispose());
    socket.on('pong', () => (this.alive = true));
    socket.on('message', (data) => this.receive(data));
  }

  /** The client's address, for logs: read when asked (a system call, see ConnectionTracker.countsAddresses). */
  get address(): string {
    return clientAddress(this.request);
  }

  /** Bytes not yet taken by the kernel: `ws` queues nothing of its own without extensions. */
  queuedBytes(): number {
    return this.socket.bufferedAmount;
  }

  /** The upgraded socket: `ws` itself emits no drain event. */
  get drainSource(): EventEmitter {
    return this.request.socket;
  }

  message(envelope: Envelope, id: string | undefined): void {
    const binary = this.settings.binary;
    if (this.raw) this.sendFramed(id === undefined ? messageWireFrame(envelope, binary) : messageWithId(envelope, id, binary, true));
    else this.send(id === undefined ? messageFrame(envelope) : messageWithId(envelope, id, binary, false));
  }

  notice(notice: Notice): void {
    this.send(noticeFrame(notice));
  }

  end(reason: SessionEndReason, detail?: string): void {
    const { closeCode, text } = sessionEndWire(reason, detail);
    this.close(closeCode, text);
  }

  /** Writes one payload through `ws`, within the session's bound. */
  private send(payload: Buffer): void {
    if (this.state !== 'open' || !this.session.writer.admit(payload.length)) return;
    this.socket.send(payload, { binary: this.settings.binary });
  }

  /** Writes a complete frame to the upgraded socket (see the class comment), within the session's bound. */
  private sendFramed(frame: Buffer): void {
    if (this.state !== 'open' || this.socket.readyState !== WebSocket.OPEN) return;
    if (!this.session.writer.admit(frame.length)) return;
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
    // Stops the session's frames; its call back to `end` finds the connection closing already.
    this.session.end('error');
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
    // A connection refused by a limit never got a session.
    (this.session as Session | undefined)?.dispose();
    this.markEnded();
    this.handlers.closed(this);
  }
}
