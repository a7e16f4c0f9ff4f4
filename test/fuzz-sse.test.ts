import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SseClient } from './support/sse-client.js';
import { startApp, type TestApp } from './support/app.js';
import { pick, prng, randomBytes, rawExchange, settledHeap } from './support/fuzz.js';
import { until } from './support/wait.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const DURATION_MS = Number(process.env.FUZZ_MS ?? 3_000);

/** What a broken client or an attacker sends to the SSE endpoint. */
function hostileRequest(random: () => number): Buffer {
  const topicJunk = [
    '%0D%0A',
    '%00',
    'a%0Aevent:%20forged',
    '*',
    '#',
    'pushlet:x',
    '%20',
    'x'.repeat(300),
    '%FF%FE',
    '',
    encodeURIComponent('\u2028'),
  ];
  const kind = Math.floor(random() * 7);
  switch (kind) {
    case 0:
      return randomBytes(random, 1 + Math.floor(random() * 2048));
    case 1: {
      const topics = Array.from({ length: 1 + Math.floor(random() * 900) }, () => `topic=${pick(random, topicJunk)}`).join('&');
      return Buffer.from(`GET /events?${topics} HTTP/1.1\r\nHost: x\r\n\r\n`);
    }
    case 2:
      return Buffer.from(`GET /events?topic=ok HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ${'9'.repeat(1 + Math.floor(random() * 15_000))}\r\n\r\n`);
    case 3:
      return Buffer.from(`GET /events?topic=ok&lastEventId=${encodeURIComponent(randomBytes(random, 64).toString('latin1'))} HTTP/1.1\r\nHost: x\r\n\r\n`);
    case 4: {
      // A truncated request line or header block.
      const full = Buffer.from('GET /events?topic=ok HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1-0\r\n\r\n');
      return full.subarray(0, Math.floor(random() * full.length));
    }
    case 5:
      return Buffer.from(`GET /events?topic=${pick(random, topicJunk)} HTTP/1.1\r\nHost: x\r\nLast-Event-ID: a\u0000b\r\n\r\n`, 'latin1');
    default:
      return Buffer.from(`POST /events?topic=ok HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'{'.repeat(5000)}`);
  }
}

describe(`fuzzing the SSE endpoint (seed ${SEED})`, () => {
  let t: TestApp;
  let port: number;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    t = await startApp({ heartbeatInterval: 100, history: { maxCount: 100_000 } });
    port = Number(new URL(t.url).port);
  });
  after(async () => {
    await t.close();
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
  });

  it('survives hostile input: no crash, contract errors only, well-behaved clients lose nothing, memory returns', async () => {
    const random = prng(SEED);
    const baselineHeap = settledHeap();
    const good = await Promise.all([1, 2, 3].map(() => SseClient.open(`${t.url}/events?topic=ok&topic=other`)));
    await Promise.all(good.map((c) => c.waitForEvents(1)));

    let published = 0;
    let running = true;
    const publisher = (async () => {
      while (running) {
        await t.pushlet.publish('ok', 'message', `${published++}\r\nwith\0nul and\rcr`);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();

    const statuses = new Map<string, number>();
    const deadline = Date.now() + DURATION_MS;
    let attempts = 0;
    while (Date.now() < deadline) {
      const batch = Array.from({ length: 8 }, () => rawExchange(port, hostileRequest(random), random() < 0.3, 1_000));
      for (const reply of await Promise.all(batch)) {
        const status = /^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 'none';
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === '400' && reply.includes('application/json')) {
          const body = reply.slice(reply.indexOf('\r\n\r\n') + 4);
          assert.equal(JSON.parse(body).statusCode, 400);
        }
      }
      attempts += batch.length;
    }
    running = false;
    await publisher;

    // Only the contract's answers (or Node's own parser errors) came back; nothing was a 5xx.
    for (const status of statuses.keys()) {
      assert.ok(['200', '400', '404', '413', '431', 'none'].includes(status), `unexpected status ${status}: ${JSON.stringify([...statuses])}`);
    }
    assert.ok(attempts > 50, `only ${attempts} attempts`);

    for (const client of good) {
      const messages = await client.waitForEvents(published, 10_000, 'message');
      assert.deepEqual(
        messages.map((m) => Number(m.data.split('\n')[0])),
        Array.from({ length: published }, (_, i) => i),
      );
      assert.equal(messages[0]!.data, '0\nwith\0nul and\ncr');
    }
    assert.deepEqual(unhandled, []);

    for (const client of good) client.close();
    await until(() => t.pushlet.stats().connections.total === 0 && t.pushlet.stats().topics === 0, 5_000, 'every connection released');
    const grownBy = settledHeap() - baselineHeap;
    // The history of "ok" (a few thousand small messages) is the only thing meant to stay.
    assert.ok(grownBy < 16 * 1024 * 1024, `heap grew by ${(grownBy / 1024 / 1024).toFixed(1)} MiB`);
  });
});
