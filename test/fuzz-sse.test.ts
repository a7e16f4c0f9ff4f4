import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SseClient } from './support/sse-client.js';
import { startApp, type TestApp } from './support/app.js';
import { EventStreamParser, type StreamEvent } from './support/chaos/event-stream.js';
import { pick, prng, randomBytes, rawExchange, settledHeap } from './support/fuzz.js';
import { RawSseStream } from './support/raw-sse.js';
import { until } from './support/wait.js';
import { assertCleanEventStream } from './support/wire-checks.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const DURATION_MS = Number(process.env.FUZZ_MS ?? 3_000);

/** What a broken client or an attacker sends to the SSE endpoint. */
function hostileRequest(random: () => number): Buffer {
  const topicJunk = ['%0D%0A', '%00', 'a%0Aevent:%20forged', '*', '#', 'pushlet:x', '%20', 'x'.repeat(300), '%FF%FE', '', encodeURIComponent('\u2028')];
  const forgedIds = [
    'x%0Aevent:%20forged%0Adata:%20injected%0A%0A',
    'x%0D%0Aevent:%20forged%0D%0Adata:%20injected%0D%0A%0D%0A',
    'x%0Devent:%20forged%0Ddata:%20injected%0D%0D',
    '1-0%0Aid:%20forged%0A',
    '%00forged',
  ];
  const kind = Math.floor(random() * 8);
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
    case 6:
      // An id that would forge an SSE frame if it were written back as it came.
      return Buffer.from(`GET /events?topic=ok&lastEventId=${pick(random, forgedIds)} HTTP/1.1\r\nHost: x\r\nLast-Event-ID: forged event: forged\r\n\r\n`);
    default:
      return Buffer.from(`POST /events?topic=ok HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'{'.repeat(5000)}`);
  }
}

/**
 * The event stream in a raw HTTP/1.1 reply (possibly cut short), read as a browser would: the
 * chunked body is unframed, decoded as UTF-8 and fed to the WHATWG parser.
 */
function streamOf(reply: string): { events: StreamEvent[]; text: string } | undefined {
  const headerEnd = reply.indexOf('\r\n\r\n');
  if (headerEnd < 0 || !/^HTTP\/1\.1 200 /.test(reply) || !/\r\ncontent-type: text\/event-stream/i.test(reply.slice(0, headerEnd))) return undefined;
  const chunked = /\r\ntransfer-encoding: chunked/i.test(reply.slice(0, headerEnd));
  let body = Buffer.from(reply.slice(headerEnd + 4), 'latin1');
  if (chunked) {
    const parts: Buffer[] = [];
    let at = 0;
    while (at < body.length) {
      const lineEnd = body.indexOf('\r\n', at, 'latin1');
      if (lineEnd < 0) break;
      const size = parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
      assert.ok(Number.isInteger(size), `bad chunk size line ${JSON.stringify(body.subarray(at, lineEnd).toString('latin1'))}`);
      if (size === 0) break;
      parts.push(body.subarray(lineEnd + 2, Math.min(body.length, lineEnd + 2 + size)));
      at = lineEnd + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  const events: StreamEvent[] = [];
  const text = body.toString('utf8');
  new EventStreamParser((event) => events.push(event)).feed(text);
  return { events, text };
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
    // One more good client read with the WHATWG parser, raw text kept.
    const browser = await RawSseStream.open(t.url, '/events?topic=ok&topic=other');
    await browser.waitForNamed('pushlet:connected');

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
    let streamsChecked = 0;
    try {
      while (Date.now() < deadline) {
        const batch = Array.from({ length: 8 }, () => rawExchange(port, hostileRequest(random), random() < 0.3, 1_000));
        for (const reply of await Promise.all(batch)) {
          const status = /^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 'none';
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if (status === '400' && reply.includes('application/json')) {
            const body = reply.slice(reply.indexOf('\r\n\r\n') + 4);
            assert.equal(JSON.parse(body).statusCode, 400);
          }
          // Every event stream, however it was asked for: only the module's events and the
          // publisher's, valid ids only, and nothing forged.
          const stream = streamOf(reply);
          if (stream) {
            streamsChecked += 1;
            assertCleanEventStream(stream.events, stream.text, ['message'], ['forged', 'injected']);
          }
        }
        attempts += batch.length;
      }
    } finally {
      // Stops the publisher even when an assertion above fails, so that the run ends.
      running = false;
      await publisher;
    }

    // Only the contract's answers (or Node's own parser errors) came back; nothing was a 5xx.
    for (const status of statuses.keys()) {
      assert.ok(['200', '400', '404', '413', '431', 'none'].includes(status), `unexpected status ${status}: ${JSON.stringify([...statuses])}`);
    }
    assert.ok(attempts > 50, `only ${attempts} attempts`);
    assert.ok(streamsChecked > 5, `only ${streamsChecked} event streams came back to check`);

    for (const client of good) {
      const messages = await client.waitForEvents(published, 10_000, 'message');
      assert.deepEqual(
        messages.map((m) => Number(m.data.split('\n')[0])),
        Array.from({ length: published }, (_, i) => i),
      );
      assert.equal(messages[0]!.data, '0\nwith\0nul and\ncr');
    }
    await browser.waitForNamed('message', published, 10_000);
    assert.deepEqual(
      browser.named('message').map((m) => Number(m.data!.split('\n')[0])),
      Array.from({ length: published }, (_, i) => i),
    );
    assertCleanEventStream(browser.events, browser.raw, ['message']);
    assert.deepEqual(unhandled, []);

    for (const client of good) client.close();
    browser.close();
    await until(() => t.pushlet.stats().connections.total === 0 && t.pushlet.stats().topics === 0, 5_000, 'every connection released');
    const grownBy = settledHeap() - baselineHeap;
    // The history of "ok" (a few thousand small messages) is the only thing meant to stay.
    assert.ok(grownBy < 16 * 1024 * 1024, `heap grew by ${(grownBy / 1024 / 1024).toFixed(1)} MiB`);
  });
});
