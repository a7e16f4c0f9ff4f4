import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBroker } from '../src/index.js';
import type { SseEvent } from './support/sse-client.js';
import { perTestApps } from './support/app.js';

describe('resume over SSE (docs/protocol.md, Resume: no message lost)', () => {
  const { app, open } = perTestApps();

  it('replays every missed message in order, once, before live ones, with a publisher running during the reconnect', async () => {
    const t = await app();
    const first = await open(t, '/events?topic=feed');
    await first.waitForEvents(1);
    let published = 0;
    let running = true;
    const publisher = (async () => {
      while (running) {
        await t.pushlet.publish('feed', 'message', String(published++));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await first.waitForEvents(20, 5_000, 'message');
    first.close();
    const lastSeen = first.lastEventId;
    const seenBefore = first.messages.map((m) => Number(m.data));
    // Reconnect while the publisher keeps going.
    const second = await open(t, '/events?topic=feed', { 'last-event-id': lastSeen });
    await second.waitForEvents(50, 5_000, 'message');
    running = false;
    await publisher;
    const total = published;
    await second.waitForEvent((e) => e.data === String(total - 1), 5_000, 'the last message');
    const seenAfter = second.messages.map((m) => Number(m.data));
    const all = [...seenBefore, ...seenAfter];
    assert.deepEqual(
      all,
      Array.from({ length: total }, (_, i) => i),
      'every message once, in order',
    );
    assert.equal(second.events.filter((e) => e.event === 'pushlet:reset').length, 0);
  });

  it('resumes every topic of a multi-topic connection from the one id it hands back, broadcasts included', async () => {
    const t = await app();
    const client = await open(t, '/events?topic=a&topic=b');
    await client.waitForEvents(1);
    await t.pushlet.publish('a', 'message', 'a1');
    await client.waitForEvents(1, 5_000, 'message');
    client.close();
    await t.pushlet.publish('b', 'message', 'b1');
    await t.pushlet.publishToAll('message', 'all1');
    await t.pushlet.publish('c', 'message', 'c1');
    await t.pushlet.publish('a', 'message', 'a2');
    const resumed = await open(t, '/events?topic=a&topic=b', { 'last-event-id': client.lastEventId });
    const messages = await resumed.waitForEvents(3, 5_000, 'message');
    assert.deepEqual(
      messages.map((m) => m.data),
      ['b1', 'all1', 'a2'],
    );
  });

  it('accepts the id as a lastEventId query parameter', async () => {
    const t = await app();
    const one = await t.pushlet.publish('q', 'message', 'one');
    await t.pushlet.publish('q', 'message', 'two');
    const client = await open(t, `/events?topic=q&lastEventId=${one.id}`);
    const [message] = await client.waitForEvents(1, 5_000, 'message');
    assert.equal(message!.data, 'two');
  });

  it('a connection that drops before its first message resumes from the id of pushlet:connected', async () => {
    const t = await app();
    const client = await open(t, '/events?topic=quiet');
    const [connected] = await client.waitForEvents(1);
    assert.ok(connected!.id, 'pushlet:connected carries a resume id');
    client.close();
    await t.pushlet.publish('quiet', 'message', 'missed');
    const again = await open(t, '/events?topic=quiet', { 'last-event-id': client.lastEventId });
    const [message] = await again.waitForEvents(1, 5_000, 'message');
    assert.equal(message!.data, 'missed');
    assert.equal(again.events.filter((e) => e.event === 'pushlet:reset').length, 0);
  });

  for (const [name, id] of [
    ['an unknown id', '1-0'],
    ['a malformed id', 'not-an-id'],
    ['a huge id', '9'.repeat(10_000)],
    ['an id from the future', `${Date.now() + 86_400_000}-0`],
  ] as const) {
    it(`answers ${name} with pushlet:reset before live messages, never a silent gap`, async () => {
      const t = await app();
      const client = await open(t, '/events?topic=r', { 'last-event-id': id.length > 100 ? id.slice(0, 8000) : id });
      await client.waitForEvents(1, 5_000, 'pushlet:reset');
      await t.pushlet.publish('r', 'message', 'live');
      await client.waitForEvents(1, 5_000, 'message');
      const order = client.events.map((e: SseEvent) => e.event);
      assert.deepEqual(order, ['pushlet:connected', 'pushlet:reset', 'message']);
      const reset = JSON.parse(client.events[1]!.data);
      assert.deepEqual(reset.topics, ['r']);
      assert.equal(typeof reset.reason, 'string');
    });
  }

  it('answers an id older than the history window (by count) with pushlet:reset, then live messages from now', async () => {
    const t = await app({ history: { maxCount: 5 } });
    const first = await t.pushlet.publish('w', 'message', '0');
    for (let i = 1; i < 10; i++) await t.pushlet.publish('w', 'message', String(i));
    const client = await open(t, '/events?topic=w', { 'last-event-id': first.id });
    await client.waitForEvents(1, 5_000, 'pushlet:reset');
    await t.pushlet.publish('w', 'message', 'live');
    const messages = await client.waitForEvents(1, 5_000, 'message');
    assert.deepEqual(
      messages.map((m) => m.data),
      ['live'],
    );
    const [connected, reset] = client.events;
    assert.deepEqual([connected!.event, reset!.event], ['pushlet:connected', 'pushlet:reset']);
    // The connected id is the new start: resuming from it is exact.
    assert.notEqual(connected!.id, first.id);
  });

  it('answers an id older than the history window (by age) with pushlet:reset', async () => {
    const t = await app({ history: { maxAgeMs: 1 } });
    const old = await t.pushlet.publish('aged', 'message', 'old');
    await t.pushlet.publish('aged', 'message', 'newer');
    // Wait for the clock to pass the 1 ms window.
    const start = Date.now();
    while (Date.now() - start < 5) await new Promise((resolve) => setImmediate(resolve));
    const client = await open(t, '/events?topic=aged', { 'last-event-id': old.id });
    await client.waitForEvents(1, 5_000, 'pushlet:reset');
  });

  it('keeps history memory bounded however many topics come and go', () => {
    const broker = new MemoryBroker({ maxCount: 10, maxAgeMs: 60_000, maxTopics: 100 });
    for (let i = 0; i < 10_000; i++) broker.record(`topic/${i}`, 'message', 'x');
    assert.equal(broker.historyTopics, 100);
  });

  it('says reset when a topic whose history was dropped (maxTopics) is resumed from before the drop', async () => {
    const t = await app({ history: { maxTopics: 2 } });
    const first = await t.pushlet.publish('t1', 'message', 'one');
    await t.pushlet.publish('t1', 'message', 'two');
    await t.pushlet.publish('t2', 'message', 'x');
    await t.pushlet.publish('t3', 'message', 'y');
    const client = await open(t, '/events?topic=t1', { 'last-event-id': first.id });
    await client.waitForEvents(1, 5_000, 'pushlet:reset');
  });
});
