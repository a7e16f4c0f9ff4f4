import assert from 'node:assert/strict';
import type { Server as HttpServer } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { PushletAuthorizeContext } from '../src/index.js';
import { startApp, type TestApp } from './support/app.js';
import { until } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

const MESSAGE_KEYS = ['data', 'event', 'id', 'timestamp', 'topic'];
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** The endpoint must behave the same whether or not the app uses @nestjs/platform-ws's WsAdapter. */
const MODES: Array<{ name: string; configure?: (app: INestApplication) => void }> = [
  { name: 'without a WebSocket adapter' },
  { name: 'with useWebSocketAdapter(new WsAdapter(app))', configure: (app) => app.useWebSocketAdapter(new WsAdapter(app)) },
];

/** Opens clients for one test and closes them all after it. */
function clientPool() {
  const clients: WsClient[] = [];
  return {
    async open(url: string, options?: Parameters<typeof WsClient.open>[1]): Promise<WsClient> {
      const client = await WsClient.open(url, options);
      clients.push(client);
      return client;
    },
    closeAll(): void {
      for (const client of clients.splice(0)) client.close();
    },
  };
}

for (const mode of MODES) {
  describe(`WebSocket endpoint ${mode.name} (docs/protocol.md, WebSocket)`, () => {
    let t: TestApp;
    const authorized: PushletAuthorizeContext[] = [];
    const pool = clientPool();
    /** Opens a connection and waits for its pushlet:connected frame. */
    const connect = async (query = '', options?: Parameters<typeof WsClient.open>[1]) => {
      const client = await pool.open(`${t.wsUrl}/ws${query}`, options);
      await client.waitForEvents('pushlet:connected');
      return client;
    };
    /** Publishes a broadcast and waits until `clients` have it: everything published before has arrived. */
    let markers = 0;
    const flush = async (...clients: WsClient[]) => {
      const marker = `marker-${++markers}`;
      await t.pushlet.publishToAll('marker', marker);
      await Promise.all(clients.map((client) => client.waitFor((json) => json.data === marker, 5_000, marker)));
    };

    before(async () => {
      t = await startApp(
        {
          heartbeatInterval: 60_000,
          ws: { maxPayload: 4096, commandsPerSecond: 40, allowedOrigins: ['http://allowed.example'] },
          limits: { topicsPerConnection: 3 },
          authorize: (context) => {
            authorized.push(context);
            return !context.topic.startsWith('secret');
          },
        },
        mode.configure,
      );
    });
    afterEach(async () => {
      pool.closeAll();
      // Each test starts with nothing left over from the one before.
      await until(() => t.pushlet.stats().connections.ws === 0 && t.pushlet.stats().subscribers === 0, 5_000, 'every connection released');
    });
    after(async () => {
      await t.close();
    });

    it('sends pushlet:connected first, naming the URL topics, with the resume position as id', async () => {
      const client = await connect('?topic=a&topic=b&topic=a');
      const first = client.received[0]!;
      assert.equal(first.event, 'pushlet:connected');
      assert.deepEqual(JSON.parse(first.data as string), { topics: ['a', 'b'], heartbeat: t.pushlet.heartbeatInterval });
      assert.match(first.id as string, /^\d+-\d+$/);
      assert.match(first.timestamp as string, ISO_UTC);
      assert.equal(client.frames[0]!.binary, true);
    });

    it('sends each message as a binary frame holding exactly the message JSON', async () => {
      const client = await connect('?topic=orders/1');
      const published = await t.pushlet.publish('orders/1', 'shipped', { id: 1 });
      const [message] = await client.waitForMessages(1);
      assert.deepEqual(Object.keys(message!).sort(), MESSAGE_KEYS);
      assert.deepEqual(message, { ...published });
      const frame = client.frames.find((f) => f.json?.id === published.id)!;
      assert.equal(frame.binary, true);
      assert.equal(frame.text, JSON.stringify(published));
    });

    it('subscribes with URL topics to those topics only', async () => {
      const client = await connect('?topic=x&topic=y');
      await t.pushlet.publish('x', 'message', 'to x');
      await t.pushlet.publish('z', 'message', 'to z');
      await t.pushlet.publish('y', 'message', 'to y');
      await flush(client);
      assert.deepEqual(
        client.messages.filter((m) => m.event === 'message').map((m) => m.data),
        ['to x', 'to y'],
      );
    });

    it('subscribes and unsubscribes by command, in text or binary frames, echoing ref', async () => {
      const client = await connect();
      const subscribed = await client.call({ action: 'subscribe', topic: 'dyn', ref: 7 });
      assert.equal(subscribed.event, 'pushlet:subscribed');
      assert.equal(subscribed.topic, 'dyn');
      assert.deepEqual(JSON.parse(subscribed.data as string), { topics: ['dyn'] });
      client.send({ action: 'subscribe', topic: 'dyn2', ref: 'b1' }, true);
      const viaBinary = await client.waitFor((json) => json.ref === 'b1');
      assert.equal(viaBinary.event, 'pushlet:subscribed');
      assert.deepEqual(JSON.parse(viaBinary.data as string), { topics: ['dyn', 'dyn2'] });

      await t.pushlet.publish('dyn', 'message', 'one');
      await client.waitFor((json) => json.data === 'one');

      const unsubscribed = await client.call({ action: 'unsubscribe', topic: 'dyn', ref: 'u' });
      assert.equal(unsubscribed.event, 'pushlet:unsubscribed');
      assert.equal(unsubscribed.topic, 'dyn');
      assert.deepEqual(JSON.parse(unsubscribed.data as string), { topics: ['dyn2'] });
      await t.pushlet.publish('dyn', 'message', 'two');
      await t.pushlet.publish('dyn2', 'message', 'three');
      await flush(client);
      assert.deepEqual(
        client.messages.filter((m) => m.event === 'message').map((m) => m.data),
        ['one', 'three'],
      );
    });

    it('answers subscribing twice and leaving an unsubscribed topic without an error', async () => {
      const client = await connect('?topic=twice');
      const again = await client.call({ action: 'subscribe', topic: 'twice', ref: 1 });
      assert.equal(again.event, 'pushlet:subscribed');
      const leave = await client.call({ action: 'unsubscribe', topic: 'never', ref: 2 });
      assert.equal(leave.event, 'pushlet:unsubscribed');
      await t.pushlet.publish('twice', 'message', 'once');
      await flush(client);
      assert.equal(client.messages.filter((m) => m.data === 'once').length, 1);
    });

    it('answers ping with pushlet:pong carrying the ref', async () => {
      const client = await connect();
      const pong = await client.call({ action: 'ping', ref: 'p-1' });
      assert.equal(pong.event, 'pushlet:pong');
      assert.equal(pong.data, '');
      assert.match(pong.timestamp as string, ISO_UTC);
      client.send({ action: 'ping' });
      await client.waitForEvents('pushlet:pong', 2);
      assert.equal(client.events('pushlet:pong')[1]!.ref, undefined);
    });

    it('answers bad input with pushlet:error and keeps the connection usable', async () => {
      const client = await connect('?topic=ok');
      const cases: Array<{ frame: unknown; ref?: string | number; topic?: string; reason: RegExp }> = [
        { frame: '{not json', reason: /JSON text/ },
        { frame: '[1,2]', reason: /JSON object/ },
        { frame: '42', reason: /JSON object/ },
        { frame: 'null', reason: /JSON object/ },
        { frame: '"subscribe"', reason: /JSON object/ },
        { frame: { action: 'dance', ref: 1 }, ref: 1, reason: /"subscribe", "unsubscribe", "ping", "publish", "presence", "refresh" or "history"/ },
        { frame: { topic: 'a', ref: 2 }, ref: 2, reason: /"subscribe", "unsubscribe", "ping", "publish", "presence", "refresh" or "history"/ },
        { frame: { action: 'subscribe', topic: 5, ref: 3 }, ref: 3, reason: /topic must be a string/ },
        { frame: { action: 'subscribe', ref: 4 }, ref: 4, reason: /topic must be a string/ },
        { frame: { action: 'ping', ref: { x: 1 } }, reason: /ref must be a string/ },
        { frame: { action: 'subscribe', topic: 'a', lastEventId: 9, ref: 5 }, ref: 5, topic: 'a', reason: /lastEventId must be a string/ },
        { frame: { action: 'subscribe', topic: 'a b', ref: 6 }, ref: 6, topic: 'a b', reason: /whitespace/ },
        { frame: { action: 'subscribe', topic: 'pushlet:x', ref: 7 }, ref: 7, topic: 'pushlet:x', reason: /reserved/ },
        { frame: { action: 'subscribe', topic: 'a*', ref: 8 }, ref: 8, topic: 'a*', reason: /segments/ },
        { frame: { action: 'unsubscribe', topic: '#/a', ref: 9 }, ref: 9, topic: '#/a', reason: /segments/ },
        { frame: { action: 'subscribe', topic: 'a//#', ref: 10 }, ref: 10, topic: 'a//#', reason: /segments/ },
        { frame: { action: 'subscribe', topic: '', ref: 11 }, ref: 11, topic: '', reason: /1 to 200/ },
        { frame: { action: 'subscribe', topic: 't'.repeat(201), ref: 12 }, ref: 12, reason: /1 to 200/ },
        { frame: { action: 'subscribe', topic: 'a\u0000b', ref: 13 }, ref: 13, reason: /control characters/ },
      ];
      for (const [index, { frame, ref, topic, reason }] of cases.entries()) {
        client.send(frame);
        const errors = await client.waitForEvents('pushlet:error', index + 1);
        const error = errors[index]!;
        assert.match(error.data as string, reason, JSON.stringify(frame));
        assert.equal(error.ref, ref, JSON.stringify(frame));
        if (topic !== undefined) assert.equal(error.topic, topic, JSON.stringify(frame));
        assert.deepEqual(
          Object.keys(error)
            .filter((k) => !['ref', 'topic'].includes(k))
            .sort(),
          ['data', 'event', 'timestamp'],
        );
      }
      assert.equal(client.closed, undefined);
      const pong = await client.call({ action: 'ping', ref: 'still-alive' });
      assert.equal(pong.event, 'pushlet:pong');
      await t.pushlet.publish('ok', 'message', 'delivered');
      await client.waitFor((json) => json.data === 'delivered');
    });

    it('refuses more subscriptions than limits.topicsPerConnection with pushlet:error', async () => {
      const client = await connect('?topic=l1&topic=l2&topic=l3&topic=l4');
      const connected = client.events('pushlet:connected')[0]!;
      assert.deepEqual(JSON.parse(connected.data as string).topics, ['l1', 'l2', 'l3']);
      const [urlError] = await client.waitForEvents('pushlet:error');
      assert.equal(urlError!.topic, 'l4');
      assert.match(urlError!.data as string, /too many topics/);
      const refused = await client.call({ action: 'subscribe', topic: 'l5', ref: 1 });
      assert.equal(refused.event, 'pushlet:error');
      assert.match(refused.data as string, /too many topics for one connection \(limit 3\)/);
      await client.call({ action: 'unsubscribe', topic: 'l1', ref: 2 });
      const accepted = await client.call({ action: 'subscribe', topic: 'l5', ref: 3 });
      assert.equal(accepted.event, 'pushlet:subscribed');
    });

    it('asks authorize with transport "ws" and the upgrade request, answering a refusal with pushlet:error', async () => {
      authorized.length = 0;
      const client = await connect('?topic=open&topic=secret/url');
      assert.deepEqual(JSON.parse(client.events('pushlet:connected')[0]!.data as string).topics, ['open']);
      const [urlError] = await client.waitForEvents('pushlet:error');
      assert.equal(urlError!.topic, 'secret/url');
      assert.match(urlError!.data as string, /not allowed/);
      const refused = await client.call({ action: 'subscribe', topic: 'secret/cmd', ref: 'r' });
      assert.equal(refused.event, 'pushlet:error');
      assert.equal(refused.topic, 'secret/cmd');
      assert.match(refused.data as string, /not allowed to subscribe to "secret\/cmd"/);
      const context = authorized.find((c) => c.topic === 'secret/cmd')!;
      assert.equal(context.transport, 'ws');
      assert.match(context.request.url ?? '', /^\/ws\?topic=open/);
      await t.pushlet.publish('secret/cmd', 'message', 'hidden');
      await t.pushlet.publish('open', 'message', 'visible');
      await flush(client);
      assert.deepEqual(
        client.messages.filter((m) => m.event === 'message').map((m) => m.data),
        ['visible'],
      );
    });

    it('closes a connection that sends a frame over maxPayload with 1009, and no other', async () => {
      const bystander = await connect('?topic=calm');
      const client = await connect();
      client.send(JSON.stringify({ action: 'ping', pad: 'x'.repeat(5_000) }));
      const closed = await client.waitForClose();
      assert.equal(closed.code, 1009);
      await t.pushlet.publish('calm', 'message', 'still here');
      await bystander.waitFor((json) => json.data === 'still here');
    });

    it('closes a connection that floods commands with 1008, and no other', async () => {
      const bystander = await connect('?topic=calm');
      const client = await connect();
      for (let i = 0; i < 200; i++) client.send({ action: 'ping' });
      const closed = await client.waitForClose();
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, /too many commands/);
      const pong = await bystander.call({ action: 'ping', ref: 'ok' });
      assert.equal(pong.event, 'pushlet:pong');
    });

    it('refuses an upgrade from an Origin not in allowedOrigins with HTTP 403', async () => {
      assert.equal(await WsClient.refusal(`${t.wsUrl}/ws`, { origin: 'http://evil.example' }), 403);
      const allowed = await connect('', { origin: 'http://allowed.example' });
      assert.equal(allowed.received[0]!.event, 'pushlet:connected');
      // No Origin at all: not a browser page (the Go client sends none).
      await connect();
    });

    it('delivers publishToAll to every client once, with no subscriptions or several', async () => {
      const none = await connect();
      const several = await connect('?topic=p&topic=q&topic=r');
      const sent = await t.pushlet.publishToAll('announce', 'to everyone');
      await flush(none, several);
      for (const client of [none, several]) {
        const got = client.events('announce');
        assert.equal(got.length, 1);
        assert.deepEqual(got[0], { ...sent });
        assert.equal(got[0]!.topic, '*');
      }
    });

    it('resumes a topic after subscribe lastEventId: the missed messages in order, once, then live ones', async () => {
      const sent = [];
      for (let i = 1; i <= 5; i++) sent.push(await t.pushlet.publish('resume/cmd', 'message', `m${i}`));
      const client = await connect();
      client.send({ action: 'subscribe', topic: 'resume/cmd', lastEventId: sent[1]!.id, ref: 'res' });
      await client.waitFor((json) => json.ref === 'res');
      await t.pushlet.publish('resume/cmd', 'message', 'm6');
      await flush(client);
      assert.deepEqual(
        client.messages.filter((m) => m.topic === 'resume/cmd').map((m) => m.data),
        ['m3', 'm4', 'm5', 'm6'],
      );
      assert.deepEqual(client.events('pushlet:reset'), []);
      // The replay comes before the reply: the topic is live once pushlet:subscribed arrives.
      const order = client.received.map((json) => json.data === 'm5' || json.event === 'pushlet:subscribed');
      assert.ok(order.indexOf(true) < order.lastIndexOf(true));
      assert.equal(client.received.filter((json) => json.event === 'pushlet:subscribed')[0]!.ref, 'res');
    });

    it('sends pushlet:reset before continuing when a subscribe lastEventId cannot be resumed', async () => {
      const client = await connect();
      client.send({ action: 'subscribe', topic: 'resume/unknown', lastEventId: 'not-an-id', ref: 9 });
      const subscribed = await client.waitFor((json) => json.event === 'pushlet:subscribed');
      const [reset] = client.events('pushlet:reset');
      assert.ok(reset, 'a pushlet:reset frame');
      assert.equal(reset.id, undefined, 'a client id is never echoed');
      assert.equal(reset.ref, 9);
      assert.deepEqual(JSON.parse(reset.data as string).topics, ['resume/unknown']);
      assert.ok(client.received.indexOf(reset) < client.received.indexOf(subscribed));
      await t.pushlet.publish('resume/unknown', 'message', 'live');
      await client.waitFor((json) => json.data === 'live');
    });

    it('resumes the URL topics and broadcasts after ?lastEventId=', async () => {
      const first = await t.pushlet.publish('resume/url', 'message', 'u1');
      await t.pushlet.publish('resume/url', 'message', 'u2');
      await t.pushlet.publishToAll('everyone', 'b1');
      await t.pushlet.publish('resume/other', 'message', 'not mine');
      const client = await connect(`?topic=resume/url&lastEventId=${first.id}`);
      assert.equal(client.received[0]!.id, first.id);
      await flush(client);
      assert.deepEqual(
        client.messages.filter((m) => m.event !== 'marker').map((m) => m.data),
        ['u2', 'b1'],
      );
      const unknown = await connect('?topic=resume/url&lastEventId=1-0');
      const [reset] = await unknown.waitForEvents('pushlet:reset');
      assert.equal(reset!.id, undefined);
      assert.deepEqual(JSON.parse(reset!.data as string).topics, ['resume/url']);
    });

    it('counts open connections in stats().connections.ws and releases everything on close', async () => {
      const one = await connect('?topic=count/a');
      const two = await connect();
      await two.call({ action: 'subscribe', topic: 'count/b', ref: 1 });
      const during = t.pushlet.stats();
      assert.equal(during.connections.ws, 2);
      assert.equal(during.topics, 2);
      // count/a and count/b, plus broadcasts once per connection.
      assert.equal(during.subscribers, 4);
      one.close();
      two.close();
      await until(() => t.pushlet.stats().connections.ws === 0, 5_000, 'connections released');
      assert.equal(t.pushlet.stats().subscribers, 0);
      assert.equal(t.pushlet.stats().topics, 0);
    });
  });
}

describe('WebSocket options', () => {
  const pool = clientPool();
  const apps: TestApp[] = [];
  const start = async (...args: Parameters<typeof startApp>) => {
    const app = await startApp(...args);
    apps.push(app);
    return app;
  };
  afterEach(async () => {
    pool.closeAll();
    for (const app of apps.splice(0)) await app.close();
  });

  it('sends text frames with ws.frame "text"', async () => {
    const t = await start({ ws: { frame: 'text' } });
    const client = await pool.open(`${t.wsUrl}/ws?topic=t`);
    await client.waitForEvents('pushlet:connected');
    const published = await t.pushlet.publish('t', 'message', 'as text');
    await client.waitFor((json) => json.id === published.id);
    assert.ok(client.frames.length >= 2);
    assert.ok(client.frames.every((frame) => !frame.binary));
  });

  it('mounts at ws.path, and nowhere with ws: false', async () => {
    const custom = await start({ ws: { path: 'push' } });
    const client = await pool.open(`${custom.wsUrl}/push`);
    await client.waitForEvents('pushlet:connected');
    assert.equal(await WsClient.refusal(`${custom.wsUrl}/ws`), 404);
    const off = await start({ ws: false });
    assert.equal(await WsClient.refusal(`${off.wsUrl}/ws`), 404);
  });

  it('refuses a connection over maxConnectionsPerAddress with close 1013, and counts only open ones', async () => {
    const t = await start({ limits: { maxConnectionsPerAddress: 2 } });
    const one = await pool.open(`${t.wsUrl}/ws`);
    await pool.open(`${t.wsUrl}/ws`);
    const third = await pool.open(`${t.wsUrl}/ws`);
    const closed = await third.waitForClose();
    assert.equal(closed.code, 1013);
    assert.match(closed.reason, /too many connections/);
    assert.equal(t.pushlet.stats().connections.ws, 2);
    one.close();
    await until(() => t.pushlet.stats().connections.ws === 1, 5_000, 'a slot is free');
    const fourth = await pool.open(`${t.wsUrl}/ws`);
    await fourth.waitForEvents('pushlet:connected');
  });

  it('leaves upgrades of other paths to their own listeners', async () => {
    const { WebSocketServer } = await import('ws');
    const other = new WebSocketServer({ noServer: true });
    other.on('connection', (socket) => socket.send('other server'));
    const t = await start({}, (app) => {
      (app.getHttpServer() as HttpServer).on('upgrade', (request, socket, head) => {
        if (request.url === '/other') other.handleUpgrade(request, socket, head, (ws) => other.emit('connection', ws, request));
      });
    });
    try {
      const theirs = await pool.open(`${t.wsUrl}/other`);
      await until(() => theirs.frames.length === 1, 5_000, 'a frame from the other server');
      assert.equal(theirs.frames[0]!.text, 'other server');
      const ours = await pool.open(`${t.wsUrl}/ws`);
      await ours.waitForEvents('pushlet:connected');
    } finally {
      pool.closeAll();
      other.close();
    }
  });
});

describe('WebSocket heartbeat', () => {
  const pool = clientPool();
  let t: TestApp | undefined;
  afterEach(async () => {
    pool.closeAll();
    await t?.close();
  });

  it('pings every interval, terminates a peer that does not answer, and follows setHeartbeatInterval', async () => {
    t = await startApp({ heartbeatInterval: 60_000 });
    const answering = await pool.open(`${t.wsUrl}/ws`);
    const silent = await pool.open(`${t.wsUrl}/ws`, { autoPong: false });
    await answering.waitForEvents('pushlet:connected');
    await silent.waitForEvents('pushlet:connected');
    t.pushlet.setHeartbeatInterval(300);
    await answering.waitForPings(2);
    const closed = await silent.waitForClose();
    assert.equal(closed.code, 1006);
    assert.equal(answering.closed, undefined);
    assert.ok(silent.pings >= 1);
  });
});

describe('WebSocket shutdown', () => {
  it('closes every client with 1001 on app.close() and takes its upgrade listener off the server', async () => {
    const t = await startApp({ heartbeatInterval: 60_000 });
    const server = t.app.getHttpServer() as HttpServer;
    const clients = await Promise.all([WsClient.open(`${t.wsUrl}/ws?topic=a`), WsClient.open(`${t.wsUrl}/ws`)]);
    try {
      await Promise.all(clients.map((client) => client.waitForEvents('pushlet:connected')));
      assert.equal(server.listenerCount('upgrade'), 1);
      await t.close();
      for (const client of clients) {
        const closed = await client.waitForClose();
        assert.equal(closed.code, 1001);
      }
      assert.equal(server.listenerCount('upgrade'), 0);
      assert.equal(t.pushlet.stats().connections.ws, 0);
    } finally {
      for (const client of clients) client.close();
      await t.close();
    }
  });

  it('cuts a client that does not complete the closing handshake, and still returns', async () => {
    const t = await startApp({ heartbeatInterval: 60_000 });
    const client = await WsClient.open(`${t.wsUrl}/ws`);
    try {
      await client.waitForEvents('pushlet:connected');
      // Stop reading: the close frame is never answered.
      (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
      await t.close();
      assert.equal(t.pushlet.stats().connections.ws, 0);
    } finally {
      client.close();
    }
  });
});
