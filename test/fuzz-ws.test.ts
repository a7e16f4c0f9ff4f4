import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WsClient } from './support/ws-client.js';
import { startApp, type TestApp } from './support/app.js';
import { pick, prng, randomBytes, rawExchange, settledHeap } from './support/fuzz.js';
import { until } from './support/wait.js';
import { assertCleanWsFrames } from './support/wire-checks.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const DURATION_MS = Number(process.env.FUZZ_MS ?? 3_000);

function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

/** What a broken client or an attacker sends as WebSocket frames. */
function hostileFrame(random: () => number): string | Buffer {
  const junk = ['\r\n', '\0', 'pushlet:x', '*', '#', ' ', 'x'.repeat(300), '\u2028', ''];
  const values = [null, 1, -1, 1e308, true, [], {}, 'subscribe', ['subscribe'], { nested: true }];
  const forged = ['EVIL\nevent: forged\ndata: injected\n\n', 'EVIL"},"event":"forged', 'EVIL\r\nid: forged', `EVIL${'\u0000'.repeat(3)}`];
  switch (Math.floor(random() * 11)) {
    case 0:
      return randomBytes(random, 1 + Math.floor(random() * 1024));
    case 1:
      return JSON.stringify({ action: 'subscribe', topic: 'ok' }).slice(0, Math.floor(random() * 30));
    case 2:
      return nested(1 + Math.floor(random() * 20_000));
    case 3:
      return JSON.stringify({ action: pick(random, values), topic: pick(random, values), ref: pick(random, values) });
    case 4:
      return JSON.stringify({ action: 'subscribe', topic: `a${pick(random, junk)}b`, ref: 'x' });
    case 5:
      return JSON.stringify({ action: 'subscribe', topic: `t${Math.floor(random() * 1e6)}`, lastEventId: '9'.repeat(Math.floor(random() * 50_000)) });
    case 6:
      return JSON.stringify({ action: 'subscribe', topic: 'ok', lastEventId: pick(random, values) });
    case 7:
      return 'x'.repeat(60_000 + Math.floor(random() * 20_000)); // around maxPayload (64 KiB)
    case 8:
      return JSON.stringify({ action: 'unsubscribe', topic: pick(random, [...junk, 'never-subscribed']) });
    case 9:
      // Fields that would forge a frame if they were echoed as they came.
      return JSON.stringify({
        action: pick(random, ['subscribe', 'EVIL\n', 'EVIL"}']),
        topic: 'ok',
        lastEventId: pick(random, forged),
        ref: pick(random, [1, 'r"\n', `EVIL${'x'.repeat(70)}`]),
      });
    default:
      return Buffer.from(JSON.stringify({ action: 'ping', ref: randomBytes(random, 16).toString('latin1') }));
  }
}

describe(`fuzzing the WebSocket endpoint (seed ${SEED})`, () => {
  let t: TestApp;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    t = await startApp({ heartbeatInterval: 200, history: { maxCount: 100_000 }, ws: { commandsPerSecond: 1_000 } });
  });
  after(async () => {
    await t.close();
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
  });

  it('survives hostile frames and raw garbage: errors by the contract, good clients lose nothing, memory returns', async () => {
    const random = prng(SEED);
    const port = Number(new URL(t.url).port);
    const baselineHeap = settledHeap();
    const good = await Promise.all([1, 2, 3].map(() => WsClient.open(`${t.wsUrl}/ws?topic=ok`)));
    await Promise.all(good.map((c) => c.waitForEvents('pushlet:connected')));

    let published = 0;
    let running = true;
    const publisher = (async () => {
      while (running) {
        await t.pushlet.publish('ok', 'message', `${published++}\r\n\0`);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();

    const closeCodes = new Map<number, number>();
    const errors = new Set<string>();
    const deadline = Date.now() + DURATION_MS;
    let frames = 0;
    let framesChecked = 0;
    try {
      while (Date.now() < deadline) {
        const hostile = await WsClient.open(`${t.wsUrl}/ws`);
        for (let i = 0; i < 20 && !hostile.closed; i++) {
          hostile.send(hostileFrame(random), random() < 0.5);
          frames += 1;
        }
        // A ping with a ref proves the connection still answers after the junk (unless it was closed).
        if (!hostile.closed && random() < 0.7) {
          try {
            await hostile.call({ action: 'ping', ref: 'still-there' }, 5_000);
          } catch {
            // closed by 1008/1009: recorded below
          }
        }
        for (const e of hostile.events('pushlet:error')) errors.add(String(e.data).slice(0, 60));
        if (random() < 0.5) hostile.close();
        else hostile.socket.close();
        const closed = await hostile.waitForClose(5_000);
        closeCodes.set(closed.code, (closeCodes.get(closed.code) ?? 0) + 1);
        // Every frame a hostile client got: JSON, known events, valid ids, nothing of its own sent back raw or forged.
        assertCleanWsFrames(hostile.frames, ['message'], { echoed: ['EVIL', 'forged', 'injected'] });
        framesChecked += hostile.frames.length;
        // Raw TCP: a half-written upgrade, or an upgrade followed by a truncated frame, then a cut.
        const upgrade = `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
        const partialFrame = Buffer.from([0x81, 0xfe, 0x10, 0x00, 1, 2, 3, 4, 5]);
        await rawExchange(port, Buffer.concat([Buffer.from(upgrade.slice(0, Math.floor(random() * upgrade.length)))]), true, 500);
        await rawExchange(port, Buffer.concat([Buffer.from(upgrade), partialFrame]), true, 500);
      }
    } finally {
      // Stops the publisher even when an assertion above fails, so that the run ends.
      running = false;
      await publisher;
    }

    // 1007: a text frame that is not UTF-8 breaks RFC 6455 itself, and `ws` closes it as the RFC says.
    for (const code of closeCodes.keys()) assert.ok([1000, 1005, 1006, 1007, 1008, 1009].includes(code), `close code ${code}`);
    assert.ok(frames > 100, `only ${frames} frames`);
    assert.ok(framesChecked > 100, `only ${framesChecked} frames came back to check`);
    assert.ok(errors.size > 3, `expected several kinds of pushlet:error, got ${[...errors].join(' | ')}`);

    for (const client of good) {
      const messages = await client.waitForMessages(published, 10_000);
      assert.deepEqual(
        messages.map((m) => Number(String(m.data).split('\r')[0])),
        Array.from({ length: published }, (_, i) => i),
      );
      assert.equal(client.closed, undefined);
      assertCleanWsFrames(client.frames, ['message']);
    }
    assert.deepEqual(unhandled, []);

    for (const client of good) client.close();
    await until(() => t.pushlet.stats().connections.total === 0 && t.pushlet.stats().topics === 0, 5_000, 'every connection released');
    const grownBy = settledHeap() - baselineHeap;
    assert.ok(grownBy < 16 * 1024 * 1024, `heap grew by ${(grownBy / 1024 / 1024).toFixed(1)} MiB`);
  });
});
