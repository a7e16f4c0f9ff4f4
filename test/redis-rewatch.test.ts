import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
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

/**
 * A TCP proxy in front of Redis that can cut its connections (as {@link TcpProxy}) and hold back
 * Redis's answer to the next SUBSCRIBE for a while, announcing it with a `held` event: a window
 * in which an instance's recovery has sent its subscriptions and waits for them.
 */
class HoldingRedisProxy extends EventEmitter {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private cutOff = false;
  private holdMs = 0;

  private constructor(private readonly target: number) {
    super();
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(targetPort: number): Promise<HoldingRedisProxy> {
    const proxy = new HoldingRedisProxy(targetPort);
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  cut(): void {
    this.cutOff = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.cutOff = false;
  }

  /** Redis's answer to the next SUBSCRIBE (on any connection) reaches the client `ms` late. */
  holdNextSubscribe(ms: number): void {
    this.holdMs = ms;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.cutOff) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target, '127.0.0.1');
    let heldUntil = 0;
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (this.holdMs > 0 && /\r\nsubscribe\r\n/i.test(chunk.toString('latin1'))) {
        heldUntil = Date.now() + this.holdMs;
        this.holdMs = 0;
        this.emit('held');
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      const wait = heldUntil - Date.now();
      if (wait <= 0) client.write(chunk);
      else {
        upstream.pause();
        setTimeout(() => {
          client.write(chunk);
          upstream.resume();
        }, wait);
      }
    });
  }
}

describe('distributed mode: a topic first subscribed while the instance recovers from a lost link', () => {
  const instances = new Instances();
  const servers: RedisServer[] = [];
  const proxies: HoldingRedisProxy[] = [];

  afterEach(async () => {
    await instances.closeAll();
    for (const proxy of proxies.splice(0)) await proxy.close();
    for (const server of servers.splice(0)) await server.stop();
  });

  it("gets the topic's messages once the instance is ready (subscribed after the recovery sent its subscriptions)", async () => {
    const server = await RedisServer.start();
    servers.push(server);
    const proxy = await HoldingRedisProxy.start(server.port);
    proxies.push(proxy);
    const keyPrefix = Instances.freshPrefix();
    const [b] = await instances.start(1, { url: proxy.url, commandTimeoutMs: 3_000, keyPrefix });
    const [publisher] = await instances.start(1, { url: server.url, keyPrefix });
    instances.track(await TRANSPORTS[0]!.open(b!, ['early']));

    proxy.cut();
    await eventually(async () => brokerOf(b!).stats().state === 'down', 5_000, 'B to notice Redis is gone');
    proxy.holdNextSubscribe(1_000);
    const held = once(proxy, 'held');
    proxy.restore();
    await held;
    assert.equal(brokerOf(b!).stats().state, 'recovering');
    const late = instances.track(await TRANSPORTS[0]!.open(b!, ['late']));
    await eventually(async () => brokerOf(b!).stats().state === 'ready', 10_000, 'B to recover');
    await publisher!.pushlet.publish('late', 'message', 'after the recovery');
    await late.waitForMessage((m) => m.data === 'after the recovery', 3_000, 'the message of the topic subscribed during the recovery');
  });
});
