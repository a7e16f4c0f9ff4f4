import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { PushletUnavailableError, type PresenceData } from '../src/index.js';
import type { TestApp } from './support/app.js';
import { SampleProcess } from './support/chaos/sample-process.js';
import { Instances } from './support/distributed.js';
import { PresenceClient, presenceOptions, type Endpoint } from './support/presence.js';
import { RedisServer } from './support/redis.js';
import { eventually, within } from './support/wait.js';

const ROOM = 'room/lobby';
/** Members outlive their instance by this much: refreshed and swept every third of it. */
const TTL_MS = 1_500;
const SILENT = { log: () => undefined, warn: () => undefined, error: () => undefined };

describe('presence on one Redis, several instances', () => {
  let redis: RedisServer;
  const instances = new Instances();
  const clients: PresenceClient[] = [];
  const samples: SampleProcess[] = [];

  before(async () => {
    redis = await RedisServer.start();
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const sample of samples.splice(0)) await sample.stop();
    await instances.closeAll();
  });
  after(async () => {
    await redis.stop();
  });

  async function open(endpoint: Endpoint, transport: 'sse' | 'ws', user: string, topic = ROOM): Promise<PresenceClient> {
    const client = await PresenceClient.open(endpoint, transport, topic, user);
    clients.push(client);
    return client;
  }

  /** Opens an SSE and a WebSocket watcher on each app, one after the other. */
  async function watchers(apps: readonly Endpoint[]): Promise<PresenceClient[]> {
    const list: PresenceClient[] = [];
    for (const [i, app] of apps.entries()) for (const transport of ['sse', 'ws'] as const) list.push(await open(app, transport, `w${i}-${transport}`));
    return list;
  }

  /**
   * Publishes a marker on `topic` and waits until every watcher has it: the topic's messages
   * arrive in order, so every join or leave sent before it has arrived too.
   */
  async function settle(app: TestApp, list: readonly PresenceClient[], label: string): Promise<void> {
    await app.pushlet.publish(ROOM, 'marker', label);
    for (const watcher of list) await watcher.waitUntil(() => watcher.messages('marker').some((m) => m.data === label), 5_000, `marker ${label}`);
  }

  it('three instances: presence() is the same on each, and every subscriber (SSE and WebSocket) gets each join and leave exactly once', async () => {
    const apps = await instances.start(3, { url: redis.url }, presenceOptions(TTL_MS));
    const seen = await watchers(apps);
    const members: PresenceClient[] = [];
    for (const [i, app] of apps.entries()) for (const transport of ['sse', 'ws'] as const) members.push(await open(app, transport, `m${i}-${transport}`));
    const memberUsers = members.map((m) => m.user);
    for (const watcher of seen) {
      await watcher.waitUntil(() => memberUsers.every((user) => watcher.joins(user) >= 1), 10_000, 'every member joined');
    }

    const views = await Promise.all(apps.map((app) => app.pushlet.presence(ROOM)));
    for (const view of views) {
      assert.equal(view.count, 12);
      assert.deepEqual(clientIds(view), clientIds(views[0]!));
    }
    assert.deepEqual(users(views[0]!), [...memberUsers, ...seen.map((w) => w.user)].sort());
    const counts = await Promise.all(apps.map((app) => app.pushlet.presenceCount(ROOM)));
    assert.deepEqual(counts, [12, 12, 12]);

    // SSE members disconnect; WebSocket members unsubscribe.
    for (const member of members) {
      if (member.transport === 'sse') member.close();
      else await member.socket.call({ action: 'unsubscribe', topic: ROOM, ref: 'bye' });
    }
    for (const watcher of seen) {
      await watcher.waitUntil(() => memberUsers.every((user) => watcher.leaves(user) >= 1), 10_000, 'every member left');
    }
    await settle(apps[0]!, seen, 'after leaves');
    for (const watcher of seen) {
      for (const user of memberUsers) {
        assert.equal(watcher.joins(user), 1, `${watcher.describe()}: joins of ${user}`);
        assert.equal(watcher.leaves(user), 1, `${watcher.describe()}: leaves of ${user}`);
      }
      // The watchers themselves: at most one join each (those that came after this one), no leave.
      for (const other of seen) {
        assert.ok(watcher.joins(other.user) <= 1, `${watcher.describe()}: joins of ${other.user}`);
        assert.equal(watcher.leaves(other.user), 0);
      }
      const ids = watcher.presence.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, 'every join and leave has an id of its own');
    }
    for (const app of apps) assert.deepEqual(users(await app.pushlet.presence(ROOM)), seen.map((w) => w.user).sort());
  });

  it('an instance killed with SIGKILL loses its members within the interval, with one leave each, sent once', async () => {
    const keyPrefix = Instances.freshPrefix();
    const apps = await instances.start(2, { url: redis.url, keyPrefix }, presenceOptions(TTL_MS));
    const child = await SampleProcess.start('doomed', { REDIS_URL: redis.url, REDIS_KEY_PREFIX: keyPrefix, PRESENCE_TTL_MS: String(TTL_MS) });
    samples.push(child);
    const seen = await watchers(apps);
    const doomed = [await open(child, 'sse', 'c-sse'), await open(child, 'ws', 'c-ws')];
    const stays = await open(apps[0]!, 'ws', 'stays');
    const users0 = ['c-sse', 'c-ws', 'stays'];
    for (const watcher of seen) await watcher.waitUntil(() => users0.every((user) => watcher.joins(user) === 1), 10_000, 'the joins');

    // The child's own /presence route sees what the others see.
    const fromChild = (await (await fetch(`${child.url}/presence?topic=${encodeURIComponent(ROOM)}`)).json()) as PresenceData;
    assert.deepEqual(clientIds(fromChild), clientIds(await apps[0]!.pushlet.presence(ROOM)));
    assert.equal(fromChild.count, 7);

    const killedAt = Date.now();
    await child.kill();
    for (const watcher of seen) {
      await watcher.waitUntil(() => watcher.leaves('c-sse') === 1 && watcher.leaves('c-ws') === 1, TTL_MS * 3 + 5_000, 'the leaves of the killed instance');
    }
    const elapsed = Date.now() - killedAt;
    // Expired at most a TTL after their last refresh, swept within a third of it after that.
    assert.ok(elapsed <= TTL_MS + TTL_MS / 3 + 2_000, `leaves came ${elapsed} ms after the kill`);
    // Every instance sweeps every interval: give them three more rounds, then check none sent another.
    await new Promise((resolve) => setTimeout(resolve, TTL_MS));
    await settle(apps[1]!, seen, 'after sweeps');
    for (const watcher of seen) {
      for (const user of ['c-sse', 'c-ws']) assert.equal(watcher.leaves(user), 1, `${watcher.describe()}: leaves of ${user}`);
      for (const user of users0) assert.equal(watcher.joins(user), 1, `${watcher.describe()}: joins of ${user}`);
      assert.equal(watcher.leaves('stays'), 0);
    }
    const expected = ['stays', ...seen.map((w) => w.user)].sort();
    for (const app of apps) assert.deepEqual(users(await app.pushlet.presence(ROOM)), expected);
    for (const client of doomed) client.close();
    stays.close();
  });

  it('an instance that shuts down sends a leave for each of its members', async () => {
    const apps = await instances.start(2, { url: redis.url }, presenceOptions(TTL_MS));
    const watcher = await open(apps[0]!, 'ws', 'w');
    await open(apps[1]!, 'sse', 'a');
    await open(apps[1]!, 'ws', 'b');
    await watcher.waitUntil(() => watcher.joins('a') === 1 && watcher.joins('b') === 1, 5_000, 'the joins');
    await apps[1]!.close();
    // Sent at shutdown, not swept later: well within the time-to-live.
    await watcher.waitUntil(() => watcher.leaves('a') === 1 && watcher.leaves('b') === 1, TTL_MS / 2, 'the leaves');
    assert.deepEqual(users(await apps[0]!.pushlet.presence(ROOM)), ['w']);
  });

  it('Redis unreachable: presence() fails with PushletUnavailableError, nothing crashes; members are back as soon as Redis is', async () => {
    const server = await RedisServer.start();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      // A long time-to-live: the periodic refresh (every 20 s) cannot be what adds members again.
      const apps = await instances.start(2, { url: server.url, commandTimeoutMs: 1_000 }, { ...presenceOptions(60_000), logger: SILENT });
      const watcher = await open(apps[0]!, 'ws', 'w');
      const member = await open(apps[1]!, 'sse', 'm');
      await watcher.waitUntil(() => watcher.joins('m') === 1, 5_000, 'the join');
      assert.equal(await apps[0]!.pushlet.presenceCount(ROOM), 2);

      await server.kill();
      await assert.rejects(within(apps[0]!.pushlet.presence(ROOM), 5_000, 'presence()'), PushletUnavailableError);
      await assert.rejects(within(apps[1]!.pushlet.presenceCount(ROOM), 5_000, 'presenceCount()'), PushletUnavailableError);
      // The WebSocket command says so too, and the connection stays.
      const reply = await watcher.socket.call({ action: 'presence', topic: ROOM, ref: 'down' }, 5_000);
      assert.equal(reply.event, 'pushlet:error');
      // A member that leaves meanwhile, and one that comes: nothing throws.
      member.close();
      const late = await open(apps[1]!, 'ws', 'late').catch(() => undefined);

      // Redis comes back empty: every instance adds its members again as soon as its link is ready.
      await server.restart();
      const expected = late ? ['late', 'w'] : ['w'];
      await eventually(async () => JSON.stringify(users(await apps[0]!.pushlet.presence(ROOM))) === JSON.stringify(expected), 10_000, 'the members back');
      assert.deepEqual(users(await apps[1]!.pushlet.presence(ROOM)), expected);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await instances.closeAll();
      await server.stop();
    }
  });
});

function clientIds(data: PresenceData): string[] {
  return data.members.map((m) => m.clientId).sort();
}

function users(data: PresenceData): string[] {
  return data.members.map((m) => m.identity?.id ?? '(anonymous)').sort();
}
