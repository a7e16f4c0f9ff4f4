/**
 * One timer for every connection of every transport: each tick calls the listeners, which write
 * one heartbeat to each of their connections. Cheaper than a timer per connection.
 */
export class Heartbeat {
  private readonly listeners = new Set<(now: Date) => void>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private intervalMs: number) {}

  get interval(): number {
    return this.intervalMs;
  }

  onTick(listener: (now: Date) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.running = true;
    this.schedule();
  }

  /** Changes the interval; a running heartbeat restarts with it at once. */
  setInterval(ms: number): void {
    if (!Number.isFinite(ms) || ms <= 0) throw new RangeError('heartbeat interval must be a positive number of milliseconds');
    this.intervalMs = ms;
    if (this.running) this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => {
      const now = new Date();
      for (const listener of this.listeners) listener(now);
    }, this.intervalMs);
    this.timer.unref();
  }
}
