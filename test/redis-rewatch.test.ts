import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { brokerOf, dataOf, Instances } from './support/distributed.js';
import { RedisServer } from './support/redis.js';
import { TRANSPORTS } from './support/subscribers.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { eventually } from './support/wait.js';

/**
 * A topic that an instance followed before, lost all its subscribers, and is subscribed to again
 * while the instance's link to Redis is down (a reconnect storm can do this: clients closed with
 * 1013 while history was unreadable come back before the link does). The new subscriber resumes
 * from an id older than what the instance delivered the first time; once the link recovers it
 * must get every message after its id, once, including those the instance delivered before.
 */
describe('distributed mode: a topic watched again while Redis is away', () => {
  const instances = new Instances();
  const servers: RedisServer[] = [];
  const proxies: TcpProxy[] = [];

  afterEach(async () => {
    await instances.closeAll();
    for (const proxy of proxies.splice(0)) await proxy.close();
    for (const server of servers.splice(0)) await server.stop();
  });
  after(async () => {
    for (const server of servers.splice(0)) await server.stop();
  });

  for (const transport of TRANSPORTS) {
    it(`${transport.name}: a resume from before what the instance delivered the first time misses nothing`, async () => {
      const server = await RedisServer.start();
      servers.push(server);
      const proxy = await TcpProxy.start(server.port);
      proxies.push(proxy);
      const keyPrefix = Instances.freshPrefix();
      // B reaches Redis through the proxy (so that its link can be cut); the publisher directly.
      const [b] = await instances.start(1, { url: proxy.url.replace('http:', 'redis:'), commandTimeoutMs: 1_000, keyPrefix });
      const [publisher] = await instances.start(1, { url: server.url, keyPrefix });

      const first = instances.track(await transport.open(b!, ['feed']));
      const m0 = await publisher!.pushlet.publish('feed', 'message', 'm0');
      for (const data of ['m1', 'm2', 'm3']) await publisher!.pushlet.publish('feed', 'message', data);
      await first.waitForMessages(4);
      first.close();
      await eventually(async () => b!.pushlet.stats().connections.total === 0, 5_000, 'the first subscriber to leave');

      proxy.cut();
      await eventually(async () => brokerOf(b!).stats().state === 'down', 5_000, 'B to notice Redis is gone');
      const again = instances.track(await transport.open(b!, ['feed'], { lastEventId: m0.id }));
      await publisher!.pushlet.publish('feed', 'message', 'm4');
      proxy.restore();
      await eventually(async () => brokerOf(b!).stats().state === 'ready', 10_000, 'B to recover');
      await publisher!.pushlet.publish('feed', 'message', 'm5');
      await again.waitForMessage((m) => m.data === 'm5', 5_000, 'm5');
      assert.deepEqual(dataOf(again.messages), ['m1', 'm2', 'm3', 'm4', 'm5']);
      assert.equal(again.resets, 0);
    });
  }
});
