import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { PushletMessage } from '../src/index.js';
import type { TestApp } from './support/app.js';
import { brokerOf, dataOf, Instances } from './support/distributed.js';
import { clientCount, RedisCluster } from './support/redis.js';
import { TRANSPORTS } from './support/subscribers.js';
import { eventually } from './support/wait.js';

describe('distributed mode on a three-master Redis Cluster', () => {
  let cluster: RedisCluster;
  const instances = new Instances();

  before(async () => {
    cluster = await RedisCluster.start();
  });
  afterEach(async () => {
    await instances.closeAll();
  });
  after(async () => {
    await cluster?.stop();
  });

  /** One topic per master: checked with CLUSTER KEYSLOT on the topic's stream key. */
  async function topicsOnEveryMaster(app: TestApp): Promise<string[]> {
    const keys = brokerOf(app).keys;
    const byMaster = new Map<number, string>();
    for (let i = 0; byMaster.size < 3 && i < 100; i += 1) {
      const topic = `shard/${i}`;
      const slot = await cluster.keySlot(keys.stream(topic));
      assert.equal(slot, await cluster.keySlot(keys.channel(topic)), 'stream and channel share a slot');
      const master = await cluster.masterOfSlot(slot);
      if (!byMaster.has(master)) byMaster.set(master, topic);
    }
    assert.equal(byMaster.size, 3, 'the test topics hit all three masters');
    return [...byMaster.values()];
  }

  for (const transport of TRANSPORTS) {
    it(`${transport.name}: delivers across two instances exactly once, with topics on every shard, and resumes on the other instance`, async () => {
      const [a, b] = await instances.start(2, { cluster: { nodes: cluster.nodes } });
      const topics = await topicsOnEveryMaster(a!);
      const onA = instances.track(await transport.open(a!, topics));
      const onB = topics.map(async (topic) => instances.track(await transport.open(b!, [topic])));
      const perTopic = await Promise.all(onB);

      const published: PushletMessage[] = [];
      for (let i = 0; i < 30; i += 1) published.push(await (i % 2 === 0 ? a! : b!).pushlet.publish(topics[i % 3]!, 'message', `m${i}`));
      const broadcast = await b!.pushlet.publishToAll('announce', 'to all shards');
      const all = [...dataOf(published), broadcast.data];
      const seenOnA = await onA.waitForMessages(31);
      assert.deepEqual([...dataOf(seenOnA)].sort(), [...all].sort(), 'every message once on instance A');
      for (const [i, client] of perTopic.entries()) {
        const expected = [...published.filter((m) => m.topic === topics[i]).map((m) => m.data), broadcast.data];
        const seen = await client.waitForMessages(expected.length);
        // One topic lives on one shard: its messages keep their order.
        assert.deepEqual(
          dataOf(seen).filter((d) => d !== broadcast.data),
          expected.slice(0, -1),
        );
        assert.equal(seen.filter((m) => m.data === broadcast.data).length, 1);
      }

      // Resume one topic on the other instance.
      const topic = topics[1]!;
      const lastId = perTopic[1]!.lastEventId;
      perTopic[1]!.close();
      const missed = [];
      for (let i = 0; i < 4; i += 1) missed.push((await a!.pushlet.publish(topic, 'message', `missed ${i}`)).data);
      const resumed = instances.track(await transport.open(a!, [topic], { lastEventId: lastId }));
      assert.deepEqual(dataOf(await resumed.waitForMessages(4)), missed);
      assert.equal(resumed.resets, 0);
    });
  }

  it('closes every connection to every node on app.close()', async () => {
    const counts = () => Promise.all(cluster.servers.map((server) => clientCount(server)));
    const baseline = await counts();
    const [a] = await instances.start(1, { cluster: { nodes: cluster.nodes } });
    const topics = await topicsOnEveryMaster(a!);
    instances.track(await TRANSPORTS[0]!.open(a!, topics));
    const during = await counts();
    assert.ok(
      during.every((count, i) => count > baseline[i]!),
      'connected to every node',
    );
    await instances.closeAll();
    await eventually(async () => (await counts()).every((count, i) => count === baseline[i]), 5_000, 'every connection to close');
  });

  // Last: it restarts a master. ioredis must resubscribe the shard's SSUBSCRIBE channels.
  it('keeps delivering when a master restarts: resubscribed, recovered or reset, no duplicate', async (t) => {
    const lines: string[] = [];
    const logger = (name: string) => {
      const write = (level: string) => (message: unknown) => lines.push(`${Date.now() % 100000} ${name} ${level} ${String(message)}`);
      return { log: write('log'), warn: write('warn'), error: write('error'), debug: write('debug') };
    };
    const [a] = await instances.start(1, { cluster: { nodes: cluster.nodes }, commandTimeoutMs: 500, keyPrefix: 'mr:' }, { logger: logger('a') });
    const [b] = await instances.start(1, { cluster: { nodes: cluster.nodes }, commandTimeoutMs: 500, keyPrefix: 'mr:' }, { logger: logger('b') });
    const topics = await topicsOnEveryMaster(a!);
    const client = instances.track(await TRANSPORTS[0]!.open(a!, topics));
    const victimPort = await cluster.masterOfSlot(await cluster.keySlot(brokerOf(a!).keys.stream(topics[1]!)));
    const server = cluster.servers.find((s) => s.port === victimPort)!;
    for (let i = 0; i < 6; i += 1) await b!.pushlet.publish(topics[i % 3]!, 'message', `before ${i}`);
    await client.waitForMessages(6);
    await server.kill();
    lines.push(`${Date.now() % 100000} killed`);
    // Publications wait until the cluster has recorded them.
    const waiting: Array<Promise<{ data: string }>> = [];
    for (let i = 0; i < 6; i += 1) waiting.push(b!.pushlet.publish(topics[i % 3]!, 'message', `during ${i}`));
    await server.restart();
    lines.push(`${Date.now() % 100000} restarted`);
    void Promise.all(waiting).then((all) => lines.push(`${Date.now() % 100000} recorded ${all.map((m) => JSON.stringify(m)).join(' ')}`));
    await eventually(() => cluster.stateOk(), 20_000, 'the cluster to recover');
    await eventually(async () => [a!, b!].every((app) => brokerOf(app).stats().state === 'ready'), 10_000, 'both instances to reconnect');
    const during = (await Promise.all(waiting)).map((m) => m.data);
    const afterwards: string[] = [];
    for (let i = 0; i < 6; i += 1) afterwards.push((await b!.pushlet.publish(topics[i % 3]!, 'message', `after ${i}`)).data);
    for (const data of afterwards) await client.waitForMessage((m) => m.data === data, 10_000, data);
    const seen = dataOf(client.messages);
    t.diagnostic(`a: ${JSON.stringify(brokerOf(a!).stats())} b: ${JSON.stringify(brokerOf(b!).stats())} ids: ${client.messages.map((m) => m.id).join(' ')}`);
    if (seen.length < 18) t.diagnostic(lines.join('\n'));
    t.diagnostic(`received ${seen.length} of 18, resets ${client.resets}: ${seen.join(', ')}`);
    assert.equal(new Set(seen).size, seen.length, 'no message twice');
    for (const data of during) assert.ok(seen.includes(data), `${data}, recorded once the cluster was back`);
  });
});
