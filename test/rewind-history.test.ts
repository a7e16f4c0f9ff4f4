import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { PushletUnsupportedError, type PushletModuleOptions } from '../src/index.js';
import { comparePositions, formatCursor, formatPosition, MAX_SEQ, parseResumeId, positionBefore } from '../src/protocol/ids.js';
import { request, startApp, type TestApp } from './support/app.js';
import { FIXTURES, type Backend } from './support/conformance/brokers.js';
import { SseClient, type SseEvent } from './support/sse-client.js';
import { PerTopicMemoryBroker } from './support/per-topic-broker.js';
import { within } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

/**
 * Rewind and history (docs/protocol.md, "Rewind" and "History") over real SSE and WebSocket
 * connections, on every broker: in memory, one Redis server and a Redis Cluster (real
 * redis-server processes started by the fixtures). Message data are numbers, so that what a
 * client received can be counted against what was published.
 */

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** The numbers carried by `messages` (their data), in arrival order. */
function numbers(messages: ReadonlyArray<{ data?: unknown }>): number[] {
  return messages.map((m) => Number(m.data));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

for (const fixture of FIXTURES) {
  describe(`rewind and history: ${fixture.name}`, () => {
    let backend: Backend;
    const apps: TestApp[] = [];
    const sse: SseClient[] = [];
    const ws: WsClient[] = [];

    before(async () => {
      backend = await fixture.setUp();
    });
    afterEach(async () => {
      for (const client of sse.splice(0)) client.close();
      for (const client of ws.splice(0)) client.close();
      for (const t of apps.splice(0)) await t.close();
    });
    after(async () => {
      await backend?.tearDown();
    });

    async function app(options: PushletModuleOptions = {}, history?: { maxCount?: number }): Promise<TestApp> {
      const t = await startApp({ heartbeatInterval: 60_000, ...backend.pushletOptions(history), ...options });
      apps.push(t);
      return t;
    }

    async function openSse(t: TestApp, path: string, headers?: Record<string, string>): Promise<SseClient> {
      const client = await SseClient.open(t.url + path, headers);
      sse.push(client);
      return client;
    }

    async function openWs(t: TestApp, path = '/ws'): Promise<WsClient> {
      const client = await WsClient.open(t.wsUrl + path);
      ws.push(client);
      return client;
    }

    async function publish(t: TestApp, topic: string, from: number, to: number): Promise<void> {
      for (let n = from; n <= to; n++) await t.pushlet.publish(topic, 'n', String(n));
    }

    it('SSE ?rewind=N: the last N messages first, in order, with their ids, then live ones; a rewind larger than history gives all of it', async () => {
      const t = await app();
      const [topic, other] = await backend.topics(2);
      await publish(t, topic!, 1, 6);
      const client = await openSse(t, `/events?topic=${topic}&rewind=3`);
      await client.waitForEvents(4);
      assert.equal(client.events[0]!.event, 'pushlet:connected');
      await t.pushlet.publish(topic!, 'n', '7');
      await client.waitFor(() => client.messages.length >= 4, 5_000, 'the live message');
      assert.deepEqual(numbers(client.messages), [4, 5, 6, 7]);
      assert.ok(
        client.messages.every((m) => typeof m.id === 'string' && m.id.length > 0),
        'every rewound message has its id',
      );
      assert.equal(new Set(client.messages.map((m) => m.id)).size, 4);
      assert.equal(client.events.filter((e) => e.event === 'pushlet:reset').length, 0, 'no reset');

      // More than history holds: all of it, then live.
      const all = await openSse(t, `/events?topic=${topic}&topic=${other}&rewind=100`);
      await all.waitFor(() => all.messages.length >= 7, 5_000, 'the whole history');
      await t.pushlet.publish(other!, 'n', '100');
      await all.waitFor(() => all.messages.length >= 8, 5_000, 'the live message');
      assert.deepEqual(numbers(all.messages), [...range(1, 7), 100]);
    });

    it('SSE: a resume id wins over rewind; a bad rewind is a 400 before any stream', async () => {
      const t = await app();
      const [topic] = await backend.topics(1);
      const first = await openSse(t, `/events?topic=${topic}`);
      await first.waitForEvents(1, 5_000, 'pushlet:connected');
      await publish(t, topic!, 1, 3);
      await first.waitFor(() => first.messages.length >= 3, 5_000, 'three messages');
      const lastId = first.lastEventId;
      first.close();
      await publish(t, topic!, 4, 5);
      const resumed = await openSse(t, `/events?topic=${topic}&rewind=10`, { 'Last-Event-ID': lastId });
      await resumed.waitFor(() => resumed.messages.length >= 2, 5_000, 'the missed messages');
      await t.pushlet.publish(topic!, 'n', '6');
      await resumed.waitFor(() => resumed.messages.length >= 3, 5_000, 'the live message');
      assert.deepEqual(numbers(resumed.messages), [4, 5, 6], 'the missed messages only, not a rewind');

      for (const bad of ['-1', 'x', '1.5', '2&rewind=3']) {
        const answer = await request(`${t.url}/events?topic=${topic}&rewind=${bad}`);
        assert.equal(answer.status, 400, `rewind=${bad}`);
        const body = JSON.parse(answer.body) as { statusCode: number; message: string };
        assert.equal(body.statusCode, 400);
        assert.match(body.message, /rewind must be a whole number/);
      }
    });

    it('rewind is capped by limits.maxRewind', async () => {
      const t = await app({ limits: { maxRewind: 2 } });
      const [topic] = await backend.topics(1);
      await publish(t, topic!, 1, 5);
      const client = await openSse(t, `/events?topic=${topic}&rewind=50`);
      await client.waitFor(() => client.messages.length >= 2, 5_000, 'two messages');
      await t.pushlet.publish(topic!, 'n', '6');
      await client.waitFor(() => client.messages.length >= 3, 5_000, 'the live message');
      assert.deepEqual(numbers(client.messages), [4, 5, 6]);
    });

    it('WebSocket subscribe with "rewind": the latest messages before pushlet:subscribed, then live; ?rewind= on the URL too', async () => {
      const t = await app();
      const [a, b] = await backend.topics(2);
      await publish(t, a!, 1, 4);
      await publish(t, b!, 11, 12);
      const client = await openWs(t);
      await client.waitForEvents('pushlet:connected');
      const reply = await client.call({ action: 'subscribe', topics: [a, b], rewind: 1, ref: 's' });
      assert.equal(reply.event, 'pushlet:subscribed');
      const before = client.messages.length;
      assert.deepEqual(
        numbers(client.messages).sort((x, y) => x - y),
        [4, 12],
        'the latest value of each topic, before the reply',
      );
      assert.equal(before, 2);
      await t.pushlet.publish(a!, 'n', '5');
      await client.waitForMessages(3);
      assert.deepEqual(numbers(client.messages).slice(2), [5]);

      const byUrl = await openWs(t, `/ws?topic=${a}&rewind=2`);
      await byUrl.waitForMessages(2);
      assert.deepEqual(numbers(byUrl.messages), [4, 5]);
      assert.equal(byUrl.received[0]!.event, 'pushlet:connected');

      const bad = await openWs(t);
      const refused = await bad.call({ action: 'subscribe', topic: a, rewind: -2, ref: 'bad' });
      assert.equal(refused.event, 'pushlet:error');
      assert.match(String(refused.data), /rewind must be a whole number/);
    });

    it('WebSocket history: pages oldest first, before an id, across the whole history with no gap or duplicate', async () => {
      const t = await app();
      const [topic, empty] = await backend.topics(2);
      await publish(t, topic!, 1, 10);
      const client = await openWs(t);
      await client.waitForEvents('pushlet:connected');

      const none = await client.call({ action: 'history', topic: empty, limit: 5, ref: 'e' });
      assert.equal(none.event, 'pushlet:history');
      assert.deepEqual(JSON.parse(String(none.data)), { topic: empty, messages: [] });

      const newest = await client.call({ action: 'history', topic, limit: 4, ref: 1 });
      assert.equal(newest.event, 'pushlet:history');
      assert.equal(newest.topic, topic);
      const page = JSON.parse(String(newest.data)) as { topic: string; messages: Array<Record<string, string>> };
      assert.equal(page.topic, topic);
      assert.deepEqual(numbers(page.messages), [7, 8, 9, 10]);
      for (const message of page.messages) {
        assert.deepEqual(Object.keys(message), ['id', 'topic', 'event', 'data', 'timestamp']);
        assert.equal(message.topic, topic);
        assert.equal(message.event, 'n');
        assert.ok(!Number.isNaN(Date.parse(message.timestamp!)));
      }
      const previous = await client.call({ action: 'history', topic, limit: 4, before: page.messages[0]!.id, ref: 2 });
      assert.deepEqual(numbers((JSON.parse(String(previous.data)) as { messages: Array<{ data: string }> }).messages), [3, 4, 5, 6]);

      // Pages of 3 back to the start: every message once.
      const seen: number[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 10; i++) {
        const answer = await client.call({ action: 'history', topic, limit: 3, ...(cursor && { before: cursor }), ref: `p${i}` });
        const messages = (JSON.parse(String(answer.data)) as { messages: Array<{ id: string; data: string }> }).messages;
        if (messages.length === 0) break;
        seen.unshift(...numbers(messages));
        cursor = messages[0]!.id;
      }
      assert.deepEqual(seen, range(1, 10));

      // Without a limit: limits.maxHistoryPage (100), here the whole history.
      const whole = await client.call({ action: 'history', topic, ref: 'all' });
      assert.deepEqual(numbers((JSON.parse(String(whole.data)) as { messages: Array<{ data: string }> }).messages), range(1, 10));
    });

    it('WebSocket history: refused where the client may not subscribe, for patterns, bad limits and bad ids (never echoed)', async () => {
      const t = await app({
        authorize: ({ topic }) => !topic.startsWith('secret'),
        limits: { maxHistoryPage: 5 },
      });
      const [topic] = await backend.topics(1);
      await t.pushlet.publish('secret/1', 'n', 'hidden');
      await publish(t, topic!, 1, 2);
      const client = await openWs(t);
      await client.waitForEvents('pushlet:connected');

      const refused = await client.call({ action: 'history', topic: 'secret/1', ref: 'x' });
      assert.equal(refused.event, 'pushlet:error');
      assert.equal(refused.topic, 'secret/1');
      assert.match(String(refused.data), /not allowed/);
      assert.ok(!client.frames.some((frame) => frame.text.includes('hidden')), 'nothing of the refused topic');

      const pattern = await client.call({ action: 'history', topic: 'orders/*', ref: 'p' });
      assert.equal(pattern.event, 'pushlet:error');
      assert.match(String(pattern.data), /pattern/);

      const tooMany = await client.call({ action: 'history', topic, limit: 6, ref: 'l' });
      assert.equal(tooMany.event, 'pushlet:error');
      assert.match(String(tooMany.data), /limit must be a whole number from 1 to 5/);
      for (const limit of [0, -1, 1.5, '3']) {
        const answer = await client.call({ action: 'history', topic, limit, ref: `l${String(limit)}` });
        assert.equal(answer.event, 'pushlet:error', `limit ${String(limit)}`);
      }

      const evil = '<script>alert(1)</script>';
      for (const [i, before] of [evil, 'c1_zz.nothere_0_0', 42].entries()) {
        const answer = await client.call({ action: 'history', topic, before, ref: `b${i}` });
        assert.equal(answer.event, 'pushlet:error', `before ${String(before)}`);
      }
      assert.ok(!client.frames.some((frame) => frame.text.includes(evil)), 'a bad id is never echoed');

      // The connection is still served.
      const ok = await client.call({ action: 'history', topic, limit: 5, ref: 'ok' });
      assert.equal(ok.event, 'pushlet:history');
    });

    it('PushletService.history: newest page, before an id, limit larger than history, an empty topic, after a trim', async () => {
      const t = await app({}, { maxCount: 5 });
      const [topic, empty] = await backend.topics(2);
      assert.deepEqual(await t.pushlet.history(empty!, { limit: 10 }), []);
      await publish(t, topic!, 1, 3);
      const three = await t.pushlet.history(topic!, { limit: 50 });
      assert.deepEqual(numbers(three), [1, 2, 3]);
      await publish(t, topic!, 4, 12);
      const kept = await t.pushlet.history(topic!, { limit: 50 });
      assert.deepEqual(numbers(kept), [8, 9, 10, 11, 12], 'what history.maxCount keeps');
      const page = await t.pushlet.history(topic!, { limit: 2, before: kept[2]!.id });
      assert.deepEqual(numbers(page), [8, 9]);
      assert.deepEqual(await t.pushlet.history(topic!, { limit: 2, before: kept[0]!.id }), []);
      await assert.rejects(t.pushlet.history(topic!, { limit: 0 }), { name: 'PushletValidationError' });
      await assert.rejects(t.pushlet.history('a/#'), { name: 'PushletValidationError' });
    });

    for (const transport of ['sse', 'ws'] as const) {
      it(`${transport}: a rewind, then a drop and a resume with the last id, while publishing: every message once, none missing (counted)`, async () => {
        const t = await app();
        const [topic] = await backend.topics(1);
        await publish(t, topic!, 1, 20);
        let published = 20;
        let running = true;
        const publisher = (async () => {
          while (running) {
            await t.pushlet.publish(topic!, 'n', String(++published));
            await nextTurn();
          }
        })();
        let firstSeen: number[];
        let lastId: string;
        if (transport === 'sse') {
          const first = await openSse(t, `/events?topic=${topic}&rewind=5`);
          await first.waitFor(() => first.messages.length >= 15, 10_000, '15 messages');
          first.close();
          firstSeen = numbers(first.messages);
          lastId = first.lastEventId;
        } else {
          const first = await openWs(t);
          await first.waitForEvents('pushlet:connected');
          first.send({ action: 'subscribe', topic, rewind: 5, ref: 1 });
          await first.waitForMessages(15, 10_000);
          first.close();
          firstSeen = numbers(first.messages);
          lastId = String(first.messages.at(-1)!.id);
        }
        const atDrop = published;
        // The rewind began with the 5 messages before the connection, at least 16..20.
        assert.ok(firstSeen[0]! >= 16 && firstSeen[0]! <= 16 + (atDrop - 20), `rewind started at ${firstSeen[0]}`);
        let second: { messages: () => ReadonlyArray<{ data?: unknown }>; resets: () => number; waitFor: (check: () => boolean, what: string) => Promise<void> };
        if (transport === 'sse') {
          const client = await openSse(t, `/events?topic=${topic}&rewind=5`, { 'Last-Event-ID': lastId });
          second = {
            messages: () => client.messages,
            resets: () => client.events.filter((e: SseEvent) => e.event === 'pushlet:reset').length,
            waitFor: (check, what) => client.waitFor(check, 10_000, what),
          };
        } else {
          const client = await openWs(t);
          await client.waitForEvents('pushlet:connected');
          client.send({ action: 'subscribe', topic, rewind: 5, lastEventId: lastId, ref: 2 });
          second = {
            messages: () => client.messages,
            resets: () => client.events('pushlet:reset').length,
            waitFor: async (check, what) => void (await client.waitFor(check, 10_000, what)),
          };
        }
        await second.waitFor(() => second.messages().length >= 10, '10 messages after the resume');
        running = false;
        await publisher;
        const total = published;
        await second.waitFor(() => Number(second.messages().at(-1)?.data) >= total, `message ${total}`);
        const all = [...firstSeen, ...numbers(second.messages())];
        assert.deepEqual(all, range(firstSeen[0]!, total), 'every message from the rewind on, once, in order');
        assert.equal(second.resets(), 0, 'the resume is exact');
      });
    }

    it('WebSocket: a rewind on a connection that already received messages, then a drop: the resume repeats nothing of its other topics and misses nothing', async () => {
      const t = await app();
      const [a, b] = await backend.topics(2);
      await publish(t, b!, 1, 5);
      const first = await openWs(t);
      await first.waitForEvents('pushlet:connected');
      await first.call({ action: 'subscribe', topic: a, ref: 'a' });
      await publish(t, a!, 101, 103);
      await first.waitForMessages(3);
      await first.call({ action: 'subscribe', topic: b, rewind: 3, ref: 'b' });
      // The rewound messages came before the reply; the client drops at once, keeping the last id it saw.
      const seen = first.messages;
      assert.deepEqual(numbers(seen), [101, 102, 103, 3, 4, 5]);
      const lastId = String(seen.at(-1)!.id);
      first.close();
      await publish(t, a!, 104, 104);
      await publish(t, b!, 6, 6);
      const second = await openWs(t);
      await second.waitForEvents('pushlet:connected');
      await second.call({ action: 'subscribe', topics: [a, b], lastEventId: lastId, ref: 'again' });
      await second.waitForMessages(2);
      assert.deepEqual(
        numbers(second.messages).sort((x, y) => x - y),
        [6, 104],
        `exactly what followed: ${JSON.stringify(second.messages)}`,
      );
      assert.equal(second.events('pushlet:reset').length, 0);
    });

    it('many rewinds and history reads at once (one turn): each gets its own count', async () => {
      const t = await app();
      const [topic] = await backend.topics(1);
      await publish(t, topic!, 1, 8);
      const counts = [1, 3, 5, 2, 8, 20];
      const clients = await Promise.all(counts.map((n) => openSse(t, `/events?topic=${topic}&rewind=${n}`)));
      const pages = await Promise.all([t.pushlet.history(topic!, { limit: 2 }), t.pushlet.history(topic!, { limit: 4 })]);
      await Promise.all(clients.map((client, i) => client.waitFor(() => client.messages.length >= Math.min(counts[i]!, 8), 5_000, `rewind ${counts[i]}`)));
      await t.pushlet.publish(topic!, 'n', '9');
      await Promise.all(clients.map((client, i) => client.waitFor(() => client.messages.length >= Math.min(counts[i]!, 8) + 1, 5_000, 'the live message')));
      clients.forEach((client, i) => assert.deepEqual(numbers(client.messages), range(9 - Math.min(counts[i]!, 8), 9), `rewind=${counts[i]}`));
      assert.deepEqual(numbers(pages[0]), [7, 8]);
      assert.deepEqual(numbers(pages[1]), [5, 6, 7, 8]);
    });

    it('the id of pushlet:connected after a rewind resumes exactly: the rewound messages again, then what followed', async () => {
      const t = await app();
      const [topic] = await backend.topics(1);
      await publish(t, topic!, 1, 6);
      const first = await openSse(t, `/events?topic=${topic}&rewind=3`);
      const [connected] = await first.waitForEvents(1, 5_000, 'pushlet:connected');
      await first.waitFor(() => first.messages.length >= 3, 5_000, 'the rewind');
      first.close();
      await publish(t, topic!, 7, 8);
      const resumed = await openSse(t, `/events?topic=${topic}`, { 'Last-Event-ID': connected!.id! });
      await resumed.waitFor(() => resumed.messages.length >= 5, 5_000, 'the replay');
      assert.deepEqual(numbers(resumed.messages), [4, 5, 6, 7, 8]);
      assert.equal(resumed.events.filter((e) => e.event === 'pushlet:reset').length, 0);
    });

    it('PushletService.stream and subscribe take rewind', async () => {
      const t = await app();
      const [topic] = await backend.topics(1);
      await publish(t, topic!, 1, 4);
      const got: number[] = [];
      let wake: () => void = () => undefined;
      const subscription = t.pushlet.subscribe(topic!, { rewind: 2 }).subscribe((message) => {
        got.push(Number(message.data));
        wake();
      });
      const count = (n: number) =>
        within(
          new Promise<void>((resolve) => {
            wake = () => {
              if (got.length >= n) resolve();
            };
            wake();
          }),
          5_000,
          `${n} messages`,
        );
      try {
        await count(2);
        await t.pushlet.publish(topic!, 'n', '5');
        await count(3);
        assert.deepEqual(got, [3, 4, 5]);
      } finally {
        subscription.unsubscribe();
      }
      assert.throws(() => t.pushlet.stream(topic!, { rewind: -1 }), /rewind/);
    });
  });
}

describe('rewind and history: a broker without PushletBroker.tail, and the position before a message', () => {
  const apps: TestApp[] = [];
  const clients: WsClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const t of apps.splice(0)) await t.close();
  });

  it('rewind is ignored (the topic starts from now) and history is refused with a clear error', async () => {
    const t = await startApp({ heartbeatInterval: 60_000, broker: new PerTopicMemoryBroker() });
    apps.push(t);
    await t.pushlet.publish('t', 'n', '1');
    await assert.rejects(t.pushlet.history('t'), (error: unknown) => error instanceof PushletUnsupportedError && /tail/.test((error as Error).message));
    const client = await WsClient.open(`${t.wsUrl}/ws`);
    clients.push(client);
    await client.waitForEvents('pushlet:connected');
    const subscribed = await client.call({ action: 'subscribe', topic: 't', rewind: 5, ref: 1 });
    assert.equal(subscribed.event, 'pushlet:subscribed');
    await t.pushlet.publish('t', 'n', '2');
    await client.waitForMessages(1);
    assert.deepEqual(numbers(client.messages), [2], 'no rewind, live messages only');
    const refused = await client.call({ action: 'history', topic: 't', ref: 2 });
    assert.equal(refused.event, 'pushlet:error');
    assert.match(String(refused.data), /tail/);
  });

  it('positionBefore stays within the id grammar (plain ids and cursor entries) and sorts just before', () => {
    for (const position of [
      { ms: 1_795_709_338_389, seq: 0 },
      { ms: 1_795_709_338_389, seq: 7 },
    ]) {
      const before = positionBefore(position);
      assert.ok(comparePositions(before, position) < 0);
      assert.deepEqual(parseResumeId(formatPosition(before)), { kind: 'position', position: before });
      const cursor = parseResumeId(formatCursor([['abc', before]]));
      assert.equal(cursor?.kind, 'cursor');
      assert.deepEqual(cursor?.kind === 'cursor' && cursor.positions.get('abc'), before);
    }
    assert.deepEqual(positionBefore({ ms: 10, seq: 0 }), { ms: 9, seq: MAX_SEQ });
  });
});
