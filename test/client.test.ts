import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { backoffDelay, PushletClient, PushletSubscribeError, type ClientMessage, type PushletClientOptions, type ResetData } from '../src/client/index.js';
import type { PushletModuleOptions } from '../src/index.js';
import { startApp, type TestApp } from './support/app.js';
import { matches } from '../src/client/client-core.js';
import { isPattern, matchesPattern } from '../src/protocol/topics.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { until, within } from './support/wait.js';

const FAST: PushletClientOptions = { minReconnectDelayMs: 20, maxReconnectDelayMs: 200 };
const TRANSPORTS = ['websocket', 'sse'] as const;

describe('client SDK', () => {
  const apps: TestApp[] = [];
  const clients: PushletClient[] = [];
  const proxies: TcpProxy[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const proxy of proxies.splice(0)) await proxy.close();
    for (const app of apps.splice(0)) await app.close();
  });

  async function app(options: PushletModuleOptions = {}, port = 0): Promise<TestApp> {
    const t = await startApp({ heartbeatInterval: 60_000, ...options }, undefined, port);
    apps.push(t);
    return t;
  }

  function client(url: string, options: PushletClientOptions): PushletClient {
    const c = new PushletClient(url, { WebSocket, ...FAST, ...options });
    clients.push(c);
    return c;
  }

  /** Collects the data of every message a subscription's handler gets, and the client's resets. */
  function recorder(c: PushletClient) {
    const data: string[] = [];
    const messages: ClientMessage[] = [];
    const resets: Array<ResetData & { at: number }> = [];
    c.on('reset', (reset) => resets.push({ ...reset, at: Date.now() }));
    return { data, messages, resets, handler: (m: ClientMessage) => (messages.push(m), data.push(m.data)) };
  }

  for (const transport of TRANSPORTS) {
    describe(`over ${transport}`, () => {
      it('subscribes, resolves ready, delivers messages in order and stops after unsubscribe', async () => {
        const t = await app();
        const c = client(t.url, { transport });
        const states: string[] = [];
        c.on('state', (s) => states.push(s));
        const rec = recorder(c);
        const sub = c.subscribe('news', rec.handler);
        assert.equal(sub.state, 'subscribing');
        await within(sub.ready, 5_000, 'ready');
        assert.equal(sub.state, 'subscribed');
        assert.equal(c.state, 'connected');
        await t.pushlet.publish('news', 'headline', 'one');
        await t.pushlet.publish('news', 'headline', { n: 2 });
        await until(() => rec.data.length === 2, 5_000, 'two messages');
        assert.deepEqual(rec.data, ['one', '{"n":2}']);
        assert.equal(rec.messages[0]!.event, 'headline');
        assert.equal(rec.messages[0]!.topic, 'news');
        assert.match(rec.messages[0]!.timestamp ?? '', /^\d{4}-\d\d-\d\dT/);
        assert.equal(c.lastEventId, rec.messages[1]!.id);
        assert.deepEqual(states, ['connecting', 'connected']);

        sub.unsubscribe();
        assert.equal(sub.state, 'unsubscribed');
        const other = c.subscribe('other', rec.handler);
        await within(other.ready, 5_000, 'ready of a second topic');
        await t.pushlet.publish('news', 'headline', 'not for us');
        await t.pushlet.publish('other', 'message', 'three');
        await until(() => rec.data.length === 3, 5_000, 'the third message');
        assert.deepEqual(rec.data, ['one', '{"n":2}', 'three']);
      });

      it('opens one connection for every subscription made in the same tick', async () => {
        // Without a token function the first connection used to start inside the first
        // subscribe(): SSE then opened a second stream for the others (and flickered `connecting`).
        const requests = new Map<unknown, string[]>();
        const t = await app({
          authorize: ({ request }) => {
            requests.set(request, new URL(request.url ?? '/', 'http://x').searchParams.getAll('topic').sort());
            return true;
          },
        });
        const c = client(t.url, { transport });
        const states: string[] = [];
        c.on('state', (s) => states.push(s));
        const subscriptions = [c.subscribe('a', () => undefined), c.subscribe(['b', 'c'], () => undefined), c.subscribe('d', () => undefined)];
        await within(Promise.all(subscriptions.map((s) => s.ready)), 5_000, 'ready');
        assert.deepEqual([...requests.values()], [['a', 'b', 'c', 'd']]);
        assert.deepEqual(states, ['connecting', 'connected']);
      });

      it('keeps the connection when a subscription is replaced by another to the same topic in the same tick', async () => {
        const requests = new Set<unknown>();
        const t = await app({
          authorize: ({ request }) => {
            requests.add(request);
            return true;
          },
        });
        const c = client(t.url, { transport });
        const first = c.subscribe('a', () => undefined);
        await within(first.ready, 5_000, 'ready');
        const states: string[] = [];
        c.on('state', (s) => states.push(s));
        // As a page's component unmounted and mounted again in one render.
        first.unsubscribe();
        const rec = recorder(c);
        const second = c.subscribe('a', rec.handler);
        await within(second.ready, 5_000, 'the second subscription ready');
        await t.pushlet.publish('a', 'message', 'still here');
        await until(() => rec.data.length === 1, 5_000, 'the message');
        assert.deepEqual(rec.data, ['still here']);
        assert.equal(requests.size, 1, 'one connection');
        assert.deepEqual(states, []);
      });

      it('routes each message to the subscriptions of its own topic; broadcasts reach the message event only', async () => {
        const t = await app();
        const c = client(t.url, { transport });
        const a = recorder(c);
        const b = recorder(c);
        const all: string[] = [];
        c.on('message', (m) => all.push(`${m.topic}:${m.data}`));
        await within(Promise.all([c.subscribe('a', a.handler).ready, c.subscribe('b', b.handler).ready]), 5_000, 'ready');
        await t.pushlet.publish('a', 'message', 'to a');
        await t.pushlet.publishToAll('message', 'to all');
        await t.pushlet.publish('b', 'message', 'to b');
        await until(() => all.length === 3, 5_000, 'three messages');
        assert.deepEqual(all, ['a:to a', '*:to all', 'b:to b']);
        assert.deepEqual(a.data, ['to a']);
        assert.deepEqual(b.data, ['to b']);
      });

      it('routes messages to pattern subscriptions (orders/*, users/42/#), each handler once, exact topics too', async () => {
        const t = await app();
        const c = client(t.url, { transport });
        const star = recorder(c);
        const hash = recorder(c);
        const exact = recorder(c);
        const all: string[] = [];
        c.on('message', (m) => all.push(`${m.topic}:${m.data}`));
        await within(
          Promise.all([
            c.subscribe(['orders/*', 'orders/1'], star.handler).ready,
            c.subscribe('users/42/#', hash.handler).ready,
            c.subscribe('orders/1', exact.handler).ready,
          ]),
          5_000,
          'ready',
        );
        for (const topic of ['orders/1', 'orders/1/items', 'orders', 'users/42', 'users/42/a/b', 'users/420', 'orders/2'])
          await t.pushlet.publish(topic, 'message', topic);
        await t.pushlet.publishToAll('message', 'to all');
        await until(() => all.length === 5, 5_000, 'five messages');
        assert.deepEqual(all, ['orders/1:orders/1', 'users/42:users/42', 'users/42/a/b:users/42/a/b', 'orders/2:orders/2', '*:to all']);
        assert.deepEqual(star.data, ['orders/1', 'orders/2']);
        assert.deepEqual(hash.data, ['users/42', 'users/42/a/b']);
        assert.deepEqual(exact.data, ['orders/1']);
      });

      it('rejects ready for a topic the server refuses, and keeps the others', async () => {
        const t = await app({ authorize: ({ topic }) => topic !== 'secret' });
        const c = client(t.url, { transport });
        const rec = recorder(c);
        await within(c.subscribe('open', rec.handler).ready, 5_000, 'ready');
        const refused = c.subscribe('secret', rec.handler);
        await assert.rejects(within(refused.ready, 5_000, 'refusal'), (error: unknown) => {
          assert.ok(error instanceof PushletSubscribeError);
          assert.equal(error.topic, 'secret');
          return true;
        });
        assert.equal(refused.state, 'unsubscribed');
        await until(() => c.state === 'connected', 5_000, 'connected again');
        await t.pushlet.publish('open', 'message', 'still here');
        await until(() => rec.data.length === 1, 5_000, 'a message of the topic that was allowed');
        assert.deepEqual(rec.data, ['still here']);
      });

      it('survives a server restart on the same port with a publisher running: every message once and in order, or a reset', async () => {
        let current: TestApp | undefined = await app();
        const port = Number(new URL(current.url).port);
        const c = client(current.url, { transport });
        const rec = recorder(c);
        await within(c.subscribe('ticks', rec.handler).ready, 5_000, 'ready');
        const published: Array<{ n: number; at: number }> = [];
        let n = 0;
        let publishing: 'on' | 'off' = 'on';
        const publisher = (async () => {
          while (publishing === 'on') {
            const target = current;
            if (target) {
              const next = ++n;
              try {
                await target.pushlet.publish('ticks', 'tick', String(next));
                published.push({ n: next, at: Date.now() });
              } catch {
                // The app is closing: that message was not published.
              }
            }
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        })();
        await until(() => rec.data.length >= 10, 5_000, 'messages before the restart');
        const first = current;
        current = undefined;
        await first.close();
        current = await app({}, port);
        const afterRestart = n;
        await until(() => c.state === 'connected' && Number(rec.data.at(-1)) > afterRestart + 10, 10_000, 'messages of the new server');
        publishing = 'off';
        await publisher;
        const last = published.at(-1)!.n;
        await until(() => rec.data.includes(String(last)), 10_000, 'the last message published');

        const got = rec.data.map(Number);
        for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, `in order, no duplicate: ${got[i - 1]} then ${got[i]}`);
        const missing = published.filter((p) => !got.includes(p.n));
        if (missing.length > 0) {
          assert.ok(rec.resets.length > 0, `missed ${missing.length} messages without a reset`);
          const resetAt = rec.resets[0]!.at;
          assert.deepEqual(
            missing.filter((p) => p.at > resetAt),
            [],
            'nothing published after the reset is missing',
          );
          assert.deepEqual(rec.resets[0]!.topics, ['ticks']);
        }
      });

      it('resumes after a TCP cut without a close frame: what was published meanwhile arrives once, in order', async () => {
        const t = await app();
        const proxy = await TcpProxy.start(Number(new URL(t.url).port));
        proxies.push(proxy);
        const c = client(proxy.url, { transport });
        const rec = recorder(c);
        await within(c.subscribe('feed', rec.handler).ready, 5_000, 'ready');
        for (let i = 1; i <= 5; i++) await t.pushlet.publish('feed', 'message', String(i));
        await until(() => rec.data.length === 5, 5_000, 'five messages');
        proxy.cut();
        await until(() => c.state === 'connecting', 5_000, 'the client noticing the cut');
        for (let i = 6; i <= 10; i++) await t.pushlet.publish('feed', 'message', String(i));
        proxy.restore();
        await until(() => rec.data.length >= 10 && c.state === 'connected', 10_000, 'the missed messages');
        await t.pushlet.publish('feed', 'message', '11');
        await until(() => rec.data.length >= 11, 5_000, 'a live message');
        assert.deepEqual(rec.data, ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11']);
        assert.deepEqual(rec.resets, []);
      });

      it('close() leaves nothing behind: Node exits by itself', async () => {
        const t = await app();
        const child = spawn(process.execPath, [fileURLToPath(new URL('./support/client-exit-child.js', import.meta.url)), t.url, transport], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
        const exited = once(child, 'exit');
        try {
          await until(() => out.includes('ready'), 5_000, 'the child subscribed');
          await t.pushlet.publish('exit', 'message', 'bye');
          const [code] = await within(exited, 10_000, 'the child to exit after close() (anything left behind keeps it alive for good)');
          assert.equal(code, 0);
          assert.equal(out, 'ready\nmessage bye\n');
        } finally {
          child.kill();
        }
      });

      it('close() settles state and refuses further use', async () => {
        const t = await app();
        const c = client(t.url, { transport });
        await within(c.subscribe('x', () => undefined).ready, 5_000, 'ready');
        const pending = c.subscribe('y', () => undefined);
        c.close();
        assert.equal(c.state, 'disconnected');
        await assert.rejects(pending.ready, /closed/);
        assert.throws(() => c.subscribe('x', () => undefined), /closed/);
      });
    });
  }

  it('WebSocket: a late pong drops a half-open connection, and the client resumes', async () => {
    const t = await app();
    const proxy = await TcpProxy.start(Number(new URL(t.url).port));
    proxies.push(proxy);
    const c = client(proxy.url, { transport: 'websocket', pingIntervalMs: 100, pingTimeoutMs: 200 });
    const rec = recorder(c);
    await within(c.subscribe('feed', rec.handler).ready, 5_000, 'ready');
    await t.pushlet.publish('feed', 'message', '1');
    await until(() => rec.data.length === 1, 5_000, 'a message');
    const errors: string[] = [];
    c.on('error', (error) => errors.push(error.message));
    proxy.freeze();
    await t.pushlet.publish('feed', 'message', '2');
    await until(() => rec.data.length === 2, 5_000, 'the message published while the link was frozen');
    assert.deepEqual(rec.data, ['1', '2']);
    assert.ok(
      errors.some((e) => /no pong/.test(e)),
      errors.join('; '),
    );
  });

  it('SSE: a stream silent past sseIdleTimeoutMs (a half-open link) is reconnected, and the client resumes', async () => {
    const t = await app({ heartbeatInterval: 100 });
    const proxy = await TcpProxy.start(Number(new URL(t.url).port));
    proxies.push(proxy);
    const c = client(proxy.url, { transport: 'sse', sseIdleTimeoutMs: 300 });
    const rec = recorder(c);
    await within(c.subscribe('feed', rec.handler).ready, 5_000, 'ready');
    await t.pushlet.publish('feed', 'message', '1');
    await until(() => rec.data.length === 1, 5_000, 'a message');
    await new Promise((resolve) => setTimeout(resolve, 500)); // heartbeats keep a quiet stream alive
    assert.equal(c.state, 'connected');
    const errors: string[] = [];
    c.on('error', (error) => errors.push(error.message));
    proxy.freeze();
    await t.pushlet.publish('feed', 'message', '2');
    await until(() => rec.data.length === 2, 5_000, 'the message published while the link was frozen');
    assert.deepEqual(rec.data, ['1', '2']);
    assert.ok(
      errors.some((e) => /no data within 300 ms/.test(e)),
      errors.join('; '),
    );
  });

  it('auto falls back to SSE when the server has no WebSocket endpoint', async () => {
    const t = await app({ ws: false });
    const c = client(t.url, { transport: 'auto' });
    const rec = recorder(c);
    await within(c.subscribe('news', rec.handler).ready, 5_000, 'ready');
    assert.equal(c.transportKind, 'sse');
    await t.pushlet.publish('news', 'message', 'over sse');
    await until(() => rec.data.length === 1, 5_000, 'a message');
    assert.deepEqual(rec.data, ['over sse']);
  });

  it('auto started while the server is down settles on WebSocket once it is up', async () => {
    const probe = await startApp({ heartbeatInterval: 60_000 });
    const port = Number(new URL(probe.url).port);
    await probe.close();
    const c = client(probe.url, { transport: 'auto' });
    const errors: string[] = [];
    c.on('error', (error) => errors.push(error.message));
    const sub = c.subscribe('news', () => undefined);
    await until(() => errors.length >= 2, 5_000, 'a few failed attempts');
    await app({}, port);
    await within(sub.ready, 5_000, 'ready once the server is up');
    assert.equal(c.transportKind, 'websocket');
  });

  it('auto uses WebSocket when the server has it', async () => {
    const t = await app();
    const c = client(t.url, { transport: 'auto' });
    await within(c.subscribe('news', () => undefined).ready, 5_000, 'ready');
    assert.equal(c.transportKind, 'websocket');
  });

  it('sends the token on every connect: query parameter on WebSocket, Bearer header on SSE', async () => {
    const seen: string[] = [];
    const t = await app({
      authorize: ({ transport, request }) => {
        const url = new URL(request.url ?? '/', 'http://x');
        seen.push(transport === 'ws' ? `ws:${url.searchParams.get('token')}` : `sse:${request.headers.authorization}`);
        return true;
      },
    });
    let calls = 0;
    const token = async () => `t${++calls}`;
    for (const transport of TRANSPORTS) {
      const c = client(t.url, { transport, token });
      await within(c.subscribe('a', () => undefined).ready, 5_000, 'ready');
      c.close();
    }
    assert.deepEqual(seen, ['ws:t1', 'sse:Bearer t2']);
  });
});

describe("the client's pattern matching", () => {
  it("agrees with the server's (protocol/topics.ts) on every case", () => {
    const keys = ['orders/*', 'users/42/#', '*', '#', '*/x', 'a/*/c/#', 'orders', 'a', 'a/b'];
    const topics = ['orders/1', 'orders/1/items', 'orders', 'orders/', 'users/42', 'users/42/a', 'users/420', 'a', 'a/b', 'b/x', 'a/q/c', 'a/q/c/d', '', '/x'];
    // Not the broadcast topic `*`: the client never asks about it (broadcasts reach the message event only).
    for (const key of keys) {
      for (const topic of topics) {
        const server = isPattern(key) && matchesPattern(key, topic);
        assert.equal(matches(key, topic), server, `${key} ~ ${topic}`);
      }
    }
  });
});

describe('backoffDelay', () => {
  it('draws uniformly between the minimum and a ceiling that doubles per attempt up to the maximum', () => {
    assert.equal(
      backoffDelay(0, 100, 10_000, () => 0),
      100,
    );
    assert.equal(
      backoffDelay(0, 100, 10_000, () => 1),
      200,
      'the first attempt is jittered too',
    );
    assert.equal(
      backoffDelay(3, 100, 10_000, () => 1),
      900,
    );
    assert.equal(
      backoffDelay(3, 100, 10_000, () => 0.5),
      500,
    );
    assert.equal(
      backoffDelay(20, 100, 10_000, () => 1),
      10_000,
    );
    assert.equal(
      backoffDelay(5_000, 100, 10_000, () => 1),
      10_000,
    );
  });
});

describe('client SDK: a resume that cannot continue is told with pushlet:connected (issue 21)', () => {
  const clients: PushletClient[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const close of closers.splice(0)) await close();
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: after a restart that lost history, the reset is told once, before the new id is kept`, async () => {
      const first = await startApp({ heartbeatInterval: 60_000 });
      let closed = false;
      closers.push(async () => closed || first.close());
      const c = new PushletClient(first.url, { WebSocket, ...FAST, transport });
      clients.push(c);
      const told: Array<{ topics: readonly string[]; idThen: string | undefined }> = [];
      c.on('reset', (reset) => told.push({ topics: reset.topics, idThen: c.lastEventId }));
      const data: string[] = [];
      const sub = c.subscribe('news', (m) => data.push(m.data));
      await within(sub.ready, 5_000, 'ready');
      await first.pushlet.publish('news', 'message', 'one');
      await until(() => data.length === 1, 5_000, 'the first message');
      const before = c.lastEventId;
      const port = Number(new URL(first.url).port);
      await first.close();
      closed = true;
      // A new process on the same port: its history starts empty, after the client's id.
      const second = await startApp({ heartbeatInterval: 60_000 }, undefined, port);
      closers.push(() => second.close());
      await until(() => c.state === 'connected' && c.lastEventId !== before, 10_000, 'the client to reconnect');
      assert.deepEqual(told, [{ topics: ['news'], idThen: before }], 'one reset, told while the id was still the one before the gap');
      await second.pushlet.publish('news', 'message', 'two');
      await until(() => data.length === 2, 5_000, 'the next message');
      assert.deepEqual(data, ['one', 'two']);
    });
  }

  it('sse: a connected frame naming a reset is enough, even when the stream is cut right after it', async () => {
    let requests = 0;
    const server = http.createServer((request, response) => {
      requests += 1;
      if (requests > 1) {
        response.writeHead(503, { 'retry-after': '60' }).end();
        return;
      }
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      const data = JSON.stringify({ topics: ['news'], reset: { topics: ['news'], reason: 'the id is older than the history kept' } });
      // The frame that hands out the new id, then the connection is cut: no pushlet:reset frame follows.
      response.write(`id: 9-0\nevent: pushlet:connected\ndata: ${data}\n\n`, () => request.socket.destroy());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(() => new Promise((resolve) => server.close(resolve)));
    const { port } = server.address() as import('node:net').AddressInfo;
    const c = new PushletClient(`http://127.0.0.1:${port}`, { WebSocket, ...FAST, transport: 'sse' });
    clients.push(c);
    const told: Array<{ reason: string; idThen: string | undefined }> = [];
    c.on('reset', (reset) => told.push({ reason: reset.reason, idThen: c.lastEventId }));
    c.subscribe('news', () => undefined);
    await until(() => requests >= 2, 5_000, 'the client to come back after the cut');
    assert.deepEqual(told, [{ reason: 'the id is older than the history kept', idThen: undefined }]);
    assert.equal(c.lastEventId, '9-0', 'the id is kept, after the reset was told');
  });
});
