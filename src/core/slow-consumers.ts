import type { LoggerService } from '@nestjs/common';
import type { PushletTransport } from '../protocol/frames.js';
import { MESSAGES } from '../pushlet.messages.js';

/** How long one report of slow consumers gathers them. */
const REPORT_WINDOW_MS = 1_000;

/**
 * Logs clients disconnected for reading too slowly (the connection tracker counts them): the first of a burst at once,
 * the rest of the burst in one line with its count when the window closes, without waiting for a
 * later event. At most two lines a second however many clients fall behind.
 */
export class SlowConsumerReporter {
  private pending: Map<PushletTransport, number> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly logger: LoggerService) {}

  report(transport: PushletTransport, address: string | undefined): void {
    if (this.pending) {
      this.pending.set(transport, (this.pending.get(transport) ?? 0) + 1);
      return;
    }
    this.logger.warn(`disconnected a slow ${transport} client ${address ?? ''}: ${MESSAGES.slowConsumer}`);
    this.pending = new Map();
    this.timer = setTimeout(() => this.flush(), REPORT_WINDOW_MS);
    this.timer.unref();
  }

  /** Logs what the current window gathered (also at shutdown). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const pending = this.pending;
    this.pending = undefined;
    if (!pending || pending.size === 0) return;
    const parts = [...pending].map(([transport, count]) => `${count} ${transport}`);
    this.logger.warn(`disconnected ${parts.join(' and ')} more slow clients within ${REPORT_WINDOW_MS} ms: ${MESSAGES.slowConsumer}`);
  }
}
