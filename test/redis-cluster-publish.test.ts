import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import clusterKeySlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import { RedisHistory } from '../src/cluster/redis-history.js';
import { RedisKeys } from '../src/cluster/redis-keys.js';
import { comparePositions, parsePosition } from '../src/protocol/ids.js';
import { RedisCluster } from './support/redis.js';

const compareIds = (a: string, b: string) => comparePositions(parsePosition(a)!, parsePosition(b)!);

const evalshaCalls = (info: string) => Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);

/**
 * The Cluster's publish path (`RedisHistory.appendAll`): one script call per master and turn,
 * carrying the topics of several slots, and what happens when the client's slot map is stale
 * (a slot moved, or moving, to another master behind its back): the call is refused before it
 * writes anything, and its topics go again one slot per call, redirected as any command.
 */
describe('Redis Cluster publish path: one script call per master, slots moving underneath', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  const keys = new RedisKeys('cp:');
  let history: RedisHistory;
  let counter = 0;

  before(async () => {
    cluster = await RedisCluster.start({ masters: 3 });
    client = new Cluster(cluster.nodes, { lazyConnect: true });
    await client.connect();
    history = new RedisHistory(client, keys, true, { maxCount: 1_000, maxAgeMs: 60_000 });
    await history.loadScripts();
  });
  after(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  const publish = (topics: readonly string[], tag: string) =>
    Promise.all(history.appendAll(topics.map((topic) => ({ topic, event: 'message', data: `${tag}:${topic}`, origin: 'o1', counter: ++counter }))));

  async function totalCalls(): Promise<number> {
    let n = 0;
    for (const server of cluster.servers) n += evalshaCalls(await server.command<string>('INFO', 'commandstats'));
    return n;
  }

  async function readAll(topic: string): Promise<string[]> {
    const [read] = await history.read([{ topic, after: { ms: 0, seq: 0 } }]);
    return read!.records.map((r) => r.data);
  }

  /** Moves `slot` to the master on `to`, keys and all, as `redis-cli --cluster reshard` does; `finish` false stops after the keys moved. */
  async function moveSlot(slot: number, from: number, to: number, finish: boolean): Promise<void> {
    const source = cluster.servers.find((s) => s.port === from)!;
    const target = cluster.servers.find((s) => s.port === to)!;
    const [sourceId, targetId] = [await source.command<string>('CLUSTER', 'MYID'), await target.command<string>('CLUSTER', 'MYID')];
    await target.command('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', sourceId);
    await source.command('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', targetId);
    const moving = await source.command<string[]>('CLUSTER', 'GETKEYSINSLOT', String(slot), '100');
    if (moving.length > 0) await source.command('MIGRATE', '127.0.0.1', String(to), '', '0', '5000', 'KEYS', ...moving);
    if (finish) for (const server of [target, source]) await server.command('CLUSTER', 'SETSLOT', String(slot), 'NODE', targetId);
  }

  it('sends one script call per master for a turn of topics in many slots; ids per topic in order', async () => {
    const topics = Array.from({ length: 40 }, (_, i) => `cp/${i}`);
    const masters = new Set<number>();
    for (const topic of topics) masters.add(await cluster.masterOfSlot(clusterKeySlot(keys.stream(topic))));
    assert.equal(masters.size, 3, 'the topics are on every master');
    await publish(topics, 'warm');
    const before = await totalCalls();
    const ids = await publish([...topics, ...topics], 'one');
    assert.equal((await totalCalls()) - before, 3, 'one call per master for 80 publications in 40 slots');
    for (let i = 0; i < topics.length; i++) assert.ok(compareIds(ids[i]!, ids[i + topics.length]!) < 0, `${topics[i]}: ids in publication order`);
    assert.deepEqual(await readAll(topics[3]!), ['warm:cp/3', 'one:cp/3', 'one:cp/3']);
  });

  it('reads the topics of many slots with one call per master, and again slot by slot on a stale slot map', async () => {
    const topics = Array.from({ length: 40 }, (_, i) => `rd/${i}`);
    const ids = await publish(topics, 'r');
    const at = (id: string) => ({ ms: Number(id.split('-')[0]), seq: Number(id.split('-')[1]) - 1 });
    const requests = topics.map((topic, i) => ({ topic, after: at(ids[i]!) }));
    const before = await totalCalls();
    const reads = await history.read(requests);
    assert.equal((await totalCalls()) - before, 3, 'one read per master for 40 topics');
    reads.forEach((read, i) =>
      assert.deepEqual(
        read.records.map((r) => r.data),
        [`r:${topics[i]}`],
      ),
    );
    const ports = cluster.servers.map((s) => s.port);
    let moved: string | undefined;
    for (const topic of topics) if ((await cluster.masterOfSlot(clusterKeySlot(keys.stream(topic)))) === ports[0]) moved = topic;
    const slot = clusterKeySlot(keys.stream(moved!));
    await moveSlot(slot, ports[0]!, ports[1]!, true);
    assert.equal(client.slots[slot]![0], `127.0.0.1:${ports[0]}`, 'the client does not know yet');
    const again = await history.read(requests);
    again.forEach((read, i) => {
      assert.deepEqual(
        read.records.map((r) => r.data),
        [`r:${topics[i]}`],
        topics[i],
      );
      assert.deepEqual(read.floor, reads[i]!.floor, `${topics[i]}: the same floor`);
    });
  });

  for (const finish of [false, true]) {
    it(`publishes exactly once when a slot ${finish ? 'moved' : 'is moving (keys already on the target)'} behind the client's back`, async () => {
      const topics = Array.from({ length: 40 }, (_, i) => `mv${finish ? 'd' : 'g'}/${i}`);
      await publish(topics, 'before');
      // A topic on the first master, moved to the second one; the client's slot map still says the first.
      const ports = cluster.servers.map((s) => s.port);
      let moved: string | undefined;
      for (const topic of topics) if ((await cluster.masterOfSlot(clusterKeySlot(keys.stream(topic)))) === ports[0]) moved = topic;
      assert.ok(moved);
      const slot = clusterKeySlot(keys.stream(moved));
      await moveSlot(slot, ports[0]!, ports[1]!, finish);
      assert.equal(client.slots[slot]![0], `127.0.0.1:${ports[0]}`, 'the client does not know yet');
      const calls = await totalCalls();
      const ids = await publish(topics, 'after');
      assert.ok((await totalCalls()) - calls > 3, 'the refused call, then one per slot of its topics');
      const again = await publish(topics, 'later');
      for (const topic of topics)
        assert.deepEqual(await readAll(topic), [`before:${topic}`, `after:${topic}`, `later:${topic}`], `${topic}: each once, in order`);
      topics.forEach((topic, k) => assert.ok(compareIds(ids[k]!, again[k]!) < 0, `${topic}: ids in publication order`));
      if (!finish)
        for (const server of cluster.servers)
          await server.command('CLUSTER', 'SETSLOT', String(slot), 'NODE', await cluster.servers[1]!.command<string>('CLUSTER', 'MYID'));
    });
  }
});
