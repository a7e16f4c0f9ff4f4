import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { connect, JSONCodec } from 'nats';
import { PUSHLET_BROKER, type PushletMessage, type PushletModuleOptions } from '../src/index.js';
import { NatsBroker, natsBroker, type NatsBrokerOptions } from '../src/nats/index.js';
import { NatsSubjects } from '../src/nats/nats-subjects.js';
import { matchesPattern } from '../src/protocol/topics.js';
import { startApp, type TestApp } from './support/app.js';
import { dataOf } from './support/distributed.js';
import { NatsServer } from './support/nats.js';
import { PresenceClient, presenceOptions } from './support/presence.js';
import { TRANSPORTS, type TestSubscriber } from './support/subscribers.js';
import { SseClient } from './support/sse-client.js';
import { eventually } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

let namespaces = 0;
/** A stream and subject prefix of its own per test, so that tests sharing a server never see each other's history. */
function fresh(): Pick<NatsBrokerOptions, 'stream' | 'subjectPrefix' | 'presenceBucket'> {
  namespaces += 1;
  const name = `nt${process.pid}_${namespaces}`;
  return { stream: name, subjectPrefix: name, presenceBucket: `${name}_presence` };
}

describe('NATS subjects: topics and patterns onto NATS tokens and wildcards', () => {
  const subjects = new NatsSubjects('p');
  const topics = ['orders/42', 'a.b/c*d/e>f', 'a//b', '/lead', 'trail/', '100%/%41', 'ü/日本/😀', 'users/42', 'users/42/x/y', '*'];

  it('escapes every segment into one valid token, and reads it back', () => {
    for (const topic of topics) {
      const subject = subjects.topic(topic);
      const tokens = subject.split('.');
      assert.ok(
        tokens.every((token) => token.length > 0 && !/[\s*>]/.test(token)),
        `${topic} -> ${subject}`,
      );
      assert.equal(subjects.topicOf(subject), topic, subject);
    }
    assert.equal(subjects.topic('orders/42'), 'p.h.t.orders.42');
    assert.equal(subjects.topic('a//b'), 'p.h.t.a.%.b');
    assert.equal(subjects.topic('*'), 'p.h.b', 'the broadcast topic has a subject of its own');
  });

  it('maps patterns onto wildcards that hold every topic they match (# also zero segments), and never the broadcast', () => {
    assert.deepEqual(subjects.pattern('orders/*'), ['p.h.t.orders.*']);
    assert.deepEqual(subjects.pattern('users/42/#'), ['p.h.t.users.42.>', 'p.h.t.users.42']);
    assert.deepEqual(subjects.pattern('#'), ['p.h.t.>']);
    const natsMatch = (filter: string, subject: string) => {
      const want = filter.split('.');
      const have = subject.split('.');
      for (let i = 0; i < want.length; i++) {
        if (want[i] === '>') return have.length > i;
        if (i >= have.length || (want[i] !== '*' && want[i] !== have[i])) return false;
      }
      return want.length === have.length;
    };
    for (const pattern of ['orders/*', 'users/42/#', '#', '*/42', 'a/*/e>f', 'ü/*']) {
      for (const topic of topics) {
        if (!matchesPattern(pattern, topic)) continue;
        assert.ok(
          subjects.pattern(pattern).some((filter) => natsMatch(filter, subjects.topic(topic))),
          `${pattern} routes ${topic}`,
        );
      }
      assert.ok(!subjects.pattern(pattern).some((filter) => natsMatch(filter, subjects.topic('*'))), `${pattern} never routes the broadcast`);
    }
  });
});

describe('distributed mode on one nats-server -js', () => {
  let server: NatsServer;
  const apps: TestApp[] = [];
  const subscribers: Array<{ close(): void }> = [];

  before(async () => {
    server = await NatsServer.start();
  });
  afterEach(async () => {
    for (const subscriber of subscribers.splice(0)) subscriber.close();
    for (const app of apps.splice(0)) await app.close();
  });
  after(async () => {
    await server?.stop();
  });

  async function instances(count: number, options: PushletModuleOptions = {}, nats: NatsBrokerOptions = {}): Promise<TestApp[]> {
    const shared: NatsBrokerOptions = { servers: server.url, ...fresh(), ...nats };
    const started: TestApp[] = [];
    for (let i = 0; i < count; i += 1) {
      const app = await startApp({ heartbeatInterval: 60_000, ...options, broker: natsBroker(shared) });
      apps.push(app);
      started.push(app);
    }
    return started;
  }

  it('runs on the NATS broker, and names it', async () => {
    const [a] = await instances(1);
    const broker = a!.app.get(PUSHLET_BROKER);
    assert.ok(broker instanceof NatsBroker);
    assert.match(broker.description, new RegExp(`^NATS JetStream at nats://127\\.0\\.0\\.1:${server.port} \\(stream nt`));
    assert.equal(a!.pushlet.stats().broker.connected, true);
  });

  for (const transport of TRANSPORTS) {
    const open = async (app: TestApp, topics: readonly string[], lastEventId?: string): Promise<TestSubscriber> => {
      const subscriber = await transport.open(app, topics, { lastEventId });
      subscribers.push(subscriber);
      return subscriber;
    };

    describe(`${transport.name} subscribers`, () => {
      it('delivers every message exactly once to every subscriber on both instances, in publication order, ids from the stream', async () => {
        const [a, b] = await instances(2);
        const clients = [await open(a!, ['news']), await open(b!, ['news']), await open(b!, ['news'])];
        const published: PushletMessage[] = [];
        for (let i = 0; i < 30; i += 1) published.push(await (i % 2 === 0 ? a! : b!).pushlet.publish('news', 'message', `n${i}`));
        // Several in flight at once (one turn): each once, in the order JetStream recorded them.
        const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => a!.pushlet.publish('news', 'message', `burst ${i}`)));
        const all = [...published, ...burst].sort((x, y) => Number(x.id.split('-')[1]) - Number(y.id.split('-')[1]));
        for (const client of clients) {
          const seen = await client.waitForMessages(50);
          assert.deepEqual(
            seen.map((m) => m.id),
            all.map((m) => m.id),
          );
          assert.deepEqual(dataOf(seen), dataOf(all));
          assert.equal(client.resets, 0);
        }
        assert.equal(new Set(all.map((m) => m.id)).size, 50, 'ids are unique');
        const ms = new Set(all.map((m) => m.id.split('-')[0]));
        assert.equal(ms.size, 1, 'one stream: one epoch');
        // The timestamp is when it was recorded, not the stream's creation.
        for (const message of all) assert.ok(Math.abs(Date.parse(message.timestamp) - Date.now()) < 60_000, message.timestamp);
      });

      it('delivers publishToAll once to every client on both instances, whatever its topics', async () => {
        const [a, b] = await instances(2);
        const clients = [await open(a!, ['p', 'q']), await open(b!, ['r'])];
        const sent = await b!.pushlet.publishToAll('announce', 'to everyone');
        await a!.pushlet.publishToAll('announce', 'again');
        for (const client of clients) {
          const seen = await client.waitForMessages(2);
          assert.deepEqual(dataOf(seen), ['to everyone', 'again']);
          assert.equal(seen[0]!.id, sent.id);
        }
      });

      it('resumes a multi-topic connection on the other instance with one id: exactly the missed messages, in order', async () => {
        const [a, b] = await instances(2);
        const topics = ['x.y', 'a//b', 'z'];
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
        await a!.pushlet.publish('a//b', 'message', 'live');
        const seen = await second.waitForMessages(10);
        assert.deepEqual(dataOf(seen), [...missed, 'live']);
        assert.equal(second.resets, 0);
      });

      it('patterns across instances: live once each, resumed on the other instance exactly', async () => {
        const [a, b] = await instances(2);
        const pattern = await open(b!, ['orders/*', 'users/42/#']);
        const overlap = await open(b!, ['orders/*', 'orders/1']);
        const wanted: string[] = [];
        for (const [topic, match] of [
          ['orders/1', true],
          ['orders/2', true],
          ['orders/1/x', false],
          ['users/42', true],
          ['users/42/cart/items', true],
          ['users/420', false],
          ['orders', false],
        ] as const) {
          const message = await a!.pushlet.publish(topic, 'message', `on ${topic}`);
          if (match) wanted.push(message.data);
        }
        await a!.pushlet.publishToAll('announce', 'all');
        const seen = await pattern.waitForMessages(wanted.length + 1);
        assert.deepEqual(
          dataOf(seen),
          [...wanted.slice(0, 2), ...wanted.slice(2), 'all'].sort((x, y) => seen.findIndex((m) => m.data === x) - seen.findIndex((m) => m.data === y)),
        );
        assert.deepEqual(new Set(dataOf(seen)), new Set([...wanted, 'all']));
        const overlapSeen = await overlap.waitForMessages(3);
        assert.deepEqual(dataOf(overlapSeen), ['on orders/1', 'on orders/2', 'all'], 'a topic and its pattern: each message once');

        const lastId = pattern.lastEventId;
        pattern.close();
        const missed = [];
        for (const topic of ['orders/9', 'elsewhere', 'users/42/z', 'orders/new']) {
          const message = await b!.pushlet.publish(topic, 'message', `missed on ${topic}`);
          if (topic !== 'elsewhere') missed.push(message.data);
        }
        const resumed = await open(a!, ['orders/*', 'users/42/#'], lastId);
        await resumed.waitForMessages(missed.length);
        await b!.pushlet.publish('orders/9', 'message', 'live');
        assert.deepEqual(dataOf(await resumed.waitForMessages(missed.length + 1)), [...missed, 'live']);
        assert.equal(resumed.resets, 0);
      });
    });
  }

  it("live records reach an instance in stream order while several connections publish at once: a multi-topic connection's ids only go forward", async () => {
    // JetStream's republish delivers two records stored from two publishing connections in either
    // order (130 inversions in 60,000 measured on 2.9.10): a connection holding 1037 and not yet
    // 1036 would resume after 1036 and lose it. The live consumer delivers in sequence order.
    // Publishers: three connections of their own writing as instances do, as fast as JetStream takes them.
    const names = fresh();
    const [app] = await instances(1, {}, names);
    const topics = Array.from({ length: 8 }, (_, i) => `t${i}`);
    const client = await TRANSPORTS.find((transport) => transport.name === 'WebSocket')!.open(app!, topics);
    subscribers.push(client);
    const subjects = new NatsSubjects(names.subjectPrefix!);
    const codec = JSONCodec<[string, string, number]>();
    const perPublisher = 8_000;
    const connections = await Promise.all([0, 1, 2].map(() => connect({ servers: server.url })));
    try {
      await Promise.all(
        connections.map(async (nc, p) => {
          const js = nc.jetstream();
          for (let i = 0; i < perPublisher; i += 50) {
            await Promise.all(
              Array.from({ length: 50 }, (_, k) =>
                js.publish(subjects.topic(topics[(i + k + p) % topics.length]!), codec.encode(['message', `${p}:${i + k}`, Date.now()]), {
                  msgID: `raw${p}:${i + k}`,
                }),
              ),
            );
          }
        }),
      );
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
    const seen = await client.waitForMessages(3 * perPublisher, 30_000);
    const seqs = seen.map((message) => Number(message.id.split('-')[1]));
    const backwards = seqs.filter((seq, i) => i > 0 && seq <= seqs[i - 1]!).length;
    assert.equal(backwards, 0, 'ids going back');
    assert.equal(new Set(dataOf(seen)).size, 3 * perPublisher, 'each message once');
    assert.equal(client.resets, 0);
  });

  it('a stream created again (its history lost) resets a client resuming from before, never a silent gap', async () => {
    const names = fresh();
    const [a] = await instances(1, {}, names);
    const first = await TRANSPORTS[0]!.open(a!, ['t']);
    subscribers.push(first);
    await a!.pushlet.publish('t', 'message', 'before');
    await first.waitForMessages(1);
    const lastId = first.lastEventId;
    first.close();
    // An operator deletes the stream under the running instance; it is created again.
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(names.stream!);
    } finally {
      await nc.close();
    }
    await eventually(
      async () => {
        try {
          await a!.pushlet.publish('t', 'message', 'after');
          return true;
        } catch {
          return false;
        }
      },
      10_000,
      'a publication recorded in the new stream',
    );
    const second = await TRANSPORTS[0]!.open(a!, ['t'], { lastEventId: lastId });
    subscribers.push(second);
    await second.waitForResets(1);
    await a!.pushlet.publish('t', 'message', 'live');
    const seen = await second.waitForMessage((m) => m.data === 'live');
    assert.ok(seen);
    assert.ok(
      dataOf(second.messages).every((data) => data !== 'before'),
      'nothing of the old stream',
    );
  });

  it('NATS killed and restarted with its store (file storage): live and resuming clients continue exactly, no reset', async () => {
    const own = await NatsServer.start();
    try {
      const [a, b] = await instances(2, {}, { servers: own.url, commandTimeoutMs: 1_000 });
      const live = await TRANSPORTS[1]!.open(b!, ['k', 'l']);
      subscribers.push(live);
      const before: string[] = [];
      for (let i = 0; i < 5; i++) before.push((await a!.pushlet.publish(i % 2 ? 'k' : 'l', 'message', `before ${i}`)).data);
      await live.waitForMessages(5);
      const gone = await TRANSPORTS[0]!.open(a!, ['k', 'l']);
      await gone.waitUntil(() => gone.lastEventId !== '', 5_000, 'a start id');
      const resumeFrom = gone.lastEventId;
      gone.close();
      await own.kill();
      // Published while NATS is down: queued, recorded once it is back.
      const during = Array.from({ length: 4 }, (_, i) => a!.pushlet.publish(i % 2 ? 'k' : 'l', 'message', `during ${i}`));
      await own.restart();
      const after: string[] = [];
      for (const message of await Promise.all(during)) after.push(message.data);
      for (let i = 0; i < 3; i++) after.push((await b!.pushlet.publish('k', 'message', `after ${i}`)).data);
      assert.deepEqual(dataOf(await live.waitForMessages(12, 20_000)), [...before, ...after]);
      assert.equal(live.resets, 0, 'nothing was lost: no reset');
      const resumed = await TRANSPORTS[0]!.open(b!, ['k', 'l'], { lastEventId: resumeFrom });
      subscribers.push(resumed);
      assert.deepEqual(dataOf(await resumed.waitForMessages(7)), after);
      assert.equal(resumed.resets, 0);
    } finally {
      await own.stop();
    }
  });

  it('started without NATS, a subscriber from before it came is served once it does (positions are no clock: the estimate is the very start, whatever the time)', async () => {
    const own = await NatsServer.start();
    await own.kill();
    try {
      const [a] = await instances(1, {}, { servers: own.url, startWithoutNats: true, connectTimeoutMs: 200, commandTimeoutMs: 1_000 });
      // The core's estimate for a topic first watched without the broker is its own clock less a
      // margin; an hour ahead here stands for a stream created long before this instance started.
      const realNow = Date.now;
      Date.now = () => realNow() + 3_600_000;
      let early: TestSubscriber;
      try {
        early = await TRANSPORTS[1]!.open(a!, ['early']);
      } finally {
        Date.now = realNow;
      }
      subscribers.push(early);
      await own.restart();
      await eventually(async () => a!.pushlet.stats().broker.connected, 10_000, 'the instance on NATS');
      await a!.pushlet.publish('early', 'message', 'first');
      assert.deepEqual(dataOf(await early.waitForMessages(1, 10_000)), ['first']);
      const fresh = await TRANSPORTS[0]!.open(a!, ['early']);
      subscribers.push(fresh);
      await a!.pushlet.publish('early', 'message', 'second');
      assert.deepEqual(dataOf(await fresh.waitForMessages(1)), ['second']);
      assert.deepEqual(dataOf(await early.waitForMessages(2)), ['first', 'second']);
    } finally {
      await own.stop();
    }
  });

  it('presence across instances: the same members on each, every join and leave once, SSE and WebSocket', async () => {
    const room = 'room/lobby';
    const [a, b] = await instances(2, presenceOptions(1_500));
    const watchers = [await PresenceClient.open(a!, 'sse', room, 'wa'), await PresenceClient.open(b!, 'ws', room, 'wb')];
    subscribers.push(...watchers);
    const members = [await PresenceClient.open(a!, 'ws', room, 'm1'), await PresenceClient.open(b!, 'sse', room, 'm2')];
    subscribers.push(...members);
    for (const watcher of watchers) await watcher.waitUntil(() => ['m1', 'm2'].every((user) => watcher.joins(user) === 1), 10_000, 'the joins');
    const views = await Promise.all([a!.pushlet.presence(room), b!.pushlet.presence(room)]);
    assert.equal(views[0].count, 4);
    assert.deepEqual(views[0].members.map((m) => m.clientId).sort(), views[1].members.map((m) => m.clientId).sort());
    assert.equal(await b!.pushlet.presenceCount(room), 4);
    members[1]!.close();
    await members[0]!.socket.call({ action: 'unsubscribe', topic: room, ref: 'bye' });
    for (const watcher of watchers) await watcher.waitUntil(() => ['m1', 'm2'].every((user) => watcher.leaves(user) === 1), 10_000, 'the leaves');
    // A marker after the leaves: any second copy of a join or leave would have arrived before it.
    await a!.pushlet.publish(room, 'marker', 'end');
    for (const watcher of watchers) {
      await watcher.waitUntil(() => watcher.messages('marker').length === 1, 5_000, 'the marker');
      for (const user of ['m1', 'm2']) {
        assert.equal(watcher.joins(user), 1);
        assert.equal(watcher.leaves(user), 1);
      }
    }
    assert.equal((await a!.pushlet.presence(room)).count, 2);
  });

  it("disconnect(userId) closes that user's connections on every instance, and only theirs", async () => {
    const authenticate: PushletModuleOptions['authenticate'] = (request) => {
      const user = new URL(request.url ?? '/', 'http://x').searchParams.get('user');
      return user ? { id: user } : false;
    };
    const [a, b] = await instances(2, { authenticate });
    const annOnA = await SseClient.open(`${a!.url}/events?topic=news&user=ann`);
    const annOnB = await WsClient.open(`${b!.wsUrl}/ws?topic=news&user=ann`);
    const bobOnB = await WsClient.open(`${b!.wsUrl}/ws?topic=news&user=bob`);
    subscribers.push(annOnA, annOnB, bobOnB);
    await annOnA.waitForEvents(1, 5_000, 'pushlet:connected');
    await annOnB.waitForEvents('pushlet:connected');
    await bobOnB.waitForEvents('pushlet:connected');
    assert.equal(await a!.pushlet.disconnect('ann', 'signed out everywhere'), 1);
    const [notice] = await annOnA.waitForEvents(1, 5_000, 'pushlet:disconnected');
    assert.equal(notice!.data, 'signed out everywhere');
    assert.deepEqual(await annOnB.waitForClose(), { code: 4002, reason: 'signed out everywhere' });
    await a!.pushlet.publish('news', 'message', 'for bob');
    assert.equal((await bobOnB.waitForMessages(1))[0]!.data, 'for bob');
    assert.equal(bobOnB.closed, undefined);
  });
});
