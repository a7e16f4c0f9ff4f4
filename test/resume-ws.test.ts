import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WsClient } from './support/ws-client.js';
import { startApp, type TestApp } from './support/app.js';
import { until } from './support/wait.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('resume over WebSocket (docs/protocol.md, Resume: no message lost)', () => {
  const apps: TestApp[] = [];
  const clients: WsClient[] = [];
  const app = async (options = {}) => {
    const t = await startApp({ heartbeatInterval: 60_000, ...options });
    apps.push(t);
    return t;
  };
  const open = async (url: string) => {
    const client = await WsClient.open(url);
    clients.push(client);
    return client;
  };
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const t of apps.splice(0)) await t.close();
  });

  it('subscribe with lastEventId replays every missed message in order, once, with a publisher running', async () => {
    const t = await app();
    const first = await open(`${t.wsUrl}/ws`);
    await first.call({ action: 'subscribe', topic: 'feed', ref: 1 });
    let published = 0;
    let running = true;
    const publisher = (async () => {
      while (running) {
        await t.pushlet.publish('feed', 'message', String(published++));
        await nextTurn();
      }
    })();
    await first.waitForMessages(20);
    first.close();
    const seenBefore = first.messages.map((m) => Number(m.data));
    const lastId = String(first.messages.at(-1)!.id);

    const second = await open(`${t.wsUrl}/ws`);
    await second.call({ action: 'subscribe', topic: 'feed', lastEventId: lastId, ref: 'resume' });
    await second.waitForMessages(50);
    running = false;
    await publisher;
    const total = published;
    await second.waitFor((m) => m.data === String(total - 1), 5_000, 'the last message');
    const all = [...seenBefore, ...second.messages.map((m) => Number(m.data))];
    assert.deepEqual(
      all,
      Array.from({ length: total }, (_, i) => i),
      'every message once, in order',
    );
    assert.equal(second.events('pushlet:reset').length, 0);
  });

  it('a slow consumer cut off with 1013 reconnects with its last id and gets the rest, once', async () => {
    const t = await app({ limits: { bufferBytes: 256 * 1024 }, history: { maxCount: 10_000 } });
    const slow = await open(`${t.wsUrl}/ws?topic=flood`);
    await slow.waitForEvents('pushlet:connected');
    const raw = (slow.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    raw.pause();
    const payload = 'x'.repeat(32 * 1024);
    let published = 0;
    while (t.pushlet.stats().slowConsumersDisconnected === 0 && published < 3_000) {
      await t.pushlet.publish('flood', 'message', `${published}:${payload}`);
      published += 1;
      await nextTurn();
    }
    assert.equal(t.pushlet.stats().slowConsumersDisconnected, 1);
    for (let i = 0; i < 20; i++) await t.pushlet.publish('flood', 'message', `${published++}:${payload}`);
    raw.resume();
    await slow.waitForClose(10_000);
    const got = slow.messages.map((m) => Number(String(m.data).split(':')[0]));
    assert.ok(got.length < published);
    const lastId = String(slow.messages.at(-1)?.id ?? slow.events('pushlet:connected')[0]!.id);
    const again = await open(`${t.wsUrl}/ws?topic=flood&lastEventId=${encodeURIComponent(lastId)}`);
    await again.waitForMessages(published - got.length, 10_000);
    const rest = again.messages.map((m) => Number(String(m.data).split(':')[0]));
    assert.deepEqual(
      [...got, ...rest],
      Array.from({ length: published }, (_, i) => i),
    );
    await until(() => t.pushlet.stats().connections.ws === 1, 5_000, 'one connection left');
  });
});
