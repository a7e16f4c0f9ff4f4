import type { Writable } from 'node:stream';

/**
 * Corked bytes past which a writer flushes at once rather than at the end of the turn: a big
 * burst then reaches the kernel's buffer as it would uncorked, instead of piling up in the
 * process (and counting against the connection's `bufferBytes`).
 */
export const EARLY_FLUSH_BYTES = 64 * 1024;

/** The early flush for connections bounded at `bufferBytes`: a quarter of it, at most {@link EARLY_FLUSH_BYTES}. */
export function earlyFlushBytes(bufferBytes: number): number {
  return Math.min(EARLY_FLUSH_BYTES, Math.max(1, Math.floor(bufferBytes / 4)));
}

/** Something holding corked writes, released by {@link WriteBatch}. */
export interface BatchedWriter {
  flush(): void;
}

/**
 * Marks event-loop turns for the writers of a transport and releases, once per turn, the ones
 * that corked (`setImmediate`, so an awaited publishing loop counts as one turn): one scheduled
 * callback per turn for all connections, not one per socket as `ServerResponse.write` spends.
 */
export class WriteBatch {
  /** Advances every time the batch flushes: writes that see the same value share a turn. */
  turn = 0;

  /**
   * @param earlyFlushBytes corked bytes past which a writer flushes at once. Keep it well below a
   * connection's buffer bound: corked bytes count as unread until they are flushed.
   */
  constructor(readonly earlyFlushBytes = EARLY_FLUSH_BYTES) {}
  private pending: BatchedWriter[] = [];
  private scheduled: NodeJS.Immediate | undefined;

  /** The current turn, making sure it ends (and the next one starts) after this one's work. */
  current(): number {
    this.scheduled ??= setImmediate(this.flushAll);
    return this.turn;
  }

  /** Flushes `writer` at the end of this turn. */
  add(writer: BatchedWriter): void {
    this.pending.push(writer);
    this.scheduled ??= setImmediate(this.flushAll);
  }

  /** Ends the turn: flushes every corked writer now. */
  readonly flushAll = (): void => {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.turn += 1;
    const writers = this.pending;
    this.pending = [];
    for (const writer of writers) writer.flush();
  };
}

/**
 * Writes whole frames to one socket. The first write of a turn goes out at once, exactly like a
 * plain `socket.write` and at no extra cost; if more follow in the same turn (a burst), the
 * socket is corked and they leave together in one system call when the batch ends the turn.
 */
export class SocketWriter implements BatchedWriter {
  private lastTurn = -1;
  private corked = false;

  constructor(
    readonly socket: Writable,
    private readonly batch: WriteBatch,
  ) {}

  /** Bytes written but not yet taken by the kernel, corked ones included. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  write(bytes: Buffer | string): void {
    const socket = this.socket;
    const turn = this.batch.current();
    if (this.lastTurn !== turn) {
      this.lastTurn = turn;
      socket.write(bytes);
      return;
    }
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      this.batch.add(this);
    }
    socket.write(bytes);
    if (socket.writableLength >= this.batch.earlyFlushBytes) this.flush();
  }

  /**
   * Corks the socket until the batch ends this turn: what is written meanwhile (a response's
   * headers and its first frame) leaves in one system call.
   */
  hold(): void {
    this.lastTurn = this.batch.current();
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    this.batch.add(this);
  }

  /** Sends what is corked. */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }
}
