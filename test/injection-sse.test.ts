import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TestApp } from './support/app.js';
import { perTestConnections } from './support/connections.js';
import type { RawSseStream } from './support/raw-sse.js';
import { assertCleanEventStream, isValidWireId } from './support/wire-checks.js';

/**
 * Issue 10, SSE: nothing a request carries reaches the event stream without encoding. Each field
 * a client controls gets its own test; every stream is read with the WHATWG parser and checked
 * for foreign event types, bad ids and the raw attack text.
 */

/** The only event type the tests publish. */
const OWN = 'news';

/** Topics that are valid, however odd: they are echoed only inside JSON (`pushlet:connected`). */
const ODD_TOPICS = [
  'a"b',
  'a\\b',
  '"}],"x":"y',
  "a'b<script>",
  'event:forged',
  'data:injected',
  'id:evil',
  'caf\u00e9/\u65e5\u672c/\u{1f600}',
  '%0A',
  'a:b;c=d&e',
  '\\u000a',
];

/** Topics that break the contract, percent-encoded as they go on the URL. */
const BAD_TOPICS: ReadonlyArray<readonly [string, string]> = [
  ['LF', 'a%0Aevent:%20forged%0Adata:%20injected%0A%0A'],
  ['CR', 'a%0Devent:%20forged'],
  ['CRLF', 'a%0D%0Aid:%20evil'],
  ['NUL', 'a%00b'],
  ['space', 'a%20b'],
  ['U+2028', 'a%E2%80%A8b'],
  ['NEL', 'a%C2%85b'],
  ['the reserved prefix', 'pushlet:connected'],
  ['a malformed pattern', 'a%2Fb*'],
  ['201 characters', 'x'.repeat(201)],
  ['empty', ''],
];

async function deliverOwn(t: TestApp, stream: RawSseStream, topic: string, data: string): Promise<void> {
  await t.pushlet.publish(topic, OWN, data);
  await stream.waitForNamed(OWN);
}

describe('SSE: nothing from a request reaches the stream raw (issue 10)', () => {
  const { app, sse } = perTestConnections();

  it('topic values with quotes, backslashes, unicode and field names are echoed only as JSON strings', async () => {
    const t = await app();
    for (const topic of ODD_TOPICS) {
      const stream = await sse(t, `/events?topic=${encodeURIComponent(topic)}&topic=plain`);
      assert.equal(stream.status, 200, topic);
      const [connected] = await stream.waitForNamed('pushlet:connected');
      assert.deepEqual(JSON.parse(connected!.data!).topics, [topic, 'plain']);
      await deliverOwn(t, stream, topic, 'payload');
      assert.deepEqual(
        stream.dispatched.map((e) => e.event),
        ['pushlet:connected', OWN],
      );
      assertCleanEventStream(stream.events, stream.raw, [OWN]);
      stream.close();
    }
  });

  for (const [name, encoded] of BAD_TOPICS) {
    it(`a topic with ${name} is a 400 with a JSON body before any stream`, async () => {
      const t = await app();
      const stream = await sse(t, `/events?topic=ok&topic=${encoded}`);
      await stream.waitForEnd();
      assert.equal(stream.status, 400);
      assert.match(String(stream.headers['content-type']), /^application\/json/);
      const body = JSON.parse(stream.raw) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body).sort(), ['message', 'statusCode']);
      assert.equal(body.statusCode, 400);
      assert.equal(typeof body.message, 'string');
      assert.doesNotMatch(stream.raw, /[\r\n\0]/);
      assert.doesNotMatch(stream.raw, /event:|forged|injected|evil/);
      assert.equal(stream.events.length, 0);
      assert.equal(t.pushlet.stats().connections.sse, 0);
    });
  }

  it('a refused topic is a 403 whose JSON body names it encoded, without breaking out', async () => {
    const t = await app({ authorize: ({ topic }) => !topic.startsWith('deny') });
    for (const topic of ['deny"},"statusCode":200,"x":"', 'deny\\"}', 'deny</script>\u00a7', 'deny\u{1f600}"']) {
      const stream = await sse(t, `/events?topic=${encodeURIComponent(topic)}`);
      await stream.waitForEnd();
      assert.equal(stream.status, 403, topic);
      assert.match(String(stream.headers['content-type']), /^application\/json/);
      const body = JSON.parse(stream.raw) as Record<string, unknown>;
      assert.deepEqual(body, { statusCode: 403, message: `not allowed to subscribe to "${topic}"` });
      assert.equal(stream.events.length, 0);
    }
  });

  it('?lastEventId= with encoded CR, LF, NUL and a forged frame gets a reset, and no forged event', async () => {
    const t = await app();
    const attacks = [
      'x%0Aevent:%20forged%0Adata:%20injected%0A%0A',
      'x%0D%0Aevent:%20forged%0D%0Adata:%20injected%0D%0A%0D%0A',
      'x%0Devent:%20forged%0Ddata:%20injected%0D%0D',
      '1-0%0Aid:%20evil%0A',
      '%00evil',
      '1-0%00',
      '%22%7D%5D%2C%22evil%22%3A%22',
      encodeURIComponent('\u2028evil\u2029'),
    ];
    for (const attack of attacks) {
      const decoded = decodeURIComponent(attack);
      const stream = await sse(t, `/events?topic=q&lastEventId=${attack}`);
      assert.equal(stream.status, 200);
      await stream.waitForNamed('pushlet:reset');
      await deliverOwn(t, stream, 'q', 'after');
      assert.deepEqual(
        stream.dispatched.map((e) => e.event),
        ['pushlet:connected', 'pushlet:reset', OWN],
        attack,
      );
      assertCleanEventStream(stream.events, stream.raw, [OWN], [decoded, 'forged', 'injected', 'evil']);
      stream.close();
    }
  });

  it('a 5,000-character Last-Event-ID header is refused by its length and never written back', async () => {
    const t = await app();
    for (const value of ['9'.repeat(5_000), `1-${'0'.repeat(4_998)}`, `c1_0${'.a_0_0'.repeat(833)}`, 'event: forged '.repeat(357)]) {
      const stream = await sse(t, '/events?topic=h', { 'Last-Event-ID': value.trim() });
      await stream.waitForNamed('pushlet:reset');
      await deliverOwn(t, stream, 'h', 'after');
      assertCleanEventStream(stream.events, stream.raw, [OWN], [value.slice(0, 300), 'forged']);
      for (const event of stream.events) assert.ok((event.id ?? '').length <= 256);
      stream.close();
    }
  });

  it('a Last-Event-ID header of odd printable and Latin-1 characters gets a reset and is never written back', async () => {
    const t = await app();
    const values = [`"'<>\\{}[]$%&;:`, 'id: evil data: injected', '1-0 event: forged', '\u00e9\u00ff\u0080\u0085evil', '1\t-\t0', 'c1_zz.evil_0_0'];
    for (const value of values) {
      const stream = await sse(t, '/events?topic=h', { 'Last-Event-ID': value });
      await stream.waitForNamed('pushlet:reset');
      await deliverOwn(t, stream, 'h', 'after');
      assert.deepEqual(
        stream.dispatched.map((e) => e.event),
        ['pushlet:connected', 'pushlet:reset', OWN],
      );
      assertCleanEventStream(stream.events, stream.raw, [OWN], [value, 'evil', 'forged', 'injected']);
      stream.close();
    }
  });

  it('every id on a stream is one the server made, within the grammar and 256 characters', async () => {
    const t = await app();
    const stream = await sse(t, '/events?topic=a&topic=b', { 'Last-Event-ID': 'bogus' });
    await stream.waitForNamed('pushlet:reset');
    for (let i = 0; i < 5; i++) await t.pushlet.publish(i % 2 ? 'a' : 'b', OWN, `line one\nid: evil\r\nevent: forged\r${i}`);
    await t.pushlet.publishToAll(OWN, 'to all');
    await stream.waitForNamed(OWN, 6);
    const ids = stream.events.flatMap((e) => (e.id === undefined ? [] : [e.id]));
    assert.equal(ids.length, 7, 'connected and the six messages carry ids');
    for (const id of ids) assert.ok(isValidWireId(id), id);
    assert.equal(stream.named(OWN)[0]!.data, 'line one\nid: evil\nevent: forged\n0');
    assertCleanEventStream(stream.events, stream.raw, [OWN]);
  });
});
