import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Cluster, type Redis } from 'ioredis';
import type { PushletModuleOptions, PushletRedisOptions } from '../src/index.js';
import type { TestApp } from './support/app.js';
import { brokerOf, Instances } from './support/distributed.js';
import { RedisCluster, RedisServer } from './support/redis.js';
import { SseClient } from './support/sse-client.js';
import { WsClient } from './support/ws-client.js';

/** `?user=<id>` is the identity (the test's whole authentication). */
const OPTIONS: PushletModuleOptions = {
  authenticate: (request) => {
    const user = new URL(request.url ?? '/', 'http://x').searchParams.get('user');
    return user ? { id: user } : false;
  },
};

/**
 * `PushletService.disconnect(userId)` across instances: the command goes through the broker's
 * control channel (Redis: one classic pub/sub channel, which a Cluster broadcasts to every node).
 */
function disconnectAcrossInstances(name: string, redis: () => PushletRedisOptions, redisClient: () => Redis | Cluster) {
  describe(name, () => {
    const instances = new Instances();
    const clients: Array<{ close(): void }> = [];
    afterEach(async () => {
      for (const client of clients.splice(0)) client.close();
      await instances.closeAll();
    });

    async function sse(app: TestApp, user: string): Promise<SseClient> {
      const client = await SseClient.open(`${app.url}/events?topic=news&user=${user}`);
      clients.push(client);
      await client.waitForEvents(1, 5_000, 'pushlet:connected');
      return client;
    }

    async function ws(app: TestApp, user: string): Promise<WsClient> {
      const client = await WsClient.open(`${app.wsUrl}/ws?topic=news&user=${user}`);
      clients.push(client);
      await client.waitForEvents('pushlet:connected');
      return client;
    }

    it("closes that user's connections on every instance, and only theirs", async () => {
      const [a, b, c] = await instances.start(3, redis(), OPTIONS);
      const annOnA = await sse(a!, 'ann');
      const annOnB = await ws(b!, 'ann');
      const annOnC = [await ws(c!, 'ann'), await sse(c!, 'ann')] as const;
      const bobOnB = await ws(b!, 'bob');
      const bobOnC = await sse(c!, 'bob');

      // This instance's count: the others close theirs when the command reaches them.
      assert.equal(await a!.pushlet.disconnect('ann', 'signed out everywhere'), 1);
      const [notice] = await annOnA.waitForEvents(1, 5_000, 'pushlet:disconnected');
      assert.equal(notice!.data, 'signed out everywhere');
      await annOnA.waitForEnd();
      assert.deepEqual(await annOnB.waitForClose(), { code: 4002, reason: 'signed out everywhere' });
      assert.deepEqual(await annOnC[0].waitForClose(), { code: 4002, reason: 'signed out everywhere' });
      await annOnC[1].waitForEvents(1, 5_000, 'pushlet:disconnected');
      await annOnC[1].waitForEnd();

      // Bob is still connected on both instances: a message published now reaches him there.
      await c!.pushlet.publish('news', 'message', 'for bob');
      assert.equal((await bobOnB.waitForMessages(1))[0]!.data, 'for bob');
      await bobOnC.waitForEvent((e) => e.event === 'message' && e.data === 'for bob');
      assert.equal(bobOnB.closed, undefined);
      assert.equal(bobOnC.ended, false);
      for (const app of [a!, b!, c!]) assert.equal(app.pushlet.stats().connections.total, app === a ? 0 : 1);
    });

    it('ignores malformed control messages from Redis and cuts a remote reason to size', async () => {
      const [a, b] = await instances.start(2, redis(), OPTIONS);
      const ann = await ws(b!, 'ann');
      const channel = brokerOf(a!).keys.control;
      const publisher = redisClient();
      try {
        for (const payload of [
          'not json',
          'null',
          '[]',
          '{"kind":"disconnect"}',
          // No reason: had it been taken, Ann would be closed with the default reason (see below).
          '{"kind":"disconnect","userId":"ann"}',
          '{"kind":"disconnect","userId":42,"reason":"x"}',
          '{"kind":"disconnect","userId":"","reason":"x"}',
          '{"kind":"explode","userId":"ann","reason":"x"}',
          // Over the size read at all: had it been taken, the close reason would be x's.
          JSON.stringify({ kind: 'disconnect', userId: 'ann', reason: 'x'.repeat(10_000) }),
        ]) {
          await publisher.publish(channel, payload);
        }
        // Pub/sub keeps one publisher's order: this one is handled after all of the above.
        await publisher.publish(channel, JSON.stringify({ kind: 'disconnect', userId: 'ann', reason: 'é'.repeat(100), extra: { ignored: true } }));
      } finally {
        publisher.disconnect();
      }
      const closed = await ann.waitForClose();
      assert.equal(closed.code, 4002);
      assert.equal(closed.reason, 'é'.repeat(61));
    });
  });
}

describe('disconnect(userId) across instances', () => {
  let server: RedisServer;
  let cluster: RedisCluster;
  before(async () => {
    server = await RedisServer.start();
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await server?.stop();
    await cluster?.stop();
  });

  disconnectAcrossInstances(
    'three instances on one Redis server',
    () => ({ url: server.url }),
    () => server.client(),
  );
  disconnectAcrossInstances(
    'three instances on a three-master Redis Cluster',
    () => ({ cluster: { nodes: cluster.nodes } }),
    () => new Cluster(cluster.nodes),
  );
});
