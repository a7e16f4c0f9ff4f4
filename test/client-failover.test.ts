import assert from 'node:assert/strict';
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import { WebSocket } from 'ws';
import { PushletClient, type TransportChoice } from '../src/client/index.js';
import { startApp, type TestApp } from './support/app.js';
import { BROADCAST, ClientLedger, judge, missing, publishedWhileAway, SteadyPublisher } from './support/client-ledger.js';
import { Instances } from './support/distributed.js';
import { RedisServer } from './support/redis.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { until, within } from './support/wait.js';

/** Three clients, three topics each, overlapping; `f-noise` is published too, subscribed by none; `*`: broadcasts. */
const CLIENT_TOPICS = [
  ['f0', 'f1', 'f2'],
  ['f1', 'f2', 'f3'],
  ['f2', 'f3', 'f4'],
] as const;
const PUBLISHED_TOPICS = ['f0', 'f1', 'f2', 'f3', 'f4', 'f-noise', BROADCAST];
const PUBLISH_GAP_MS = 8;
/** Publications per topic that each phase (warm-up, outage, after recovery) must see at least. */
const PER_PHASE = 8;

interface Mode {
  readonly name: string;
  readonly transport: TransportChoice;
  readonly upgrades: 'pass' | 'refuse';
  /** The transport the client must end up on. */
  readonly expect: 'websocket' | 'sse';
}

const MODES: readonly Mode[] = [
  { name: 'websocket', transport: 'websocket', upgrades: 'pass', expect: 'websocket' },
  { name: 'sse', transport: 'sse', upgrades: 'pass', expect: 'sse' },
  { name: 'auto behind a proxy that refuses upgrades (falls back to SSE)', transport: 'auto', upgrades: 'refuse', expect: 'sse' },
];

/** An app instance whose death can be abrupt: every TCP connection it ever accepted is tracked. */
interface Instance {
  readonly app: TestApp;
  readonly port: number;
  /** Stops listening and destroys every socket at once (no close frame, no end of stream), then shuts down. */
  kill(): Promise<void>;
}

/** One run: two instances on one Redis, a proxy in front, three clients through it, a publisher. */
interface Scene {
  a: Instance;
  b: Instance;
  readonly keyPrefix: string;
  readonly proxy: TcpProxy;
  readonly ledgers: ClientLedger[];
  readonly publisher: SteadyPublisher;
  /** The instances the publisher uses now (change it with {@link publishThrough}). */
  readonly live: Instance[];
  /** Each client's drops before the fault. */
  readonly dropsBefore: number[];
}

describe('client SDK failover: two instances on one Redis, a proxy in front, a publisher running', () => {
  let redis: RedisServer;
  const apps: TestApp[] = [];
  const proxies: TcpProxy[] = [];
  const clients: PushletClient[] = [];
  const publishers: SteadyPublisher[] = [];

  before(async () => {
    redis = await RedisServer.start();
  });
  afterEach(async () => {
    const steps = [
      ...publishers.splice(0).map((p) => () => p.stop()),
      ...clients.splice(0).map((c) => () => c.close()),
      ...proxies.splice(0).map((p) => () => p.close()),
      ...apps.splice(0).map((a) => () => within(a.close(), 10_000, 'app.close()')),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch {
        // One failed close must not strand the rest.
      }
    }
  });
  after(async () => {
    await redis?.stop();
  });

  async function instance(keyPrefix: string, port = 0): Promise<Instance> {
    const app = await startApp({ heartbeatInterval: 60_000, redis: { url: redis.url, keyPrefix } }, undefined, port);
    apps.push(app);
    const server = app.app.getHttpServer() as HttpServer;
    const sockets = new Set<Socket>();
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    return {
      app,
      port: Number(new URL(app.url).port),
      kill: async () => {
        server.close();
        for (const socket of sockets) socket.destroy();
        await within(app.close(), 10_000, 'app.close() of the killed instance');
      },
    };
  }

  async function scene(mode: Mode): Promise<Scene> {
    const keyPrefix = Instances.freshPrefix();
    const a = await instance(keyPrefix);
    const b = await instance(keyPrefix);
    const proxy = await TcpProxy.start(a.port, { upgrades: mode.upgrades });
    proxies.push(proxy);
    const ledgers = CLIENT_TOPICS.map((topics, i) => {
      const client = new PushletClient(proxy.url, { WebSocket, transport: mode.transport, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 });
      clients.push(client);
      return new ClientLedger(`client ${i} (${topics.join(',')})`, client, topics);
    });
    await within(Promise.all(ledgers.map((l) => l.subscribe())), 10_000, 'every subscription confirmed');
    for (const l of ledgers) assert.equal(l.client.transportKind, mode.expect, `${l.name} transport`);
    const live = [a, b];
    const publisher = new SteadyPublisher(PUBLISHED_TOPICS, () => live.map((i) => i.app), PUBLISH_GAP_MS);
    publishers.push(publisher);
    publisher.start();
    await until(
      () => ledgers.every((l) => l.counted.every((t) => l.received.get(t)!.length >= PER_PHASE)),
      10_000,
      'live messages on every topic of every client',
    );
    return { a, b, keyPrefix, proxy, ledgers, publisher, live, dropsBefore: ledgers.map((l) => l.drops) };
  }

  function publishThrough(s: Scene, ...instances: Instance[]): void {
    s.live.splice(0, s.live.length, ...instances);
  }

  /** Lets `PER_PHASE` more messages per topic be published. */
  async function publishMore(s: Scene, what: string): Promise<void> {
    const from = PUBLISHED_TOPICS.map((t) => s.publisher.count(t));
    await until(() => PUBLISHED_TOPICS.every((t, i) => s.publisher.count(t) >= from[i]! + PER_PHASE), 10_000, what);
  }

  async function allDropped(s: Scene): Promise<void> {
    await until(() => s.ledgers.every((l, i) => l.drops > s.dropsBefore[i]! && l.client.state !== 'connected'), 5_000, 'every client noticing the drop');
  }

  async function allBack(s: Scene): Promise<void> {
    await until(() => s.ledgers.every((l) => l.client.state === 'connected'), 10_000, 'every client connected again');
  }

  /**
   * Stops the publisher, waits (bounded) until every client has every acknowledged message,
   * then asserts: no duplicate, no reordering, no gap, no stray message; no reset at all (the
   * history, 1,000 per topic, covers the outage); each client dropped, came back on its
   * transport, and missed messages while away (so the resume really replayed some).
   */
  async function verify(t: TestContext, s: Scene, mode: Mode): Promise<void> {
    await publishMore(s, 'messages after the recovery');
    await s.publisher.stop();
    await until(() => s.ledgers.every((l) => missing(l, s.publisher).length === 0), 5_000, 'every client caught up').catch(() => undefined);
    const all = [...s.publisher.publications.values()].flat();
    t.diagnostic(
      `published ${all.length} (${all.filter((p) => p.fate === 'failed').length} failed); ` +
        s.ledgers
          .map(
            (l, i) =>
              `${l.name}: got ${[...l.received.values()].flat().length}, ${publishedWhileAway(l, s.publisher, s.dropsBefore[i])} while away, ${l.drops - s.dropsBefore[i]!} drops`,
          )
          .join('; '),
    );
    s.ledgers.forEach((l, i) => {
      const faultOutages = s.dropsBefore[i]!;
      assert.deepEqual(judge(l, s.publisher), [], `${l.name}; errors seen: ${l.errors.slice(0, 5).join(' | ')}`);
      assert.deepEqual(l.resets, [], `${l.name}: no reset while history covers the outage`);
      assert.ok(l.drops > faultOutages, `${l.name} lost its connection in the fault`);
      assert.equal(l.client.state, 'connected', `${l.name} is connected at the end`);
      assert.equal(l.client.transportKind, mode.expect, `${l.name} transport at the end`);
      assert.ok(publishedWhileAway(l, s.publisher, faultOutages) > 0, `${l.name}: messages of its topics were published while the fault kept it away`);
    });
  }

  for (const mode of MODES) {
    describe(mode.name, () => {
      it('the instance the clients are on is killed; the proxy then sends them to the other', async (t) => {
        const s = await scene(mode);
        publishThrough(s, s.b);
        await s.a.kill();
        await allDropped(s);
        await publishMore(s, 'messages published while the clients are away');
        s.proxy.pointAt(s.b.port);
        await allBack(s);
        await verify(t, s, mode);
      });

      it('the server restarts on the same port (same Redis)', async (t) => {
        const s = await scene(mode);
        publishThrough(s, s.b);
        await within(s.a.app.close(), 10_000, 'app.close()');
        await allDropped(s);
        await publishMore(s, 'messages published while the server is down');
        s.a = await instance(s.keyPrefix, s.a.port);
        publishThrough(s, s.a, s.b);
        await allBack(s);
        await verify(t, s, mode);
      });

      it('the TCP connections are cut without a close frame while the publisher runs', async (t) => {
        const s = await scene(mode);
        s.proxy.cut();
        await allDropped(s);
        await publishMore(s, 'messages published while the link is cut');
        s.proxy.restore();
        await allBack(s);
        await verify(t, s, mode);
      });
    });
  }
});

describe('the failover ledger catches what it must (no network)', () => {
  /** Publications 1..5 of `t` (`failed` ones as given), a client that got `got`, and its resets. */
  function problems(got: number[], options: { failed?: number[]; resets?: Array<{ topics: string[]; afterSeq: number }> } = {}): string[] {
    const client = new PushletClient('http://127.0.0.1:9', { transport: 'sse' });
    try {
      const publisher = new SteadyPublisher(['t'], () => [], 1);
      const ledger = new ClientLedger('c', client, ['t']);
      for (let seq = 1; seq <= 5; seq++) {
        publisher.publications
          .get('t')!
          .push({ topic: 't', seq, via: 'x', startedAt: seq * 10, fate: options.failed?.includes(seq) ? 'failed' : 'acknowledged' });
      }
      for (const reset of options.resets ?? []) ledger.resets.push({ topics: reset.topics, reason: 'test', at: reset.afterSeq * 10 + 5 });
      for (const seq of got) ledger.received.get('t')!.push({ seq, id: String(seq), at: 0 });
      return judge(ledger, publisher);
    } finally {
      client.close();
    }
  }

  it('accepts everything once and in order, and a missing failed publication', () => {
    assert.deepEqual(problems([1, 2, 3, 4, 5]), []);
    assert.deepEqual(problems([1, 2, 4, 5], { failed: [3] }), []);
  });

  it('names a dropped message, a duplicate, a reordering and a message never published', () => {
    assert.match(problems([1, 2, 4, 5]).join(), /1 acknowledged messages never arrived.*t #3/);
    assert.match(problems([1, 2, 2, 3, 4, 5]).join(), /duplicate #2/);
    assert.match(problems([1, 3, 2, 4, 5]).join(), /#2 arrived after #3/);
    assert.match(problems([1, 2, 3, 4, 5, 6]).join(), /#6 was never published/);
  });

  it('excuses a gap only by a reset of that topic received after the missing message was published', () => {
    assert.deepEqual(problems([1, 2, 4, 5], { resets: [{ topics: ['t'], afterSeq: 3 }] }), []);
    assert.match(problems([1, 2, 4, 5], { resets: [{ topics: ['t'], afterSeq: 2 }] }).join(), /t #3/);
    assert.match(problems([1, 2, 4, 5], { resets: [{ topics: ['other'], afterSeq: 4 }] }).join(), /t #3/);
  });
});
