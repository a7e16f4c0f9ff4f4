import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { RedisKeys } from '../src/cluster/redis-keys.js';
import type { PresenceData } from '../src/index.js';
import { SampleProcess } from './support/chaos/sample-process.js';
import { Instances } from './support/distributed.js';
import { PresenceClient, presenceOptions } from './support/presence.js';
import { RedisCluster } from './support/redis.js';

const TTL_MS = 1_500;

describe('presence on a three-master Redis Cluster', () => {
  let cluster: RedisCluster;
  const instances = new Instances();
  const clients: PresenceClient[] = [];
  const samples: SampleProcess[] = [];

  before(async () => {
    cluster = await RedisCluster.start();
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const sample of samples.splice(0)) await sample.stop();
    await instances.closeAll();
  });
  after(async () => {
    await cluster?.stop();
  });

  it('keeps each topic in one slot, shows the same members on every instance, and sends each join and leave once', async () => {
    const keyPrefix = Instances.freshPrefix();
    // Rooms on different masters, so that a refresh runs one script per slot on several shards.
    const keys = new RedisKeys(keyPrefix);
    const rooms: string[] = [];
    const masters = new Set<number>();
    for (let i = 0; rooms.length < 3 && i < 200; i += 1) {
      const room = `room/${i}`;
      const slot = await cluster.keySlot(keys.presence(room));
      assert.equal(slot, await cluster.keySlot(keys.presenceMembers(room)), 'sorted set and hash share a slot');
      const master = await cluster.masterOfSlot(slot);
      if (masters.has(master)) continue;
      masters.add(master);
      rooms.push(room);
    }
    assert.equal(rooms.length, 3);

    const apps = await instances.start(2, { cluster: { nodes: cluster.nodes }, keyPrefix }, presenceOptions(TTL_MS));
    const watchers: PresenceClient[] = [];
    for (const room of rooms) {
      for (const [i, app] of apps.entries()) watchers.push(await open(app, i === 0 ? 'sse' : 'ws', `w${i}`, room));
    }
    const members: Array<{ room: string; client: PresenceClient }> = [];
    for (const room of rooms) {
      members.push({ room, client: await open(apps[0]!, 'ws', 'ma', room) });
      members.push({ room, client: await open(apps[1]!, 'sse', 'mb', room) });
    }
    for (const watcher of watchers) await watcher.waitUntil(() => watcher.joins('ma') === 1 && watcher.joins('mb') === 1, 10_000, 'the joins');

    for (const room of rooms) {
      const [a, b] = await Promise.all(apps.map((app) => app.pushlet.presence(room)));
      assert.deepEqual(clientIds(a!), clientIds(b!));
      assert.deepEqual(users(a!), ['ma', 'mb', 'w0', 'w1']);
      assert.equal(await apps[1]!.pushlet.presenceCount(room), 4);
    }

    for (const { client } of members) client.close();
    for (const watcher of watchers) await watcher.waitUntil(() => watcher.leaves('ma') === 1 && watcher.leaves('mb') === 1, 10_000, 'the leaves');
    // A refresh or two later (each instance sweeps every room it serves), still one of each.
    for (const room of rooms) await apps[0]!.pushlet.publish(room, 'marker', 'end');
    for (const watcher of watchers) {
      await watcher.waitUntil(() => watcher.messages('marker').length === 1, 5_000, 'the marker');
      for (const user of ['ma', 'mb']) {
        assert.equal(watcher.joins(user), 1, `${watcher.describe()}: joins of ${user}`);
        assert.equal(watcher.leaves(user), 1, `${watcher.describe()}: leaves of ${user}`);
      }
    }
    for (const room of rooms) assert.deepEqual(users(await apps[1]!.pushlet.presence(room)), ['w0', 'w1']);
  });

  it('an instance killed with SIGKILL: its members of rooms on every shard expire, one leave each', async () => {
    const keyPrefix = Instances.freshPrefix();
    const rooms = ['room/a', 'room/b', 'room/c', 'room/d'];
    const apps = await instances.start(2, { cluster: { nodes: cluster.nodes }, keyPrefix }, presenceOptions(TTL_MS));
    const nodes = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',');
    const child = await SampleProcess.start('doomed', { REDIS_CLUSTER_NODES: nodes, REDIS_KEY_PREFIX: keyPrefix, PRESENCE_TTL_MS: String(TTL_MS) });
    samples.push(child);
    const watchers: PresenceClient[] = [];
    for (const room of rooms) watchers.push(await open(apps[watchers.length % 2]!, watchers.length % 2 === 0 ? 'ws' : 'sse', 'w', room));
    for (const room of rooms) await open(child, 'ws', 'doomed', room);
    for (const watcher of watchers) await watcher.waitUntil(() => watcher.joins('doomed') === 1, 10_000, 'the join');
    await child.kill();
    for (const watcher of watchers) await watcher.waitUntil(() => watcher.leaves('doomed') === 1, TTL_MS * 3 + 5_000, 'the leave');
    // Three more sweeps of every instance, then check that none sent the leave again.
    await new Promise((resolve) => setTimeout(resolve, TTL_MS));
    for (const room of rooms) await apps[0]!.pushlet.publish(room, 'marker', 'end');
    for (const watcher of watchers) {
      await watcher.waitUntil(() => watcher.messages('marker').length === 1, 5_000, 'the marker');
      assert.equal(watcher.leaves('doomed'), 1, watcher.describe());
      assert.equal(watcher.joins('doomed'), 1, watcher.describe());
    }
    for (const room of rooms) assert.deepEqual(users(await apps[1]!.pushlet.presence(room)), ['w']);
  });

  async function open(app: { url: string; wsUrl: string }, transport: 'sse' | 'ws', user: string, topic: string): Promise<PresenceClient> {
    const client = await PresenceClient.open(app, transport, topic, user);
    clients.push(client);
    return client;
  }
});

function clientIds(data: PresenceData): string[] {
  return data.members.map((m) => m.clientId).sort();
}

function users(data: PresenceData): string[] {
  return data.members.map((m) => m.identity?.id ?? '(anonymous)').sort();
}
