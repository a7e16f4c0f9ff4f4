import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROTOCOL_TEXTS } from '../src/protocol/texts.js';
import type { TestApp } from './support/app.js';
import { perTestConnections } from './support/connections.js';
import type { WsClient } from './support/ws-client.js';
import { assertCleanWsFrames } from './support/wire-checks.js';

/**
 * Issue 10, WebSocket: nothing a client sends comes back unencoded. Every frame is a JSON object;
 * `ref` comes back exactly as the JSON value sent (or is refused); topics come back only as JSON
 * strings; `lastEventId` never comes back at all. One test per field a client controls.
 */

const OWN = 'news';
const OPTIONS = { ws: { commandsPerSecond: 10_000 } };

/** Strings that JSON must escape, so their raw form can never be in a well-encoded frame. */
// eslint-disable-next-line no-control-regex -- control characters are what must be escaped
const needsEscaping = (value: string) => /["\\\u0000-\u001f]/.test(value);

/** Proves the connection still answers, and that every frame before the pong has arrived. */
async function roundTrip(client: WsClient, ref: string): Promise<void> {
  const pong = await client.call({ action: 'ping', ref });
  assert.equal(pong.event, 'pushlet:pong');
  assert.equal(client.closed, undefined);
}

/** The replies to one command (the frames whose `ref` is `ref`). */
const repliesTo = (client: WsClient, ref: string | number) => client.received.filter((f) => f.ref === ref);

async function publishAndExpectNothing(t: TestApp, client: WsClient, topic: string, ref: string): Promise<void> {
  await t.pushlet.publish(topic, OWN, 'should not arrive');
  await roundTrip(client, ref);
  assert.equal(client.messages.length, 0, `nothing of ${topic} is delivered`);
}

describe('WebSocket: nothing a client sends comes back raw (issue 10)', () => {
  const { app, ws } = perTestConnections();

  it('URL topics: odd valid ones are echoed as JSON strings; bad ones get an error naming them encoded', async () => {
    const t = await app(OPTIONS);
    const odd = ['a"b', 'a\\b', '"}],"event":"pushlet:connected', 'caf\u00e9/\u{1f600}', 'id:evil'];
    const bad = ['EVIL\nevent: forged', 'EVIL\r\n', 'EVIL\u0000', 'EVIL "x"', 'pushlet:EVIL', 'EVIL*'];
    const query = [...odd, ...bad].map((topic) => `topic=${encodeURIComponent(topic)}`).join('&');
    const client = await ws(t, `/ws?${query}`);
    const [connected] = await client.waitForEvents('pushlet:connected');
    assert.deepEqual(JSON.parse(String(connected!.data)).topics, odd);
    const errors = await client.waitForEvents('pushlet:error', bad.length);
    assert.deepEqual(
      errors.map((e) => e.topic),
      bad,
    );
    for (const error of errors) assert.ok(Object.values(PROTOCOL_TEXTS).includes(String(error.data) as never), String(error.data));
    for (const topic of odd) await t.pushlet.publish(topic, OWN, topic);
    const messages = await client.waitForMessages(odd.length);
    assert.deepEqual(
      messages.map((m) => m.topic),
      odd,
    );
    await roundTrip(client, 'end');
    assertCleanWsFrames(client.frames, [OWN], { raw: bad.filter(needsEscaping) });
  });

  it('URL lastEventId: a reset, never an echo', async () => {
    const t = await app(OPTIONS);
    for (const attack of ['EVIL\nevent: forged\ndata: injected\n\n', 'EVIL"},"id":"1-0', 'EVIL\u0000', '9'.repeat(5_000), `EVIL${'\u{1f600}'.repeat(100)}`]) {
      const client = await ws(t, `/ws?topic=q&lastEventId=${encodeURIComponent(attack)}`);
      const [reset] = await client.waitForEvents('pushlet:reset');
      assert.deepEqual(JSON.parse(String(reset!.data)).topics, ['q']);
      await roundTrip(client, 'end');
      assertCleanWsFrames(client.frames, [OWN], { echoed: [attack, 'EVIL'] });
      client.close();
    }
  });

  it('action: anything but the three actions gets a fixed error, with the ref, and is never echoed', async () => {
    const t = await app(OPTIONS);
    const client = await ws(t, '/ws');
    await client.waitForEvents('pushlet:connected');
    const actions: unknown[] = [
      'EVIL',
      'subscribe\nEVIL',
      'ping"},"event":"EVIL',
      'EVIL'.repeat(5_000),
      { EVIL: 'subscribe' },
      ['EVIL'],
      12345,
      true,
      'SUBSCRIBE',
      ' ping',
    ];
    for (const [i, action] of actions.entries()) {
      client.send({ action, topic: 'ok', ref: i });
      const reply = await client.waitFor((f) => f.ref === i, 5_000, `reply ${i}`);
      assert.deepEqual(reply, { event: 'pushlet:error', data: PROTOCOL_TEXTS.actionUnknown, timestamp: reply.timestamp, ref: i });
    }
    await publishAndExpectNothing(t, client, 'ok', 'end');
    assertCleanWsFrames(client.frames, [OWN], { echoed: ['EVIL', ' ping', 'SUBSCRIBE'] });
  });

  it('topic: a bad string is named back only JSON-encoded (and only up to 200 characters); other types never', async () => {
    const t = await app(OPTIONS);
    const client = await ws(t, '/ws');
    await client.waitForEvents('pushlet:connected');
    const strings = ['EVIL\nevent: forged', 'EVIL\r', 'EVIL\u0000', 'EVIL "quoted" \\', 'pushlet:EVIL', 'EVIL#', '', `${'x'.repeat(195)}EVIL `];
    for (const [i, topic] of strings.entries()) {
      const ref = `s${i}`;
      client.send({ action: 'subscribe', topic, ref });
      const reply = await client.waitFor((f) => f.ref === ref, 5_000, ref);
      assert.equal(reply.event, 'pushlet:error');
      assert.equal(reply.topic, topic, 'named back exactly, as a JSON string');
    }
    const unnamed: unknown[] = [`${'x'.repeat(197)}EVIL`, 42, { EVIL: 1 }, ['EVIL'], true];
    for (const [i, topic] of unnamed.entries()) {
      const ref = `u${i}`;
      client.send({ action: i % 2 ? 'subscribe' : 'unsubscribe', topic, ref });
      const reply = await client.waitFor((f) => f.ref === ref, 5_000, ref);
      assert.equal(reply.event, 'pushlet:error');
      assert.ok(!('topic' in reply), `no topic named for ${JSON.stringify(topic).slice(0, 40)}`);
    }
    await publishAndExpectNothing(t, client, 'EVIL', 'end');
    assertCleanWsFrames(client.frames, [OWN], { raw: strings.filter(needsEscaping) });
    for (const frame of client.frames) assert.ok(!frame.text.includes(`${'x'.repeat(197)}EVIL`), 'a long topic is never named');
  });

  it('topics: an array with any bad member is refused whole, nothing subscribed, members never echoed raw', async () => {
    const t = await app(OPTIONS);
    const client = await ws(t, '/ws');
    await client.waitForEvents('pushlet:connected');
    const arrays: unknown[] = [
      ['ok', 'EVIL\nevent: forged'],
      ['ok', 42],
      ['ok', ['EVIL']],
      ['ok', { EVIL: true }],
      ['ok', null],
      ['ok', 'EVIL "x"'],
      ['ok', 'pushlet:EVIL'],
      [],
      Array.from({ length: 1_001 }, (_, i) => `t${i}`),
      'ok',
      { 0: 'ok' },
    ];
    for (const [i, topics] of arrays.entries()) {
      client.send({ action: 'subscribe', topics, ref: i });
      const replies = await client.waitFor((f) => f.ref === i, 5_000, `reply ${i}`).then(() => repliesTo(client, i));
      assert.deepEqual(
        replies.map((r) => r.event),
        ['pushlet:error'],
        JSON.stringify(topics).slice(0, 60),
      );
      const named = replies[0]!.topic;
      assert.ok(named === undefined || (typeof named === 'string' && Array.isArray(topics) && topics.includes(named)), `named ${String(named)}`);
    }
    client.send({ action: 'subscribe', topic: 'ok', topics: ['ok'], ref: 'both' });
    const both = await client.waitFor((f) => f.ref === 'both', 5_000, 'both');
    assert.equal(both.data, PROTOCOL_TEXTS.topicAndTopics);
    await publishAndExpectNothing(t, client, 'ok', 'end');
    assertCleanWsFrames(client.frames, [OWN], { raw: ['EVIL\nevent: forged', 'EVIL "x"'] });
  });

  it('ref: strings up to 64 characters and finite numbers come back exactly; anything else is refused with an error', async () => {
    const t = await app(OPTIONS);
    const client = await ws(t, '/ws');
    await client.waitForEvents('pushlet:connected');
    const echoed: Array<string | number> = [
      'a"b',
      'line\nbreak\r\n',
      'nul\u0000',
      '"},"event":"pushlet:connected","id":"ECHO',
      '\\',
      '\u{1f600}\u00e9\u2028',
      'x'.repeat(64),
      '',
      0,
      -7,
      1.5,
      1e300,
      2 ** 53 + 2,
      123456789012,
    ];
    for (const ref of echoed) {
      client.send(`{"action":"ping","ref":${JSON.stringify(ref)}}`);
      const reply = await client.waitFor((f) => f.event === 'pushlet:pong' && f.ref === ref, 5_000, `pong ${JSON.stringify(ref)}`);
      assert.deepEqual(reply, { event: 'pushlet:pong', data: '', timestamp: reply.timestamp, ref });
    }
    const pongs = client.events('pushlet:pong').length;
    const refused = ['x'.repeat(65), `EVIL${'y'.repeat(100)}`, { EVIL: 1 }, ['EVIL'], true, false];
    for (const [i, ref] of refused.entries()) {
      client.send({ action: 'subscribe', topic: 'ok', ref });
      const error = (await client.waitForEvents('pushlet:error', i + 1))[i]!;
      assert.deepEqual(error, { event: 'pushlet:error', data: PROTOCOL_TEXTS.refType, timestamp: error.timestamp }, 'a refused ref is not echoed');
    }
    // A number JSON cannot hold as a finite value, sent as raw text.
    client.send('{"action":"ping","ref":1e400}');
    await client.waitForEvents('pushlet:error', refused.length + 1);
    // null counts as absent: a pong without ref.
    client.send('{"action":"ping","ref":null}');
    await client.waitForEvents('pushlet:pong', pongs + 1);
    assert.ok(!('ref' in client.events('pushlet:pong').at(-1)!));
    await publishAndExpectNothing(t, client, 'ok', 'end');
    assertCleanWsFrames(client.frames, [OWN], { echoed: ['x'.repeat(65), 'EVIL'] });
  });

  it('lastEventId: a string gets a reset and is never echoed; another type gets an error and is never echoed', async () => {
    const t = await app(OPTIONS);
    const client = await ws(t, '/ws');
    await client.waitForEvents('pushlet:connected');
    const strings = ['EVIL\nevent: forged\ndata: injected\n\n', 'EVIL"},"id":"1-0', `EVIL${'9'.repeat(5_000)}`, 'EVIL\u0000\u2028', `c1_0.EVIL_0_0`];
    for (const [i, lastEventId] of strings.entries()) {
      const topic = `s${i}`;
      client.send({ action: 'subscribe', topic, lastEventId, ref: topic });
      await client.waitFor((f) => f.event === 'pushlet:subscribed' && f.ref === topic, 5_000, `subscribed ${topic}`);
      assert.deepEqual(
        repliesTo(client, topic).map((f) => f.event),
        ['pushlet:reset', 'pushlet:subscribed'],
      );
    }
    const others: unknown[] = [42, { EVIL: 1 }, ['EVIL'], true];
    for (const [i, lastEventId] of others.entries()) {
      const ref = `o${i}`;
      client.send({ action: 'subscribe', topic: ref, lastEventId, ref });
      const reply = await client.waitFor((f) => f.ref === ref, 5_000, ref);
      assert.deepEqual(reply, { topic: ref, event: 'pushlet:error', data: PROTOCOL_TEXTS.lastEventIdType, timestamp: reply.timestamp, ref });
    }
    await publishAndExpectNothing(t, client, 'o0', 'end');
    await t.pushlet.publish('s0', OWN, 'live');
    await client.waitForMessages(1);
    assertCleanWsFrames(client.frames, [OWN], { echoed: ['EVIL', ...strings] });
  });
});
