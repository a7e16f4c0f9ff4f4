import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { MemoryBroker, PUSHLET_BROKER, PushletModule, type PushletMessage } from '../src/index.js';
import { RedisBroker, redisBroker } from '../src/cluster/index.js';
import { resolveOptions } from '../src/pushlet.options.js';
import { startApp, type TestApp } from './support/app.js';
import { brokerOf, dataOf, Instances } from './support/distributed.js';
import { clientCount, RedisServer } from './support/redis.js';
import { TRANSPORTS } from './support/subscribers.js';
import { eventually } from './support/wait.js';

describe('distributed mode on one Redis server', () => {
  let server: RedisServer;
  const instances = new Instances();

  before(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    await instances.closeAll();
  });
  after(async () => {
    await server?.stop();
  });

  for (const transport of TRANSPORTS) {
    const open = async (app: TestApp, topics: readonly string[], lastEventId?: string) => instances.track(await transport.open(app, topics, { lastEventId }));

    describe(`${transport.name} subscribers`, () => {
      it('delivers every message exactly once to every subscriber on every instance, in publication order', async () => {
        const [a, b] = await instances.start(2, { url: server.url });
        const clients = [await open(a!, ['news']), await open(a!, ['news']), await open(b!, ['news']), await open(b!, ['news'])];
        const published: PushletMessage[] = [];
        for (let i = 0; i < 40; i += 1) published.push(await (i % 2 === 0 ? a! : b!).pushlet.publish('news', 'message', `n${i}`));
        // A last message from each side: once it is in, any second copy of an earlier one would be too.
        const endA = await a!.pushlet.publish('news', 'end', 'from a');
        const endB = await b!.pushlet.publish('news', 'end', 'from b');
        for (const client of clients) {
          const seen = await client.waitForMessages(42);
          assert.deepEqual(dataOf(seen), [...dataOf(published), 'from a', 'from b']);
          assert.deepEqual(
            seen.map((m) => m.id),
            [...published, endA, endB].map((m) => m.id),
          );
          assert.equal(client.resets, 0);
        }
        const ids = published.map((m) => m.id);
        assert.equal(new Set(ids).size, ids.length, 'ids are unique');
      });

      it('delivers publishToAll exactly once to every client on three instances, whatever its topics', async () => {
        const [a, b, c] = await instances.start(3, { url: server.url });
        const clients = [await open(a!, ['p', 'q']), await open(b!, ['r']), await open(c!, ['s']), await open(c!, ['p'])];
        const sent = await b!.pushlet.publishToAll('announce', 'to everyone');
        await a!.pushlet.publishToAll('announce', 'again');
        for (const client of clients) {
          const seen = await client.waitForMessages(2);
          assert.deepEqual(dataOf(seen), ['to everyone', 'again']);
          assert.equal(seen[0]!.id, sent.id);
        }
        assert.equal(sent.topic, '*');
      });

      it('resumes on another instance with the last id: exactly the missed messages, in order', async () => {
        const [a, b] = await instances.start(2, { url: server.url });
        const first = await open(a!, ['orders']);
        for (let i = 0; i < 3; i += 1) await (i % 2 === 0 ? a! : b!).pushlet.publish('orders', 'message', `seen ${i}`);
        await first.waitForMessages(3);
        const lastId = first.lastEventId;
        first.close();
        const missed: string[] = [];
        for (let i = 0; i < 5; i += 1) missed.push((await (i % 2 === 0 ? b! : a!).pushlet.publish('orders', 'message', `missed ${i}`)).data);
        const second = await open(b!, ['orders'], lastId);
        await second.waitForMessages(5);
        await a!.pushlet.publish('orders', 'message', 'live');
        const seen = await second.waitForMessages(6);
        assert.deepEqual(dataOf(seen), [...missed, 'live']);
        assert.equal(second.resets, 0);
      });

      it('resumes a multi-topic connection exactly with one id', async () => {
        const [a, b] = await instances.start(2, { url: server.url });
        const topics = ['x', 'y', 'z'];
        const first = await open(a!, topics);
        for (let i = 0; i < 6; i += 1) await (i % 2 === 0 ? a! : b!).pushlet.publish(topics[i % 3]!, 'message', `seen ${i}`);
        await first.waitForMessages(6);
        const lastId = first.lastEventId;
        first.close();
        const missed: string[] = [];
        for (let i = 0; i < 9; i += 1) {
          const topic = topics[(i * 2) % 3]!;
          missed.push((await (i % 3 === 0 ? a! : b!).pushlet.publish(topic, 'message', `missed ${i} on ${topic}`)).data);
          await b!.pushlet.publish('unrelated', 'message', `not for this client ${i}`);
        }
        const second = await open(b!, topics, lastId);
        await second.waitForMessages(9);
        await b!.pushlet.publish('y', 'message', 'live');
        const seen = await second.waitForMessages(10);
        assert.deepEqual(dataOf(seen), [...missed, 'live']);
        assert.equal(second.resets, 0);
      });

      it('says pushlet:reset when the id is older than the trimmed history, or malformed, and not for its own start position', async () => {
        const [a, b] = await instances.start(2, { url: server.url }, { history: { maxCount: 3 } });
        const idle = await open(a!, ['t']);
        const startId = idle.lastEventId;
        idle.close();
        await a!.pushlet.publish('t', 'message', 'one');
        await b!.pushlet.publish('t', 'message', 'two');
        const fresh = await open(b!, ['t'], startId);
        assert.deepEqual(dataOf(await fresh.waitForMessages(2)), ['one', 'two']);
        assert.equal(fresh.resets, 0, 'a start position newer than the newest message is not a reset');
        for (let i = 3; i <= 7; i += 1) await a!.pushlet.publish('t', 'message', `m${i}`);
        const late = await open(b!, ['t'], startId);
        await late.waitForResets(1);
        await a!.pushlet.publish('t', 'message', 'after the trim');
        // Trimmed history is announced, and delivery starts from now: the client's next id is a good one.
        assert.deepEqual(dataOf(await late.waitForMessages(1)), ['after the trim']);
        assert.equal(late.resets, 1, 'trimmed history is announced');
        const garbage = await open(a!, ['t'], 'not-an-id');
        await a!.pushlet.publish('t', 'message', 'after garbage');
        assert.deepEqual(dataOf(await garbage.waitForMessages(1)), ['after garbage']);
        assert.equal(garbage.resets, 1);
        const future = await open(a!, ['t'], `${Date.now() + 3_600_000}-0`);
        await future.waitForResets(1);
        await a!.pushlet.publish('t', 'message', 'after the future');
        assert.deepEqual(dataOf(await future.waitForMessages(1)), ['after the future']);
        assert.equal(future.resets, 1, 'an id Redis never handed out is unknown');
      });
    });
  }

  it('routes by interest: an instance without subscribers of a topic receives none of its messages', async (t) => {
    const [a, b, c] = await instances.start(3, { url: server.url });
    const prefix = brokerOf(a!).keys.prefix;
    const channel = brokerOf(a!).keys.channel('hot');
    const everything = instances.redis(server.url);
    let everythingReceived = 0;
    everything.on('pmessage', () => (everythingReceived += 1));
    await everything.psubscribe(`${prefix}c:*`);
    const client = instances.track(await TRANSPORTS[0]!.open(a!, ['hot']));
    const admin = instances.redis(server.url);
    const numsub = async () => Number(((await admin.pubsub('NUMSUB', channel)) as [string, number])[1]);
    await eventually(async () => (await numsub()) === 1, 5_000, 'one instance subscribed to the topic');
    const before = [a!, b!, c!].map((app) => brokerOf(app).stats().received);
    const count = 200;
    for (let i = 0; i < count; i += 1) await b!.pushlet.publish('hot', 'message', `h${i}`);
    await client.waitForMessages(count);
    const received = [a!, b!, c!].map((app, i) => brokerOf(app).stats().received - before[i]!);
    await eventually(async () => everythingReceived >= count, 5_000, 'the pattern subscriber to get every message');
    t.diagnostic(
      `interest routing: ${count} messages on "hot" received by instances [a, b, c] = [${received.join(', ')}]; a subscriber of every channel got ${everythingReceived}`,
    );
    assert.deepEqual(received, [count, 0, 0]);
    assert.equal(everythingReceived, count);
    client.close();
    await eventually(async () => (await numsub()) === 0, 5_000, 'the last subscriber to release the channel');
  });

  it('delivers to server-side PushletService.subscribe() across instances, with resume', async () => {
    const [a, b] = await instances.start(2, { url: server.url });
    const seen: PushletMessage[] = [];
    const subscription = a!.pushlet.subscribe('jobs').subscribe((message) => seen.push(message));
    try {
      await eventually(async () => brokerOf(a!).stats().state === 'ready' && (await a!.pushlet.stats().topics) === 1, 5_000, 'the subscription');
      const first = await b!.pushlet.publish('jobs', 'done', 'job 1');
      await eventually(async () => seen.length === 1, 5_000, 'the first message');
      await b!.pushlet.publish('jobs', 'done', 'job 2');
      const resumed: PushletMessage[] = [];
      const again = b!.pushlet.subscribe('jobs', { lastEventId: first.id }).subscribe((message) => resumed.push(message));
      await eventually(async () => resumed.length === 1 && seen.length === 2, 5_000, 'the resumed message');
      again.unsubscribe();
      assert.deepEqual(dataOf(seen), ['job 1', 'job 2']);
      assert.deepEqual(dataOf(resumed), ['job 2']);
    } finally {
      subscription.unsubscribe();
    }
  });

  it('works through forRootAsync', async () => {
    const url = server.url;
    const keyPrefix = Instances.freshPrefix();
    const asyncApp = await startApp({
      metadata: { imports: [PushletModule.forRootAsync({ useFactory: async () => ({ redis: { url, keyPrefix } }) })] },
    });
    instances.apps.push(asyncApp);
    const [plain] = await instances.start(1, { url, keyPrefix });
    const client = instances.track(await TRANSPORTS[0]!.open(asyncApp, ['async']));
    await plain!.pushlet.publish('async', 'message', 'hello');
    assert.deepEqual(dataOf(await client.waitForMessages(1)), ['hello']);
  });

  it('closes its Redis connections on app.close(), and leaves an application client open', async () => {
    const baseline = await clientCount(server);
    const [a, b] = await instances.start(2, { url: server.url });
    instances.track(await TRANSPORTS[0]!.open(a!, ['bye']));
    instances.track(await TRANSPORTS[0]!.open(b!, ['bye']));
    assert.equal(await clientCount(server), baseline + 4, 'two connections per instance');
    await instances.closeAll();
    await eventually(async () => (await clientCount(server)) === baseline, 5_000, 'every connection to close');

    const own = new Redis(server.url);
    try {
      const app = await startApp({ redis: { client: own, keyPrefix: Instances.freshPrefix() } });
      assert.equal(await clientCount(server), baseline + 2, 'the application client and one subscriber');
      await app.close();
      await eventually(async () => (await clientCount(server)) === baseline + 1, 5_000, 'the subscriber to close');
      assert.equal(own.status, 'ready');
      assert.equal(await own.ping(), 'PONG');
    } finally {
      own.disconnect();
    }
  });

  it('publishes with one script run (EVALSHA) per message', async (t) => {
    const [a] = await instances.start(1, { url: server.url });
    await a!.pushlet.publish('warm', 'message', 'load the script');
    const admin = instances.redis(server.url);
    await admin.config('RESETSTAT');
    const count = 100;
    for (let i = 0; i < count; i += 1) await a!.pushlet.publish('counted', 'message', `c${i}`);
    const stats = parseCommandStats(await admin.info('commandstats'));
    const perPublish = Object.fromEntries(Object.entries(stats).map(([name, calls]) => [name, calls / count]));
    t.diagnostic(`Redis commands per publish: ${JSON.stringify(perPublish)}`);
    assert.equal(stats.evalsha, count);
    assert.equal(stats.publish, count);
    assert.equal(stats.xadd, count);
  });

  it('redisBroker() of pushlet-nestjs/redis (the broker option) joins the same Redis as the redis option; naming none, it runs in memory and says so', async () => {
    const keyPrefix = Instances.freshPrefix();
    const viaEntry = await startApp({ broker: redisBroker({ url: server.url, keyPrefix, options: { connectionName: 'via-entry' } }) });
    const viaOption = await startApp({ redis: { url: server.url, keyPrefix } });
    const warnings: string[] = [];
    const logger = { log() {}, error() {}, warn: (message: unknown) => void warnings.push(String(message)) };
    const inMemory = await startApp({ broker: redisBroker({ url: '' }), logger });
    try {
      assert.ok(viaEntry.app.get(PUSHLET_BROKER) instanceof RedisBroker);
      assert.ok(viaOption.app.get(PUSHLET_BROKER) instanceof RedisBroker);
      assert.ok(inMemory.app.get(PUSHLET_BROKER) instanceof MemoryBroker);
      assert.match(warnings.join('\n'), /distributed mode is off/);
      const arrived = firstValueFrom(viaOption.pushlet.subscribe('entry'));
      const channel = brokerOf(viaOption).keys.channel('entry');
      await eventually(async () => Number((await server.command<[string, number]>('PUBSUB', 'NUMSUB', channel))[1]) > 0, 5_000, 'the subscription');
      const sent = await viaEntry.pushlet.publish('entry', 'message', 'across');
      assert.equal((await arrived).id, sent.id);
      assert.match(String(await server.command('CLIENT', 'LIST')), /name=via-entry /);
    } finally {
      await Promise.all([viaEntry.close(), viaOption.close(), inMemory.close()]);
    }
  });

  it('rejects a redis option that names several sources, a bad key prefix, or a broker too', () => {
    // A redis option that names no source at all means no Redis (test/options.test.ts).
    assert.throws(() => resolveOptions({ redis: { url: server.url, host: '127.0.0.1' } }), /exactly one/);
    assert.throws(() => resolveOptions({ redis: { url: 'http://x' } }), /redis:\/\//);
    assert.throws(() => resolveOptions({ redis: { url: server.url, keyPrefix: 'a{b}' } }), /keyPrefix/);
    assert.throws(() => resolveOptions({ redis: { cluster: { nodes: [] } } }), /at least one node/);
    assert.throws(() => resolveOptions({ redis: { client: {} as Redis } }), /ioredis Redis or Cluster/);
    const resolved = resolveOptions({ redis: { host: '10.0.0.1', port: 6380, password: 'secret', db: 2 } });
    assert.deepEqual(resolved.redis?.source, { kind: 'host', host: '10.0.0.1', port: 6380, username: undefined, password: 'secret', db: 2 });
    assert.equal(resolved.redis?.keyPrefix, 'pushlet:');
    assert.equal(resolved.redis?.startWithoutRedis, false);
    assert.deepEqual(resolveOptions({ redis: { cluster: { nodes: ['10.0.0.1:7000', { host: '10.0.0.2', port: 7001 }] } } }).redis?.source, {
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
      ],
      options: undefined,
    });
  });
});

function parseCommandStats(info: string): Record<string, number> {
  const stats: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats[match[1]!] = Number(match[2]);
  return stats;
}
