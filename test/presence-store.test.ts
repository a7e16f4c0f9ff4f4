import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisKeys } from '../src/cluster/redis-keys.js';
import { RedisPresenceStore } from '../src/cluster/redis-presence.js';
import { PresenceManager } from '../src/core/presence-manager.js';
import { MemoryPresenceStore, type PresenceEntry, type PresenceStore } from '../src/index.js';
import { resolveOptions } from '../src/pushlet.options.js';
import type { PushletModuleOptions } from '../src/index.js';
import { RedisServer } from './support/redis.js';
import { eventually } from './support/wait.js';

const SILENT = { log: () => undefined, warn: () => undefined, error: () => undefined };

function entry(topic: string, i: number): PresenceEntry {
  return { topic, member: { clientId: `c${i}`, identity: { id: `u${i}` }, transport: 'ws', since: new Date(0).toISOString() } };
}

/** The same contract for every store: each add and remove happens once. */
async function addsAndRemovesOnce(store: PresenceStore): Promise<void> {
  assert.deepEqual(await store.add([entry('room/a', 1), entry('room/a', 2), entry('room/b', 1)]), [true, true, true]);
  assert.deepEqual(await store.add([entry('room/a', 1), entry('room/a', 3)]), [false, true]);
  assert.equal(await store.count('room/a'), 3);
  const { members } = await store.members('room/a');
  assert.deepEqual(members.map((m) => m.clientId).sort(), ['c1', 'c2', 'c3']);
  assert.deepEqual(
    members.find((m) => m.clientId === 'c2'),
    entry('room/a', 2).member,
  );
  assert.deepEqual(
    await store.remove([
      { topic: 'room/a', clientId: 'c1' },
      { topic: 'room/a', clientId: 'c1' },
      { topic: 'room/b', clientId: 'c9' },
    ]),
    [true, false, false],
  );
  assert.equal(await store.count('room/a'), 2);
  assert.equal(await store.count('room/none'), 0);
  assert.deepEqual(await store.members('room/none'), { count: 0, members: [] });
}

describe('presence stores', () => {
  let redis: RedisServer;
  let client: Redis;
  before(async () => {
    redis = await RedisServer.start();
    client = redis.client();
    await client.connect();
  });
  after(async () => {
    client.disconnect();
    await redis.stop();
  });
  const store = (prefix: string, ttlMs: number) => new RedisPresenceStore(client, new RedisKeys(prefix), false, ttlMs, (call) => call);

  it('in memory: adds and removes each member once', async () => {
    await addsAndRemovesOnce(new MemoryPresenceStore());
  });

  it('in Redis: adds and removes each member once', async () => {
    await addsAndRemovesOnce(store('once:', 60_000));
  });

  it('the manager sends the joins and leaves of one event-loop turn to Redis in one script call, and publishes each once', async () => {
    const presence = store('turn:', 60_000);
    const published: string[] = [];
    const manager = new PresenceManager(
      presence,
      { isPresenceTopic: (topic) => topic.startsWith('room/'), ttlMs: 60_000 },
      {
        publish: async (topic, event, data) => void published.push(`${event} ${topic} ${(JSON.parse(data) as { clientId: string }).clientId}`),
        servedTopics: () => [],
      },
      SILENT,
    );
    const evalCalls = async () =>
      Number(/cmdstat_evalsha:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0) +
      Number(/cmdstat_eval:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0);
    const clients = Array.from({ length: 100 }, (_, i) => ({ clientId: `k${i}`, identity: { id: `u${i}` }, transport: 'ws' as const, request: {} }));
    const before = await evalCalls();
    // One turn: 100 connections, each on two rooms and a topic without presence; one of them twice.
    for (const c of clients) manager.joined(c, ['room/x', 'room/y', 'news']);
    manager.joined(clients[0]!, ['room/x']);
    await manager.stop();
    assert.equal((await evalCalls()) - before, 1, 'one script call for the turn');
    assert.equal(published.length, 200);
    assert.equal(new Set(published).size, 200);
    assert.equal(manager.localCount, 200);
    // Server-side consumers (no request) are not members.
    manager.joined({ clientId: 'server', identity: null, transport: 'sse' }, ['room/x']);
    assert.equal(manager.localCount, 200);
    const middle = await evalCalls();
    for (const c of clients) manager.left(c, ['room/x', 'room/y', 'news']);
    for (const c of clients) manager.left(c, ['room/x']);
    await manager.stop();
    assert.equal((await evalCalls()) - middle, 1, 'one script call for the leaves');
    assert.equal(published.filter((p) => p.startsWith('pushlet:leave')).length, 200);
    assert.equal(manager.localCount, 0);
    assert.equal(await presence.count('room/x'), 0);
  });

  it('in Redis: a refresh names exactly the local members Redis lost, among more than one ZADD chunk', async () => {
    const presence = store('lost:', 60_000);
    const entries = Array.from({ length: 1_200 }, (_, i) => entry('room/big', i));
    await presence.add(entries);
    const ids = entries.map((e) => e.member.clientId);
    const local = new Map([['room/big', ids]]);
    assert.deepEqual(await presence.refresh(local, ['room/big']), { missing: [], expired: [] });
    const keys = new RedisKeys('lost:');
    await client.zrem(keys.presence('room/big'), 'c7', 'c700', 'c1199');
    const { missing, expired } = await presence.refresh(local, ['room/big']);
    assert.deepEqual(missing.map((m) => m.clientId).sort(), ['c1199', 'c7', 'c700']);
    assert.deepEqual(expired, []);
    // Refreshed members stay; the keys carry a lifetime.
    assert.equal(await presence.count('room/big'), 1_197);
    assert.ok((await client.pttl(keys.presence('room/big'))) > 0);
    assert.ok((await client.pttl(keys.presenceMembers('room/big'))) > 0);
  });

  it('in Redis: members not refreshed expire, are not counted, and exactly one of several sweeping instances gets each', async () => {
    // The first instance's members live 300 ms (it has "crashed": nothing refreshes them).
    const gone = store('sweep:', 300);
    const stays = store('sweep:', 60_000);
    await gone.add([entry('room/s', 1), entry('room/s', 2)]);
    await stays.add([entry('room/s', 3)]);
    assert.equal(await stays.count('room/s'), 3);
    await eventually(async () => (await stays.count('room/s')) === 1, 5_000, 'the unrefreshed members to expire', 50);
    assert.deepEqual(
      (await stays.members('room/s')).members.map((m) => m.clientId),
      ['c3'],
    );
    // Several sweepers at once: every expired member comes back from exactly one of them.
    const sweeps = await Promise.all([0, 1, 2, 3].map(() => stays.refresh(new Map([['room/s', ['c3']]]), ['room/s'])));
    const swept = sweeps.flatMap((s) => s.expired.map((e) => `${e.topic} ${e.member.clientId}`)).sort();
    assert.deepEqual(swept, ['room/s c1', 'room/s c2']);
    assert.deepEqual(await gone.remove([{ topic: 'room/s', clientId: 'c1' }]), [false], 'a swept member is not removed again');
    assert.equal(await client.hlen(new RedisKeys('sweep:').presenceMembers('room/s')), 1);
  });
});

describe('the presence option', () => {
  it('resolves a prefix list or a predicate, with the default time-to-live, and is off without it', () => {
    assert.equal(resolveOptions({}).presence, undefined);
    const prefixes = resolveOptions({ presence: { topics: ['room/', 'game/'] } }).presence!;
    assert.equal(prefixes.ttlMs, 15_000);
    assert.deepEqual(['room/1', 'game/x', 'news', 'rooms'].map(prefixes.isPresenceTopic), [true, true, false, false]);
    const predicate = resolveOptions({ presence: { topics: (topic) => topic.endsWith('/live'), ttlMs: '3000' as unknown as number } }).presence!;
    assert.equal(predicate.ttlMs, 3_000);
    assert.equal(predicate.isPresenceTopic('a/live'), true);
  });

  it('rejects a bad topic list or time-to-live at start-up, naming the option', () => {
    assert.throws(() => resolveOptions({ presence: { topics: 'room/' } } as unknown as PushletModuleOptions), /presence\.topics/);
    assert.throws(() => resolveOptions({ presence: { topics: [1] } } as unknown as PushletModuleOptions), /presence\.topics/);
    assert.throws(() => resolveOptions({ presence: { topics: ['room/'], ttlMs: -1 } }), /presence\.ttlMs/);
  });
});
