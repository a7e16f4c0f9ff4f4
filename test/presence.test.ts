import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { firstValueFrom, take, toArray } from 'rxjs';
import { PushletUnavailableError, PushletValidationError, type PresenceData } from '../src/index.js';
import { PushletHub } from '../src/pushlet.hub.js';
import { startApp, type TestApp } from './support/app.js';
import { PresenceClient, presenceOptions } from './support/presence.js';
import { eventually, until, within } from './support/wait.js';

const ROOM = 'room/lobby';

describe('presence in memory (one instance)', () => {
  const apps: TestApp[] = [];
  const clients: PresenceClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const app of apps.splice(0)) await app.close();
  });

  async function app(options = {}): Promise<TestApp> {
    const t = await startApp({ heartbeatInterval: 60_000, ...presenceOptions(), ...options });
    apps.push(t);
    return t;
  }
  async function open(t: TestApp, transport: 'sse' | 'ws', user: string, topic = ROOM): Promise<PresenceClient> {
    const client = await PresenceClient.open(t, transport, topic, user);
    clients.push(client);
    return client;
  }

  it('sends each join and leave once to every subscriber, SSE and WebSocket, and presence() lists the members', async () => {
    const t = await app();
    const watchers = [await open(t, 'sse', 'w-sse'), await open(t, 'ws', 'w-ws')];
    const members = [await open(t, 'sse', 'm-sse'), await open(t, 'ws', 'm-ws')];
    // The members' joins reach every watcher (and each member its own).
    for (const watcher of watchers) {
      await watcher.waitUntil(() => watcher.joins('m-sse') >= 1 && watcher.joins('m-ws') >= 1, 5_000, 'both joins');
    }
    for (const member of members) await member.waitUntil(() => member.joins(member.user) >= 1, 5_000, 'its own join');

    const data = await t.pushlet.presence(ROOM);
    assert.equal(data.count, 4);
    assert.deepEqual(users(data), ['m-sse', 'm-ws', 'w-sse', 'w-ws']);
    const ws = data.members.find((m) => m.identity?.id === 'm-ws')!;
    assert.equal(ws.transport, 'ws');
    assert.match(ws.clientId, /^[0-9a-f-]{36}$/);
    assert.ok(Date.parse(ws.since) <= Date.now());
    assert.equal(await t.pushlet.presenceCount(ROOM), 4);

    // The WebSocket command answers the same.
    const reply = await watchers[1]!.socket.call({ action: 'presence', topic: ROOM, ref: 'p1' });
    assert.equal(reply.event, 'pushlet:presence');
    assert.equal(reply.topic, ROOM);
    assert.deepEqual(users(JSON.parse(String(reply.data)) as PresenceData), ['m-sse', 'm-ws', 'w-sse', 'w-ws']);

    // A WebSocket member unsubscribes; the SSE member disconnects.
    await members[1]!.socket.call({ action: 'unsubscribe', topic: ROOM, ref: 'u1' });
    members[0]!.close();
    for (const watcher of watchers) {
      await watcher.waitUntil(() => watcher.leaves('m-sse') >= 1 && watcher.leaves('m-ws') >= 1, 5_000, 'both leaves');
    }
    // Everything sent before this message has arrived when it does: no duplicate can still come.
    await t.pushlet.publish(ROOM, 'marker', 'end');
    for (const watcher of watchers) {
      await watcher.waitUntil(() => watcher.messages('marker').length === 1, 5_000, 'the marker');
      for (const user of ['m-sse', 'm-ws']) {
        assert.equal(watcher.joins(user), 1, `${watcher.describe()}: joins of ${user}`);
        assert.equal(watcher.leaves(user), 1, `${watcher.describe()}: leaves of ${user}`);
      }
      // Joins come before leaves, and the watchers' own join came before the members'.
      assert.deepEqual(
        watcher.presence.filter((p) => p.member.identity?.id.startsWith('m-')).map((p) => p.event),
        ['pushlet:join', 'pushlet:join', 'pushlet:leave', 'pushlet:leave'],
      );
    }
    assert.deepEqual(users(await t.pushlet.presence(ROOM)), ['w-sse', 'w-ws']);
    assert.equal(await t.pushlet.presenceCount(ROOM), 2);
    // Nothing of the members that left is kept.
    const manager = t.app.get(PushletHub).presenceManager!;
    assert.equal(manager.localCount, 2);
    for (const watcher of watchers) watcher.close();
    await until(() => manager.localCount === 0, 5_000, 'every membership released');
    // The store is told at the end of the turn (removals are batched): await it, bounded.
    let count = -1;
    await eventually(async () => (count = await t.pushlet.presenceCount(ROOM)) === 0, 5_000, 'the store to drop the members');
    assert.equal(count, 0);
  });

  it('counts anonymous connections as members with identity null; server-side consumers are not members', async () => {
    const t = await app();
    const consumer = firstValueFrom(t.pushlet.subscribe(ROOM).pipe(take(2), toArray()));
    const watcher = await open(t, 'ws', 'w');
    const anonymous = await PresenceClient.open(t, 'sse', ROOM, '');
    clients.push(anonymous);
    await watcher.waitUntil(() => watcher.presence.some((p) => p.member.identity === null), 5_000, 'the anonymous join');
    const data = await t.pushlet.presence(ROOM);
    assert.equal(data.count, 2);
    assert.equal(data.members.filter((m) => m.identity === null).length, 1);
    // The server-side consumer saw both joins as messages of the topic.
    const seen = await within(consumer, 5_000, 'the consumer');
    assert.deepEqual(
      seen.map((m) => m.event),
      ['pushlet:join', 'pushlet:join'],
    );
  });

  it('refuses presence of a topic that is not a presence topic, and of patterns, with a clear error', async () => {
    const t = await app();
    await assert.rejects(t.pushlet.presence('news'), (error: unknown) => error instanceof PushletValidationError && /not a presence topic/.test(error.message));
    await assert.rejects(t.pushlet.presenceCount('news'), PushletValidationError);
    await assert.rejects(t.pushlet.presence('room/*'), PushletValidationError);
    await assert.rejects(t.pushlet.presence(''), PushletValidationError);
    await assert.rejects(t.pushlet.presence(42 as unknown as string), PushletValidationError);
    const client = await open(t, 'ws', 'w', 'news');
    const reply = await client.socket.call({ action: 'presence', topic: 'news', ref: 'n' });
    assert.equal(reply.event, 'pushlet:error');
    assert.equal(reply.topic, 'news');
    assert.match(String(reply.data), /not a presence topic/);
    const bad = await client.socket.call({ action: 'presence', topic: 'a b', ref: 'b' });
    assert.equal(bad.event, 'pushlet:error');
    // The connection is still fine, and subscribers of other topics get no joins.
    const pong = await client.socket.call({ action: 'ping', ref: 'p' });
    assert.equal(pong.event, 'pushlet:pong');
    assert.equal(client.presence.length, 0);
  });

  it('answers the WebSocket presence command only for topics the connection may subscribe to', async () => {
    const t = await app({ authorize: ({ topic }: { topic: string }) => topic !== 'room/secret' });
    const client = await open(t, 'ws', 'w');
    const reply = await client.socket.call({ action: 'presence', topic: 'room/secret', ref: 's' });
    assert.equal(reply.event, 'pushlet:error');
    assert.match(String(reply.data), /not allowed/);
  });

  it('without the presence option, presence() is refused for every topic', async () => {
    const t = await startApp({ heartbeatInterval: 60_000 });
    apps.push(t);
    await assert.rejects(t.pushlet.presence(ROOM), PushletValidationError);
    assert.ok(!(PushletUnavailableError.prototype instanceof PushletValidationError));
  });

  it('joins a topic subscribed by command once, however often it is subscribed, and leaves it on unsubscribe', async () => {
    const t = await app();
    const watcher = await open(t, 'sse', 'w');
    const member = await open(t, 'ws', 'm', 'news');
    for (const ref of ['s1', 's2']) {
      const reply = await member.socket.call({ action: 'subscribe', topic: ROOM, ref });
      assert.equal(reply.event, 'pushlet:subscribed');
    }
    await watcher.waitUntil(() => watcher.joins('m') === 1, 5_000, 'the join');
    await member.socket.call({ action: 'unsubscribe', topic: ROOM, ref: 'u' });
    await watcher.waitUntil(() => watcher.leaves('m') === 1, 5_000, 'the leave');
    await t.pushlet.publish(ROOM, 'marker', 'end');
    await watcher.waitUntil(() => watcher.messages('marker').length === 1, 5_000, 'the marker');
    assert.deepEqual(
      watcher.presence.map((p) => `${p.event} ${p.member.identity?.id}`),
      ['pushlet:join w', 'pushlet:join m', 'pushlet:leave m'],
    );
    assert.equal(await t.pushlet.presenceCount(ROOM), 1);
  });
});

function users(data: PresenceData): string[] {
  return data.members.map((m) => m.identity?.id ?? '(anonymous)').sort();
}
