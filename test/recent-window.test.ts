import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { PushletRedisOptions } from '../src/index.js';
import type { TestApp } from './support/app.js';
import { brokerOf, dataOf, Instances } from './support/distributed.js';
import { RedisCluster, RedisServer } from './support/redis.js';
import { TRANSPORTS } from './support/subscribers.js';

/** Redis's command counts (`INFO commandstats`). */
function commandStats(info: string): Record<string, number> {
  const stats: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats[match[1]!] = Number(match[2]);
  return stats;
}

/**
 * Clients of instance A drop and resume on instance B, which has watched their topics all along
 * (a subscriber of its own): B answers from its recent window, without reading Redis, and every
 * client gets every message it missed once, in order. A client whose position is older than
 * what B has followed is read from Redis, as exactly.
 */
async function resumeOnWatchingInstance(
  instances: Instances,
  redis: PushletRedisOptions,
  transport: (typeof TRANSPORTS)[number],
  countReads: () => Promise<number>,
  perTopic = false,
): Promise<void> {
  const [a, b] = await instances.start(2, redis);
  const open = async (app: TestApp, topics: readonly string[], lastEventId?: string) => instances.track(await transport.open(app, topics, { lastEventId }));
  const [one, two] = ['w/one', 'w/two'] as const;
  const published: Array<{ topic: string; data: string }> = [];
  const publish = async (app: TestApp, topic: string, data: string) => {
    await app.pushlet.publish(topic, 'message', data);
    published.push({ topic, data });
  };
  const of = (topics: readonly string[], from = 0) =>
    published
      .slice(from)
      .filter((m) => topics.includes(m.topic))
      .map((m) => m.data);
  // A client of A from before B watches anything: its position is older than B's windows.
  const early = await open(a!, [one]);
  await publish(a!, one, 'early 0');
  await early.waitForMessages(1);
  const earlyId = early.lastEventId;
  const sinceEarly = published.length;
  early.close();
  await publish(a!, one, 'early 1');
  // B watches both topics from now on.
  const holderTopics = [[one], [two]];
  const holdersFrom = published.length;
  const holders = await Promise.all(holderTopics.map((topics) => open(b!, topics)));
  for (let i = 0; i < 4; i += 1) await publish(i % 2 === 0 ? a! : b!, i % 2 === 0 ? one : two, `seen ${i}`);
  const clientTopics = Array.from({ length: 12 }, (_, i) => (i % 3 === 2 ? [one, two] : [i % 2 === 0 ? one : two]));
  const clientsFrom = published.length;
  const clients = await Promise.all(clientTopics.map((topics) => open(a!, topics)));
  for (let i = 0; i < 6; i += 1) await publish(i % 2 === 0 ? a! : b!, i % 2 === 0 ? one : two, `first ${i}`);
  const lastIds = await Promise.all(
    clients.map(async (client, c) => {
      await client.waitForMessages(of(clientTopics[c]!, clientsFrom).length);
      return client.lastEventId;
    }),
  );
  for (const client of clients) client.close();
  const missedFrom = published.length;
  for (let i = 0; i < 8; i += 1) {
    const topic = i % 3 === 0 ? two : one;
    await publish(i % 2 === 0 ? b! : a!, topic, `missed ${i} on ${topic}`);
  }
  // B has them all (its windows too) before the clients come back.
  for (const [h, holder] of holders.entries()) await holder.waitForMessages(of(holderTopics[h]!, holdersFrom).length);
  const readsBefore = await countReads();
  const statsBefore = brokerOf(b!).stats();
  const resumed = await Promise.all(clientTopics.map((topics, c) => open(b!, topics, lastIds[c])));
  // Positions per topic (Cluster): each topic's in order; ordered across topics (one server): all in order.
  const split = (list: readonly string[]) => (perTopic ? [one, two].map((topic) => list.filter((data) => data.endsWith(topic))) : list);
  const expected = clientTopics.map((topics) => of(topics, missedFrom));
  for (const [c, client] of resumed.entries()) {
    const seen = dataOf(await client.waitForMessages(expected[c]!.length));
    assert.deepEqual(split(seen), split(expected[c]!), `client ${c}: every missed message once, in order`);
    assert.equal(client.resets, 0);
  }
  const statsAfter = brokerOf(b!).stats();
  assert.equal(statsAfter.resumesFromBroker - statsBefore.resumesFromBroker, 0, 'no resume read from Redis');
  assert.ok(statsAfter.resumesFromWindow - statsBefore.resumesFromWindow >= clients.length, 'every resume answered from the window');
  assert.equal(b!.pushlet.stats().broker.resumesFromWindow, statsAfter.resumesFromWindow, 'stats().broker says so');
  assert.equal((await countReads()) - readsBefore, 0, 'no Redis history read');
  // Older than B's window: Redis answers, as exactly.
  const late = await open(b!, [one], earlyId);
  const lateExpected = of([one], sinceEarly);
  assert.deepEqual(dataOf(await late.waitForMessages(lateExpected.length)), lateExpected);
  assert.equal(late.resets, 0);
  assert.ok(brokerOf(b!).stats().resumesFromBroker > statsAfter.resumesFromBroker, 'read from Redis');
  // Live afterwards, once.
  await publish(a!, one, 'live on w/one');
  for (const [c, client] of resumed.entries()) {
    if (!clientTopics[c]!.includes(one)) continue;
    assert.deepEqual(split(dataOf(await client.waitForMessages(expected[c]!.length + 1))), split([...expected[c]!, 'live on w/one']));
  }
}

describe('resumes answered from the recent window of an instance that watched the topic (core/recent-window.ts)', () => {
  const instances = new Instances();
  afterEach(async () => {
    await instances.closeAll();
  });

  describe('one Redis server', () => {
    let server: RedisServer;
    before(async () => {
      server = await RedisServer.start();
    });
    after(async () => {
      await server?.stop();
    });

    for (const transport of TRANSPORTS) {
      it(`${transport.name}: no Redis read; every missed message once, in order; older positions from Redis`, async () => {
        const admin = instances.redis(server.url);
        // The replay script is the only one that runs HGET after an instance's start.
        const countReads = async () => commandStats(await admin.info('commandstats')).hget ?? 0;
        await resumeOnWatchingInstance(instances, { url: server.url }, transport, countReads);
      });
    }
  });

  describe('Redis Cluster (positions per topic)', () => {
    let cluster: RedisCluster;
    before(async () => {
      cluster = await RedisCluster.start();
    });
    after(async () => {
      await cluster?.stop();
    });

    it(`${TRANSPORTS[0]!.name}: no Redis read; every missed message once, in order; older positions from Redis`, async () => {
      // Counted by the instance (the stats checked inside): Redis commands are spread over the nodes.
      await resumeOnWatchingInstance(instances, { cluster: { nodes: cluster.nodes } }, TRANSPORTS[0]!, async () => 0, true);
    });
  });
});
