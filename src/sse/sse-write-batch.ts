/** Something holding corked writes, released by {@link SseWriteBatch}. */
export interface BatchedWriter {
  flush(): void;
}

/**
 * Lets SSE connections cork their socket on the first write of an event-loop turn and uncorks
 * them all together once the turn's work is done (`setImmediate`), so that a burst of messages
 * for one client (a publishing loop, awaited or not; a batch from the broker) leaves in one
 * system call. One scheduled callback per turn for all connections, not one per socket as
 * `ServerResponse.write` spends.
 */
export class SseWriteBatch {
  private pending: BatchedWriter[] = [];
  private scheduled: NodeJS.Immediate | undefined;

  /** Flushes `writer` at the end of this turn; call once per turn per writer. */
  add(writer: BatchedWriter): void {
    this.pending.push(writer);
    this.scheduled ??= setImmediate(this.flushAll);
  }

  /** Flushes everything now (shutdown). */
  readonly flushAll = (): void => {
    this.scheduled = undefined;
    const writers = this.pending;
    this.pending = [];
    for (const writer of writers) writer.flush();
  };

  dispose(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.flushAll();
  }
}
