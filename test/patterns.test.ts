import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { PushletMessage } from '../src/index.js';
import { PatternIndex } from '../src/core/pattern-index.js';
import { matchesPattern, publishTopicProblem, topicProblem } from '../src/protocol/topics.js';
import { request, startApp, type TestApp } from './support/app.js';
import { dataOf, Instances } from './support/distributed.js';
import { RedisCluster, RedisServer } from './support/redis.js';
import { TRANSPORTS, type TestSubscriber } from './support/subscribers.js';
import { WsClient } from './support/ws-client.js';
import { eventually } from './support/wait.js';

describe('pattern grammar and matching (docs/protocol.md, Pattern subscriptions)', () => {
  it('accepts whole-segment * and a trailing #, refuses everything else', () => {
    for (const ok of ['orders/*', 'users/42/#', '*', '#', '*/x', 'a/*/c/#', 'orders']) assert.equal(topicProblem(ok), undefined, ok);
    for (const bad of ['a*b', 'orders/*x', 'a//*', '#/a', 'a/#/b', '/*', '*/', 'a/##', 'users/4#']) assert.ok(topicProblem(bad), bad);
    for (const pattern of ['orders/*', '#']) assert.ok(publishTopicProblem(pattern), 'a pattern is never published to');
  });

  it('matches * as one whole non-empty segment and # as zero or more trailing segments', () => {
    const cases: Array<[string, string, boolean]> = [
      ['orders/*', 'orders/1', true],
      ['orders/*', 'orders/1/items', false],
      ['orders/*', 'orders', false],
      ['orders/*', 'orders/', false],
      ['orders/*', 'users/1', false],
      ['users/42/#', 'users/42', true],
      ['users/42/#', 'users/42/a/b', true],
      ['users/42/#', 'users/420', false],
      ['*', 'a', true],
      ['*', 'a/b', false],
      ['*', '*', false],
      ['#', 'anything/at/all', true],
      ['#', '*', false],
      ['*/notifications', 'u1/notifications', true],
    ];
    for (const [pattern, topic, expected] of cases) {
      assert.equal(matchesPattern(pattern, topic), expected, `${pattern} ~ ${topic}`);
      const index = new PatternIndex<string>();
      index.set(pattern, pattern);
      assert.deepEqual(index.match(topic), expected ? [pattern] : [], `trie: ${pattern} ~ ${topic}`);
    }
  });

  it('keeps a trie of many patterns exact, and empty again once they are removed', () => {
    const index = new PatternIndex<string>();
    const patterns = Array.from({ length: 1_000 }, (_, i) => (i % 2 === 0 ? `t/${i}/*` : `t/${i}/#`));
    for (const pattern of patterns) index.set(pattern, pattern);
    index.set('t/#', 't/#');
    assert.equal(index.size, 1_001);
    assert.deepEqual(index.match('t/10/x').sort(), ['t/#', 't/10/*']);
    assert.deepEqual(index.match('t/11').sort(), ['t/#', 't/11/#']);
    assert.deepEqual(index.match('t/10'), ['t/#']);
    for (const pattern of [...patterns, 't/#']) assert.equal(index.delete(pattern), true);
    assert.equal(index.size, 0);
    assert.deepEqual(index.entries(), []);
    assert.deepEqual(index.match('t/10/x'), []);
  });
});

/** Publishes `topics` in order through `publishers` (round robin) and returns what was published. */
async function publishAll(publishers: readonly TestApp[], topics: readonly string[]): Promise<PushletMessage[]> {
  const out: PushletMessage[] = [];
  for (const [i, topic] of topics.entries()) out.push(await publishers[i % publishers.length]!.pushlet.publish(topic, 'message', `${topic}#${i}`));
  return out;
}

/** The data of the published messages whose topic `pattern` (or any of `patterns`) matches, in order. */
function expected(published: readonly PushletMessage[], ...patterns: string[]): string[] {
  return dataOf(published.filter((message) => patterns.some((pattern) => matchesPattern(pattern, message.topic) || pattern === message.topic)));
}

const TOPICS = ['orders/1', 'orders/1/items', 'orders', 'users/1', 'orders/2', 'users/42', 'users/42/a/b', 'users/420', 'orders/3'];

for (const backend of ['memory', 'redis'] as const) {
  describe(`pattern subscriptions, ${backend === 'memory' ? 'one instance in memory' : 'two instances on one Redis server'}`, () => {
    let server: RedisServer | undefined;
    const instances = new Instances();
    before(async () => {
      if (backend === 'redis') server = await RedisServer.start();
    });
    afterEach(async () => {
      await instances.closeAll();
    });
    after(async () => {
      await server?.stop();
    });
    /** Two apps: two instances on Redis, the same one twice in memory. */
    const apps = async (options = {}): Promise<[TestApp, TestApp]> => {
      if (server) {
        const [a, b] = await instances.start(2, { url: server.url }, options);
        return [a!, b!];
      }
      const app = await startApp({ heartbeatInterval: 60_000, ...options });
      instances.apps.push(app);
      return [app, app];
    };

    for (const transport of TRANSPORTS) {
      const open = async (app: TestApp, topics: readonly string[], lastEventId?: string): Promise<TestSubscriber> =>
        instances.track(await transport.open(app, topics, { lastEventId }));

      describe(`${transport.name}`, () => {
        it('orders/* gets orders/1 and orders/2 only; users/42/# gets users/42 and below; published on either instance', async () => {
          const [a, b] = await apps();
          const star = await open(b, ['orders/*']);
          const hash = await open(a, ['users/42/#']);
          const published = await publishAll([a, b], TOPICS);
          const end = await a.pushlet.publish('orders/9', 'message', 'end');
          await star.waitForMessage((m) => m.data === 'end', 5_000, 'the last message');
          assert.deepEqual(dataOf(star.messages), [...expected(published, 'orders/*'), 'end']);
          await b.pushlet.publish('users/42/z', 'message', 'end');
          await hash.waitForMessage((m) => m.data === 'end', 5_000, 'the last message');
          assert.deepEqual(dataOf(hash.messages), [...expected(published, 'users/42/#'), 'end']);
          assert.equal(end.topic, 'orders/9');
          assert.ok(
            star.messages.every((m) => m.id),
            'each message carries its id',
          );
        });

        it('a pattern and an overlapping topic (and two overlapping patterns) deliver each message once', async () => {
          const [a, b] = await apps();
          const client = await open(b, ['orders/*', 'orders/1', 'orders/#']);
          const published = await publishAll([a, b], [...TOPICS, ...TOPICS]);
          await a.pushlet.publish('orders/1', 'message', 'end');
          await client.waitForMessage((m) => m.data === 'end', 5_000, 'the last message');
          assert.deepEqual(dataOf(client.messages), [...expected(published, 'orders/#'), 'end']);
          assert.equal(client.resets, 0);
        });

        it('resuming a pattern replays exactly what it missed, in order, once', async () => {
          const [a, b] = await apps();
          const first = await open(a, ['orders/*', 'users/1']);
          const before = await publishAll([a, b], TOPICS);
          await first.waitForMessages(expected(before, 'orders/*', 'users/1').length);
          const lastId = first.lastEventId;
          first.close();
          const missed = await publishAll([b, a], [...TOPICS, 'orders/7']);
          const second = await open(b, ['orders/*', 'users/1'], lastId);
          const live = await publishAll([a], ['orders/8', 'users/1', 'orders/8/x']);
          const want = [...expected(missed, 'orders/*', 'users/1'), ...expected(live, 'orders/*', 'users/1')];
          await second.waitForMessages(want.length);
          await a.pushlet.publish('orders/1', 'message', 'end');
          await second.waitForMessage((m) => m.data === 'end', 5_000, 'the last message');
          assert.deepEqual(dataOf(second.messages), [...want, 'end'], 'every missed message once, in order, then live ones');
          assert.equal(second.resets, 0);
        });

        it('rewind on a pattern delivers the newest messages of its topics together, in order, then live ones', async () => {
          const [a, b] = await apps();
          const published = await publishAll([a, b], TOPICS);
          const client = instances.track(await transport.open(b, ['orders/*', 'users/1'], { rewind: 3 }));
          await a.pushlet.publish('orders/5', 'message', 'live');
          await client.waitForMessage((m) => m.data === 'live', 5_000, 'the live message');
          // Each subscription rewinds by 3: the pattern's three newest together, the topic's own.
          const want = published.filter((m) => matchesPattern('orders/*', m.topic)).slice(-3);
          want.push(...published.filter((m) => m.topic === 'users/1').slice(-3));
          want.sort((x, y) => (x.id < y.id ? -1 : 1));
          assert.deepEqual(dataOf(client.messages), [...dataOf(want), 'live']);
          assert.equal(client.resets, 0);
        });

        it('the pattern * (one segment) is not the broadcast topic: broadcasts arrive once, as broadcasts', async () => {
          const [a, b] = await apps();
          const client = await open(b, ['*']);
          const published = await publishAll([a], ['a', 'a/b', 'b']);
          await a.pushlet.publishToAll('message', 'to all');
          await client.waitForMessage((m) => m.data === 'to all', 5_000, 'the broadcast');
          await a.pushlet.publish('z', 'message', 'end');
          await client.waitForMessage((m) => m.data === 'end', 5_000, 'the last message');
          assert.deepEqual(dataOf(client.messages), [...expected(published, '*'), 'to all', 'end']);
        });
      });
    }

    it('a resume after the history lost its topics resets the pattern instead of skipping', async () => {
      const [a, b] = await apps({ history: { maxCount: 2 } });
      const first = await instances.track(await TRANSPORTS[0]!.open(a, ['orders/*']));
      await publishAll([a], ['orders/1']);
      await first.waitForMessages(1);
      const lastId = first.lastEventId;
      first.close();
      await publishAll([b], ['orders/1', 'orders/1', 'orders/1', 'orders/2']);
      const second = await instances.track(await TRANSPORTS[0]!.open(b, ['orders/*'], { lastEventId: lastId }));
      await second.waitForResets(1);
      await a.pushlet.publish('orders/5', 'message', 'end');
      await second.waitForMessage((m) => m.data === 'end', 5_000, 'the last message');
      assert.deepEqual(dataOf(second.messages), ['end'], 'a reset, then live messages (what is left is not replayed)');
    });

    it(
      'routes by one glob per first segment, and past 32 of them by one catch-all glob, subscribed together and apart',
      { skip: backend === 'memory' && 'Redis only' },
      async () => {
        const [a, b] = await apps();
        const probe = instances.redis(server!.url);
        await probe.connect();
        const received: string[] = [];
        const subscribe = (pattern: string) => b.pushlet.subscribe(pattern).subscribe((message) => received.push(message.data));
        // Subscribed in one turn: the globs asked for concurrently all stay.
        const few = Array.from({ length: 5 }, (_, i) => subscribe(`t${i}/#`));
        await eventually(async () => Number(await probe.pubsub('NUMPAT')) === 5, 5_000, 'five globs');
        const many = Array.from({ length: 35 }, (_, i) => subscribe(`t${i + 5}/*`));
        await eventually(async () => Number(await probe.pubsub('NUMPAT')) === 1, 5_000, 'one catch-all glob past 32');
        for (const topic of ['t3/x', 't39/y', 'u1/x', 't39/y/z']) await a.pushlet.publish(topic, 'message', topic);
        await eventually(async () => received.length >= 2, 5_000, 'two messages');
        for (const subscription of many) subscription.unsubscribe();
        await eventually(async () => Number(await probe.pubsub('NUMPAT')) === 5, 5_000, 'back to five globs');
        await a.pushlet.publish('t1/q', 'message', 't1/q');
        await a.pushlet.publish('t20/q', 'message', 't20/q');
        await eventually(async () => received.includes('t1/q'), 5_000, 't1/q');
        for (const subscription of few) subscription.unsubscribe();
        await eventually(async () => Number(await probe.pubsub('NUMPAT')) === 0, 5_000, 'no glob');
        assert.deepEqual(received, ['t3/x', 't39/y', 't1/q']);
      },
    );

    it('refuses bad patterns and more than limits.patternsPerConnection, over SSE (400) and WebSocket (pushlet:error)', async () => {
      const [a] = await apps({ limits: { patternsPerConnection: 2 } });
      for (const bad of ['a*b', 'a/#/b', 'a//*']) {
        const answer = await request(`${a.url}/events?topic=${encodeURIComponent(bad)}`);
        assert.equal(answer.status, 400, bad);
        assert.match(JSON.parse(answer.body).message, /segment/);
      }
      const tooMany = await request(`${a.url}/events?topic=a/*&topic=b/*&topic=c/*`);
      assert.equal(tooMany.status, 400);
      assert.match(JSON.parse(tooMany.body).message, /patternsPerConnection/);
      const ws = await WsClient.open(`${a.wsUrl}/ws`);
      try {
        const reply = await ws.call({ action: 'subscribe', topics: ['a/*', 'b/#'], ref: 1 });
        assert.equal(reply.event, 'pushlet:subscribed');
        const refused = await ws.call({ action: 'subscribe', topic: 'c/*', ref: 2 });
        assert.equal(refused.event, 'pushlet:error');
        assert.match(String(refused.data), /patternsPerConnection/);
        const unsubscribed = await ws.call({ action: 'unsubscribe', topic: 'a/*', ref: 3 });
        assert.deepEqual((JSON.parse(String(unsubscribed.data)) as { topics: string[] }).topics, ['b/#']);
        const presence = await ws.call({ action: 'presence', topic: 'room/*', ref: 4 });
        assert.equal(presence.event, 'pushlet:error');
      } finally {
        ws.close();
      }
    });
  });
}

describe('pattern subscriptions on a Redis Cluster', () => {
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

  it('are refused with a clear error (sharded pub/sub has no patterns); exact topics still work', async () => {
    const [a] = await instances.start(1, { cluster: { nodes: cluster.nodes } });
    const answer = await request(`${a!.url}/events?topic=orders/*`);
    assert.equal(answer.status, 400);
    assert.match(JSON.parse(answer.body).message, /not available with this broker/);
    const ws = await WsClient.open(`${a!.wsUrl}/ws`);
    try {
      const refused = await ws.call({ action: 'subscribe', topics: ['orders/1', 'orders/*'], ref: 1 });
      assert.equal(refused.event, 'pushlet:error');
      assert.equal(refused.topic, 'orders/*');
      await ws.waitForEvents('pushlet:subscribed');
      await a!.pushlet.publish('orders/1', 'message', 'exact');
      const [message] = await ws.waitForMessages(1);
      assert.equal(message!.data, 'exact');
    } finally {
      ws.close();
    }
  });
});
