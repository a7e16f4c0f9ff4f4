import type { Writable } from 'node:stream';

/**
 * Corked bytes past which a writer flushes at once rather than at the end of the turn: a big
 * burst then reaches the kernel's buffer as it would uncorked, instead of piling up in the
 * process (and counting against the connection's `bufferBytes`).
 */
export const EARLY_FLUSH_BYTES = 64 * 1024;

/** Something holding corked writes, released by {@link WriteBatch}. */
export interface BatchedWriter {
  flush(): void;
}

/**
 * Releases the writers that wrote in this event-loop turn, all together once the turn's work is
 * done (`setImmediate`, so an awaited publishing loop counts as one turn): one scheduled callback
 * per turn for all the connections of a transport, not one per socket as `ServerResponse.write`
 * spends.
 */
export class WriteBatch {
  private pending: BatchedWriter[] = [];
  private scheduled: NodeJS.Immediate | undefined;

  /** Flushes `writer` at the end of this turn. */
  add(writer: BatchedWriter): void {
    this.pending.push(writer);
    this.scheduled ??= setImmediate(this.flushAll);
  }

  /** Flushes everything now. */
  readonly flushAll = (): void => {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const writers = this.pending;
    this.pending = [];
    for (const writer of writers) writer.flush();
  };
}

/**
 * Writes whole frames to one socket. The first write of a turn goes out at once, exactly like a
 * plain `socket.write`; if more follow in the same turn (a burst), the socket is corked and they
 * leave together in one system call when the batch flushes it.
 */
export class SocketWriter implements BatchedWriter {
  /** 0: nothing written this turn; 1: written, not corked; 2: corked. */
  private turn: 0 | 1 | 2 = 0;

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
    if (this.turn === 0) {
      this.turn = 1;
      this.batch.add(this);
      socket.write(bytes);
      return;
    }
    if (this.turn === 1) {
      this.turn = 2;
      socket.cork();
    }
    socket.write(bytes);
    if (socket.writableLength >= EARLY_FLUSH_BYTES) this.flush();
  }

  /** Sends what is corked; the next write starts a new turn. */
  flush(): void {
    if (this.turn === 2) this.socket.uncork();
    this.turn = 0;
  }
}
