import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PushletValidationError } from '../src/index.js';
import { startApp, type TestApp } from './support/app.js';
import { perTestConnections } from './support/connections.js';
import type { RawSseStream } from './support/raw-sse.js';
import { assertCleanEventStream, assertCleanWsFrames } from './support/wire-checks.js';
import type { WsClient } from './support/ws-client.js';

/**
 * Issue 10: no message can stall the others. A message within `limits.maxMessageBytes` reaches
 * every subscriber that reads, whole, without anyone being cut off as slow; a larger one is
 * refused at publish(); and the two limits are checked against each other at start-up.
 */

const TOPIC = 'big';

/** About `bytes` bytes of UTF-8 in many lines, with multi-byte characters, so that "intact" means something. */
function payload(bytes: number, tag: string): string {
  const line = `${tag} caf\u00e9 \u65e5\u672c \u{1f600} ${'x'.repeat(60)}`;
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes - 200; i++) {
    const next = `${i}:${line}`;
    lines.push(next);
    size += Buffer.byteLength(next) + 1;
  }
  return lines.join('\n');
}

interface Subscribers {
  sse: RawSseStream[];
  ws: WsClient[];
}

describe('large messages: delivered whole to everyone who reads, refused over maxMessageBytes (issue 10)', () => {
  const { app, sse, ws } = perTestConnections();

  async function subscribers(t: TestApp, count = 3): Promise<Subscribers> {
    const streams = await Promise.all(Array.from({ length: count }, () => sse(t, `/events?topic=${TOPIC}`)));
    const clients = await Promise.all(Array.from({ length: count }, () => ws(t, `/ws?topic=${TOPIC}`)));
    await Promise.all([...streams.map((s) => s.waitForNamed('pushlet:connected')), ...clients.map((c) => c.waitForEvents('pushlet:connected'))]);
    return { sse: streams, ws: clients };
  }

  async function expectDelivered(all: Subscribers, datas: readonly string[], ms = 10_000): Promise<void> {
    for (const stream of all.sse) {
      const got = await stream.waitForNamed('message', datas.length, ms);
      assert.equal(got.length, datas.length);
      got.forEach((event, i) => assert.ok(event.data === datas[i], `SSE message ${i} arrived whole (${event.data?.length} of ${datas[i]!.length} characters)`));
      assert.equal(stream.ended, false, 'the SSE stream is still open');
      assertCleanEventStream(stream.events, stream.raw, ['message']);
    }
    for (const client of all.ws) {
      const got = await client.waitForMessages(datas.length, ms);
      assert.equal(got.length, datas.length);
      got.forEach((message, i) => assert.ok(message.data === datas[i], `WebSocket message ${i} arrived whole`));
      assert.equal(client.closed, undefined, 'the WebSocket is still open');
      assertCleanWsFrames(client.frames, ['message']);
    }
  }

  it('with the default limits a 200 KB message reaches 3 SSE and 3 WebSocket subscribers whole, and a small one follows', async () => {
    const t = await app();
    const all = await subscribers(t);
    const big = payload(200_000, 'big');
    assert.ok(Buffer.byteLength(big) > 190_000 && Buffer.byteLength(big) < 200_000);
    await t.pushlet.publish(TOPIC, 'message', big);
    await t.pushlet.publish(TOPIC, 'message', 'small after it');
    await expectDelivered(all, [big, 'small after it']);
    assert.equal(t.pushlet.stats().slowConsumersDisconnected, 0);
    assert.equal(t.pushlet.stats().connections.total, 6);
  });

  it('refuses a 300 KB message with PushletValidationError naming 262144 and 1048576; nobody receives it', async () => {
    const t = await app();
    const all = await subscribers(t, 1);
    await assert.rejects(t.pushlet.publish(TOPIC, 'message', 'x'.repeat(300_000)), (error: unknown) => {
      assert.ok(error instanceof PushletValidationError, String(error));
      assert.match(error.message, /\b262144\b/);
      assert.match(error.message, /\b1048576\b/);
      return true;
    });
    await assert.rejects(t.pushlet.publishToAll('message', { huge: 'x'.repeat(300_000) }), PushletValidationError);
    await t.pushlet.publish(TOPIC, 'message', 'next');
    await expectDelivered(all, ['next']);
  });

  it('counts topic, event and data in UTF-8 bytes against maxMessageBytes, to the byte', async () => {
    const t = await app();
    const all = await subscribers(t, 1);
    const room = 262_144 - Buffer.byteLength(TOPIC) - Buffer.byteLength('message');
    // Three-byte characters: the UTF-8 size, not the string length, is what counts.
    const fits = '\u65e5'.repeat(Math.floor(room / 3)) + 'x'.repeat(room % 3);
    assert.equal(Buffer.byteLength(fits), room);
    await t.pushlet.publish(TOPIC, 'message', fits);
    await assert.rejects(t.pushlet.publish(TOPIC, 'message', `${fits}x`), PushletValidationError);
    await expectDelivered(all, [fits]);
  });

  it('refuses at start-up a maxMessageBytes over half of bufferBytes, naming both figures', async () => {
    await assert.rejects(startApp({ limits: { bufferBytes: 1_000_000, maxMessageBytes: 600_000 } }), (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /\b600000\b/);
      assert.match(error.message, /\b1000000\b/);
      return true;
    });
  });

  it('with bufferBytes 64 KiB and maxMessageBytes 32 KiB, 30 KB messages in a row reach every reader', async () => {
    const t = await app({ limits: { bufferBytes: 64 * 1024, maxMessageBytes: 32 * 1024 } });
    const all = await subscribers(t);
    const datas = Array.from({ length: 8 }, (_, i) => payload(30_000, `m${i}`));
    for (const data of datas) {
      await t.pushlet.publish(TOPIC, 'message', data);
      // A steady publisher: the readers (in this process) get a turn between messages.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await expectDelivered(all, datas);
    assert.equal(t.pushlet.stats().slowConsumersDisconnected, 0);
  });

  it('with bufferBytes 64 KiB, four 30 KB messages published in one turn reach readers whose sockets are empty', async () => {
    const t = await app({ limits: { bufferBytes: 64 * 1024, maxMessageBytes: 32 * 1024 } });
    const all = await subscribers(t, 1);
    const datas = Array.from({ length: 4 }, (_, i) => payload(30_000, `m${i}`));
    for (const data of datas) await t.pushlet.publish(TOPIC, 'message', data);
    await expectDelivered(all, datas, 3_000);
    assert.equal(t.pushlet.stats().slowConsumersDisconnected, 0);
  });
});
