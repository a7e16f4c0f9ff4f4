import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoggerService } from '@nestjs/common';
import { MESSAGES } from '../src/pushlet.messages.js';
import type { TestApp } from './support/app.js';
import { perTestConnections } from './support/connections.js';
import { SseClient } from './support/sse-client.js';
import { within } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

/**
 * Issue 10: no client can stall the others, and a burst of slow clients is logged in at most two
 * lines: the first client at once, the rest of the burst with its count when the one-second
 * window closes, without waiting for a later event (src/core/slow-consumers.ts).
 */

const CLIENTS = 50;
const LIMITS = { bufferBytes: 32 * 1024, maxMessageBytes: 16 * 1024 };

/** A LoggerService that keeps every line, with bounded waits on the warnings. */
class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: string; at: number; text: string }> = [];
  private waiters: Array<() => void> = [];

  log(message: unknown): void {
    this.push('log', message);
  }
  error(message: unknown): void {
    this.push('error', message);
  }
  warn(message: unknown): void {
    this.push('warn', message);
  }
  debug(message: unknown): void {
    this.push('debug', message);
  }
  verbose(message: unknown): void {
    this.push('verbose', message);
  }

  get warnings() {
    return this.lines.filter((line) => line.level === 'warn');
  }

  async waitForWarnings(count: number, ms: number): Promise<void> {
    if (this.warnings.length >= count) return;
    await within(
      new Promise<void>((resolve) => {
        const waiter = () => {
          if (this.warnings.length < count) return;
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve();
        };
        this.waiters.push(waiter);
      }),
      ms,
      `${count} warnings (have ${this.warnings.length}: ${this.warnings.map((w) => w.text).join(' | ')})`,
    );
  }

  private push(level: string, message: unknown): void {
    this.lines.push({ level, at: Date.now(), text: String(message) });
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** Publishes 15 KB messages, a turn apart, until every paused client has been cut off. */
async function floodUntilAllCut(t: TestApp, count: number): Promise<number> {
  const data = 'x'.repeat(15 * 1024);
  const deadline = Date.now() + 20_000;
  let published = 0;
  while (t.pushlet.stats().slowConsumersDisconnected < count) {
    assert.ok(Date.now() < deadline, `only ${t.pushlet.stats().slowConsumersDisconnected} of ${count} clients cut off after ${published} messages`);
    await t.pushlet.publish('slow', 'message', data);
    published += 1;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return published;
}

describe('slow consumers are logged in at most two lines a burst (issue 10)', () => {
  const { app, track } = perTestConnections();

  async function expectTwoLines(t: TestApp, logger: CapturingLogger, transport: 'sse' | 'ws'): Promise<void> {
    assert.equal(t.pushlet.stats().slowConsumersDisconnected, CLIENTS);
    const cutAt = Date.now();
    // No publication, no connection, nothing else happens from here: the second line comes on its own.
    await logger.waitForWarnings(2, 3_000);
    const [first, rest] = logger.warnings;
    assert.match(first!.text, new RegExp(`^disconnected a slow ${transport} client 127\\.0\\.0\\.1: `));
    assert.ok(first!.text.endsWith(MESSAGES.slowConsumer), first!.text);
    assert.equal(rest!.text, `disconnected ${CLIENTS - 1} ${transport} more slow clients within 1000 ms: ${MESSAGES.slowConsumer}`);
    assert.ok(rest!.at - first!.at >= 950, `the second line waited for the window (${rest!.at - first!.at} ms)`);
    assert.ok(rest!.at - cutAt <= 3_000);
    // Shutdown flushes whatever a window still holds: nothing is left, so still two lines.
    await t.close();
    assert.equal(logger.warnings.length, 2, logger.warnings.map((w) => w.text).join('\n'));
    assert.deepEqual(
      logger.lines.filter((line) => line.level === 'error'),
      [],
    );
  }

  it(`${CLIENTS} SSE clients that stop reading: cut off, logged as the first one and then the other ${CLIENTS - 1} in one line`, async () => {
    const logger = new CapturingLogger();
    const t = await app({ logger, limits: LIMITS });
    const clients = await Promise.all(Array.from({ length: CLIENTS }, async () => track(await SseClient.open(`${t.url}/events?topic=slow`))));
    await Promise.all(clients.map((client) => client.waitForEvents(1)));
    const good = track(await SseClient.open(`${t.url}/events?topic=slow`));
    await good.waitForEvents(1);
    for (const client of clients) client.pause();
    const published = await floodUntilAllCut(t, CLIENTS);
    // The reader that reads was never held up, nor cut off.
    const messages = await good.waitForEvents(published, 10_000, 'message');
    assert.equal(messages.length, published);
    assert.equal(good.ended, false);
    await expectTwoLines(t, logger, 'sse');
  });

  it(`${CLIENTS} WebSocket clients that stop reading: cut off, logged the same way`, async () => {
    const logger = new CapturingLogger();
    const t = await app({ logger, limits: LIMITS });
    const clients = await Promise.all(Array.from({ length: CLIENTS }, async () => track(await WsClient.open(`${t.wsUrl}/ws?topic=slow`))));
    await Promise.all(clients.map((client) => client.waitForEvents('pushlet:connected')));
    const good = track(await WsClient.open(`${t.wsUrl}/ws?topic=slow`));
    await good.waitForEvents('pushlet:connected');
    // The ws client reads through its socket: pausing that stops reading, as a stalled peer would.
    for (const client of clients) (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const published = await floodUntilAllCut(t, CLIENTS);
    const messages = await good.waitForMessages(published, 10_000);
    assert.equal(messages.length, published);
    assert.equal(good.closed, undefined);
    await expectTwoLines(t, logger, 'ws');
  });
});
