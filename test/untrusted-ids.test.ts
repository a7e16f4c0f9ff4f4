import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PushletMessage } from '../src/index.js';
import { formatCursor, parsePosition, parseResumeId, topicHash } from '../src/protocol/ids.js';
import type { TestApp } from './support/app.js';
import { perTestConnections } from './support/connections.js';
import { PerTopicMemoryBroker } from './support/per-topic-broker.js';
import { assertCleanEventStream, assertCleanWsFrames, isValidWireId } from './support/wire-checks.js';

/**
 * Issue 10: every id a client sends is checked against the grammar and the 256-character bound
 * first, and every kind of bad id gets the one documented behaviour: `pushlet:reset` (no id),
 * then live messages from now, never history; the `pushlet:connected` id is a fresh valid id that
 * resumes exactly. Checked on all four ways an id comes in.
 */

/** A topic's history as the bad ids are made from it: h0..h5 published with maxCount 3, so h0..h2 are evicted. */
interface Seeded {
  readonly topic: string;
  readonly evicted: PushletMessage;
  readonly kept: PushletMessage;
  readonly newest: PushletMessage;
}

const HISTORY = { maxCount: 3 };

async function seed(t: TestApp, topic: string): Promise<Seeded> {
  const sent: PushletMessage[] = [];
  for (let i = 0; i < 6; i++) sent.push(await t.pushlet.publish(topic, 'message', `h${i}`));
  return { topic, evicted: sent[0]!, kept: sent[4]!, newest: sent[5]! };
}

/**
 * A cursor that follows the grammar in every respect but its length: `n` characters (`n` >= 20).
 * Its hashes are distinct two-character ones, its numbers zero.
 */
export function cursorOfLength(n: number): string {
  let out = 'c1_0';
  for (let i = 0; n - out.length > 15; i++) out += `.${(1_000 + i).toString(36)}_0_0`;
  return `${out}.zz_0_${'0'.repeat(n - out.length - 6)}`;
}

const position = (message: PushletMessage) => parsePosition(message.id)!;

/** Every kind of bad id, made from the topic's real history where that matters. */
const BAD_IDS: ReadonlyArray<readonly [string, (s: Seeded) => string]> = [
  ['malformed', () => 'not-an-id'],
  ['malformed numbers', () => '1-2-3'],
  ['a sign in front', () => '-1-0'],
  ['a decimal point', () => '1.5-0'],
  ['16 digits of milliseconds', () => '1234567890123456-0'],
  ['non-ASCII digits', () => '\uff11-0'],
  ['a kept id with a forged SSE field after it', (s) => `${s.kept.id}\nevent: forged\ndata: injected\n\n`],
  ['a kept id with NUL', (s) => `${s.kept.id}\u0000`],
  ['too long (300 digits)', () => '9'.repeat(300)],
  ['too long (a well-formed cursor of 257 characters)', () => cursorOfLength(257)],
  ['from the future (a day ahead)', () => `${Date.now() + 86_400_000}-0`],
  ['from the future (an unseen sequence)', (s) => `${position(s.newest).ms}-${position(s.newest).seq + 1_000}`],
  ['too old (evicted from the history)', (s) => s.evicted.id],
  ['from before the server started', () => '0-0'],
  ['a cluster cursor for this topic', (s) => formatCursor([[topicHash(s.topic), position(s.kept)]])],
  [
    'a cluster cursor of several topics',
    (s) =>
      formatCursor([
        [topicHash(s.topic), position(s.kept)],
        [topicHash('*'), position(s.kept)],
      ]),
  ],
];

/** What may be checked for absence in the output: anything long enough not to turn up by chance (in an id or timestamp). */
const distinctive = (id: string) => (id.length >= 6 ? [id] : []);

/** Header values Node's client can send as given (no CR, LF, NUL; no whitespace at either end, which HTTP trims). */
const headerSafe = (id: string) => /^[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?$/.test(id);

describe('ids from clients: one behaviour for every bad id (issue 10)', () => {
  const { app, sse, ws } = perTestConnections();

  for (const [kind, make] of BAD_IDS) {
    it(`${kind}: reset without id, live from now, and a connected id that resumes exactly, on all four inputs`, async () => {
      const t = await app({ history: HISTORY });

      // SSE, as the Last-Event-ID header and as ?lastEventId=.
      for (const via of ['header', 'query'] as const) {
        const s = await seed(t, `sse-${via}`);
        const id = make(s);
        if (via === 'header' && !headerSafe(id)) continue;
        const path = via === 'header' ? `/events?topic=${s.topic}` : `/events?topic=${s.topic}&lastEventId=${encodeURIComponent(id)}`;
        const stream = await sse(t, path, via === 'header' ? { 'Last-Event-ID': id } : {});
        assert.equal(stream.status, 200);
        await stream.waitForNamed('pushlet:reset');
        await t.pushlet.publish(s.topic, 'message', 'live');
        await stream.waitForNamed('message');
        assert.deepEqual(
          stream.dispatched.map((e) => e.event),
          ['pushlet:connected', 'pushlet:reset', 'message'],
          `${via}: connected, reset, then the live message only`,
        );
        const [connected, reset, live] = stream.dispatched;
        assert.equal(live!.data, 'live', `${via}: no history after a bad id`);
        assert.deepEqual(JSON.parse(reset!.data!).topics, [s.topic]);
        assert.equal(typeof JSON.parse(reset!.data!).reason, 'string');
        assert.equal(reset!.id, undefined);
        assert.ok(isValidWireId(connected!.id), `${via}: connected id ${connected!.id}`);
        assert.deepEqual(JSON.parse(connected!.data!).reset, JSON.parse(reset!.data!), `${via}: pushlet:connected names the reset with its new id`);
        assertCleanEventStream(stream.events, stream.raw, ['message'], [...distinctive(id), 'forged', 'injected']);
        stream.close();

        await t.pushlet.publish(s.topic, 'message', 'missed');
        const resumed = await sse(t, `/events?topic=${s.topic}`, { 'Last-Event-ID': connected!.id! });
        await resumed.waitForNamed('message', 2);
        assert.deepEqual(
          resumed.dispatched.map((e) => (e.event === 'message' ? e.data : e.event)),
          ['pushlet:connected', 'live', 'missed'],
          `${via}: resuming from the connected id is exact`,
        );
      }

      // WebSocket, as ?lastEventId= on the URL.
      {
        const s = await seed(t, 'ws-url');
        const id = make(s);
        const client = await ws(t, `/ws?topic=${s.topic}&lastEventId=${encodeURIComponent(id)}`);
        await client.waitForEvents('pushlet:reset');
        await t.pushlet.publish(s.topic, 'message', 'live');
        await client.waitForMessages(1);
        assert.deepEqual(
          client.received.map((f) => f.event),
          ['pushlet:connected', 'pushlet:reset', 'message'],
        );
        const [connected, reset, live] = client.received;
        assert.equal(live!.data, 'live');
        assert.ok(!('id' in reset!));
        assert.deepEqual(JSON.parse(String(reset!.data)).topics, [s.topic]);
        assert.ok(isValidWireId(connected!.id));
        assert.deepEqual(JSON.parse(String(connected!.data)).reset, JSON.parse(String(reset!.data)), 'pushlet:connected names the reset with its new id');
        assertCleanWsFrames(client.frames, ['message'], { echoed: distinctive(id) });
        client.close();

        await t.pushlet.publish(s.topic, 'message', 'missed');
        const resumed = await ws(t, `/ws?topic=${s.topic}&lastEventId=${encodeURIComponent(String(connected!.id))}`);
        await resumed.waitForMessages(2);
        assert.deepEqual(
          resumed.messages.map((m) => m.data),
          ['live', 'missed'],
        );
        assert.equal(resumed.events('pushlet:reset').length, 0);
      }

      // WebSocket, as the lastEventId field of subscribe.
      {
        const s = await seed(t, 'ws-command');
        const id = make(s);
        const client = await ws(t, '/ws');
        await client.waitForEvents('pushlet:connected');
        client.send({ action: 'subscribe', topic: s.topic, lastEventId: id, ref: 'resume' });
        const subscribed = await client.waitFor((f) => f.event === 'pushlet:subscribed', 5_000, 'subscribed');
        assert.equal(subscribed.ref, 'resume');
        await t.pushlet.publish(s.topic, 'message', 'live');
        const [live] = await client.waitForMessages(1);
        assert.deepEqual(
          client.received.map((f) => f.event),
          ['pushlet:connected', 'pushlet:reset', 'pushlet:subscribed', 'message'],
        );
        const reset = client.events('pushlet:reset')[0]!;
        assert.equal(reset.ref, 'resume');
        assert.ok(!('id' in reset));
        assert.deepEqual(JSON.parse(String(reset.data)).topics, [s.topic]);
        assert.equal(live!.data, 'live');
        assertCleanWsFrames(client.frames, ['message'], { echoed: distinctive(id) });
        client.close();

        await t.pushlet.publish(s.topic, 'message', 'missed');
        const resumed = await ws(t, '/ws');
        await resumed.call({ action: 'subscribe', topic: s.topic, lastEventId: String(live!.id), ref: 'again' });
        await resumed.waitForMessages(1);
        assert.deepEqual(
          resumed.messages.map((m) => m.data),
          ['missed'],
        );
        assert.equal(resumed.events('pushlet:reset').length, 0);
      }
    });
  }

  it('the 256-character bound is exact: a well-formed cursor of 256 characters passes the grammar, 257 does not', () => {
    assert.equal(cursorOfLength(256).length, 256);
    assert.equal(parseResumeId(cursorOfLength(256))?.kind, 'cursor');
    assert.equal(cursorOfLength(257).length, 257);
    assert.equal(parseResumeId(cursorOfLength(257)), undefined);
  });

  it('a good id resumes without a reset on all four inputs (the tests above can tell a reset from none)', async () => {
    const t = await app({ history: HISTORY });
    const s = await seed(t, 'good');
    const header = await sse(t, `/events?topic=good`, { 'Last-Event-ID': s.kept.id });
    const query = await sse(t, `/events?topic=good&lastEventId=${s.kept.id}`);
    const url = await ws(t, `/ws?topic=good&lastEventId=${s.kept.id}`);
    const command = await ws(t, '/ws');
    await command.call({ action: 'subscribe', topic: 'good', lastEventId: s.kept.id, ref: 1 });
    for (const stream of [header, query]) {
      const [message] = await stream.waitForNamed('message');
      assert.equal(message!.data, 'h5');
      assert.equal(stream.named('pushlet:reset').length, 0);
      assert.equal(JSON.parse(stream.named('pushlet:connected')[0]!.data!).reset, undefined, 'no reset named in pushlet:connected');
    }
    for (const client of [url, command]) {
      const [message] = await client.waitForMessages(1);
      assert.equal(message!.data, 'h5');
      assert.equal(client.events('pushlet:reset').length, 0);
    }
  });

  it('with ids ordered per topic, a cursor handed out resumes exactly (the grammar accepts every id written)', async () => {
    const t = await app({ broker: new PerTopicMemoryBroker() });
    const stream = await sse(t, '/events?topic=a&topic=b');
    const [connected] = await stream.waitForNamed('pushlet:connected');
    assert.equal(parseResumeId(connected!.id)?.kind, 'cursor');
    await t.pushlet.publish('a', 'message', 'seen');
    const [seen] = await stream.waitForNamed('message');
    stream.close();
    await t.pushlet.publish('b', 'message', 'missed');
    const resumed = await sse(t, '/events?topic=a&topic=b', { 'Last-Event-ID': seen!.id! });
    const [missed] = await resumed.waitForNamed('message');
    assert.equal(missed!.data, 'missed');
    assert.equal(resumed.named('pushlet:reset').length, 0);
    assertCleanEventStream(resumed.events, resumed.raw, ['message']);
  });

  it('with ids ordered per topic, topics whose hashes collide do not spoil the id: the other topics resume exactly', async () => {
    const [a, b] = ['x48mez2bl', 'xkstbafef'];
    assert.equal(topicHash(a), topicHash(b));
    const t = await app({ broker: new PerTopicMemoryBroker() });
    const path = `/events?topic=${a}&topic=${b}&topic=other`;
    const stream = await sse(t, path);
    const [connected] = await stream.waitForNamed('pushlet:connected');
    assert.ok(isValidWireId(connected!.id), `the connected id ${connected!.id} passes the grammar`);
    stream.close();
    await t.pushlet.publish('other', 'message', 'missed');
    const resumed = await sse(t, path, { 'Last-Event-ID': connected!.id! });
    await resumed.waitForNamed('message');
    const reset = resumed.named('pushlet:reset')[0];
    assert.deepEqual(reset ? JSON.parse(reset.data!).topics : [], [a, b], 'only the two ambiguous topics are reset');
    assert.equal(resumed.named('message')[0]?.data, 'missed');
  });
});
