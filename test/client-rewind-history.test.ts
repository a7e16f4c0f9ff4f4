import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { PushletClient, PushletCommandError, type ClientMessage, type PushletClientOptions } from '../src/client/index.js';
import { PushletClient as CorePushletClient } from '../src/client/core.js';
import type { PushletModuleOptions } from '../src/index.js';
import { startApp, type TestApp } from './support/app.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { until, within } from './support/wait.js';

/** The client SDK's rewind (`subscribe(topic, handler, { rewind })`, core) and `history()` (full build), against a real server. */

const FAST: PushletClientOptions = { minReconnectDelayMs: 20, maxReconnectDelayMs: 200 };

describe('client SDK: rewind and history', () => {
  const apps: TestApp[] = [];
  const clients: PushletClient[] = [];
  const proxies: TcpProxy[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const proxy of proxies.splice(0)) await proxy.close();
    for (const app of apps.splice(0)) await app.close();
  });

  async function app(options: PushletModuleOptions = {}): Promise<TestApp> {
    const t = await startApp({ heartbeatInterval: 60_000, ...options });
    apps.push(t);
    return t;
  }

  function client(url: string, options: PushletClientOptions): PushletClient {
    const c = new PushletClient(url, { WebSocket, ...FAST, ...options });
    clients.push(c);
    return c;
  }

  async function publish(t: TestApp, topic: string, from: number, to: number): Promise<void> {
    for (let n = from; n <= to; n++) await t.pushlet.publish(topic, 'n', String(n));
  }

  for (const transport of ['websocket', 'sse'] as const) {
    it(`${transport}: subscribe with rewind gets the latest messages, then live ones; after a TCP cut it resumes, nothing twice or missing`, async () => {
      const t = await app();
      const proxy = await TcpProxy.start(Number(new URL(t.url).port));
      proxies.push(proxy);
      await publish(t, 'state', 1, 6);
      const c = client(proxy.url, { transport });
      const data: string[] = [];
      await within(c.subscribe('state', (m: ClientMessage) => data.push(m.data), { rewind: 2 }).ready, 5_000, 'ready');
      await until(() => data.length >= 2, 5_000, 'the rewind');
      await publish(t, 'state', 7, 7);
      await until(() => data.length >= 3, 5_000, 'a live message');
      proxy.cut();
      await until(() => c.state === 'connecting', 5_000, 'the client noticing the cut');
      await publish(t, 'state', 8, 10);
      proxy.restore();
      await until(() => data.length >= 6 && c.state === 'connected', 10_000, 'the missed messages');
      await publish(t, 'state', 11, 11);
      await until(() => data.length >= 7, 5_000, 'a live message');
      assert.deepEqual(data, ['5', '6', '7', '8', '9', '10', '11'], 'the rewind once (not again on the resume), then everything once');
    });
  }

  it('websocket: a topic added later with rewind is rewound by its own subscribe; the core build has rewind too', async () => {
    const t = await app();
    await publish(t, 'a', 1, 3);
    await publish(t, 'b', 11, 13);
    const c = client(t.url, { transport: 'websocket' });
    const got: string[] = [];
    await within(c.subscribe('a', (m) => got.push(m.data)).ready, 5_000, 'a ready');
    await within(c.subscribe('b', (m) => got.push(m.data), { rewind: 1 }).ready, 5_000, 'b ready');
    assert.deepEqual(got, ['13'], 'b rewound by 1, a not rewound');

    const core = new CorePushletClient(t.url, { WebSocket, ...FAST, transport: 'websocket' });
    try {
      const latest: string[] = [];
      await within(core.subscribe('a', (m) => latest.push(m.data), { rewind: 1 }).ready, 5_000, 'core ready');
      await until(() => latest.length >= 1, 5_000, 'the latest value');
      assert.deepEqual(latest, ['3']);
    } finally {
      core.close();
    }
  });

  it('history(): pages oldest first with before; a refused topic rejects with PushletCommandError', async () => {
    const t = await app({ authorize: ({ topic }) => topic !== 'secret' });
    await publish(t, 'log', 1, 7);
    const c = client(t.url, { transport: 'websocket' });
    await c.connect();
    await until(() => c.state === 'connected', 5_000, 'connected');
    const newest = await c.history('log', { limit: 3 });
    assert.deepEqual(
      newest.map((m) => m.data),
      ['5', '6', '7'],
    );
    assert.equal(newest[0]!.topic, 'log');
    assert.equal(newest[0]!.event, 'n');
    const older = await c.history('log', { limit: 3, before: newest[0]!.id });
    assert.deepEqual(
      older.map((m) => m.data),
      ['2', '3', '4'],
    );
    const all = await c.history('log');
    assert.equal(all.length, 7);
    await assert.rejects(c.history('secret'), (error: unknown) => error instanceof PushletCommandError && /not allowed/.test(error.message));
  });
});
