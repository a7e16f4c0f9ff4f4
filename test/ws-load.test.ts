import assert from 'node:assert/strict';
import type { Server as HttpServer } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { WsTransport } from '../src/ws/ws.transport.js';
import { startApp, type TestApp } from './support/app.js';
import { onceWithin, until } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

/** Opens `count` clients, `batch` at a time (each waits for its pushlet:connected frame). */
async function openMany(count: number, url: (index: number) => string, batch = 100): Promise<WsClient[]> {
  const clients: WsClient[] = [];
  for (let start = 0; start < count; start += batch) {
    const size = Math.min(batch, count - start);
    const opened = await Promise.all(
      Array.from({ length: size }, async (_, i) => {
        const client = await WsClient.open(url(start + i), {}, 20_000);
        clients.push(client);
        await client.waitForEvents('pushlet:connected', 1, 20_000);
        return client;
      }),
    );
    assert.equal(opened.length, size);
  }
  return clients;
}

describe('WebSocket under load', () => {
  let t: TestApp | undefined;
  let clients: WsClient[] = [];
  afterEach(async () => {
    for (const client of clients) client.close();
    clients = [];
    await t?.close();
    t = undefined;
  });

  it('delivers each of 100 messages once and in order to each of 500 clients of one topic', async () => {
    t = await startApp({ heartbeatInterval: 60_000 });
    clients = await openMany(500, () => `${t!.wsUrl}/ws?topic=load`);
    const sent: string[] = [];
    for (let i = 1; i <= 100; i++) sent.push((await t.pushlet.publish('load', 'message', `m${i}`)).id);
    await Promise.all(clients.map((client) => client.waitForMessages(100, 60_000)));
    const expected = sent.map((id, i) => `${id} m${i + 1}`);
    for (const client of clients) {
      assert.deepEqual(
        client.messages.map((m) => `${m.id as string} ${m.data as string}`),
        expected,
      );
    }
    assert.equal(t.pushlet.stats().connections.ws, 500);
    assert.equal(t.pushlet.stats().subscribers, 1_000);
  });

  it('leaves nothing behind after 1,000 clients connect, subscribe and leave', async () => {
    t = await startApp({ heartbeatInterval: 60_000 });
    const server = t.app.getHttpServer() as HttpServer;
    const upgradeListeners = server.listenerCount('upgrade');
    for (let round = 0; round < 10; round++) {
      const batch = await openMany(100, (i) => `${t!.wsUrl}/ws?topic=leak/url-${i % 7}`);
      await Promise.all(
        batch.map(async (client, i) => {
          const reply = await client.call({ action: 'subscribe', topic: `leak/cmd-${round}-${i}`, ref: i });
          assert.equal(reply.event, 'pushlet:subscribed');
          if (i % 3 === 0) await client.call({ action: 'unsubscribe', topic: `leak/url-${i % 7}`, ref: `u${i}` });
        }),
      );
      assert.equal(t.pushlet.stats().connections.ws, 100);
      // Half leave with a closing handshake, half just drop the connection.
      await Promise.all(
        batch.map(async (client, i) => {
          if (i % 2 === 0) {
            client.socket.close(1000);
            await client.waitForClose();
          } else {
            client.close();
          }
        }),
      );
    }
    await until(() => t!.pushlet.stats().connections.ws === 0, 10_000, 'every connection released');
    const stats = t.pushlet.stats();
    assert.equal(stats.topics, 0);
    assert.equal(stats.subscribers, 0);
    assert.equal(stats.connections.total, 0);
    assert.equal(t.app.get(WsTransport).openConnections, 0);
    assert.equal(server.listenerCount('upgrade'), upgradeListeners);
  });

  it('disconnects a client that stops reading (1013), counts it, and keeps serving the others', async () => {
    t = await startApp({ heartbeatInterval: 60_000, limits: { bufferBytes: 256 * 1024 } });
    const slow = await WsClient.open(`${t.wsUrl}/ws?topic=flood`);
    clients.push(slow);
    await slow.waitForEvents('pushlet:connected');
    // A bystander that reads everything but keeps only a count (the flood is megabytes).
    const bystander = new WebSocket(`${t.wsUrl}/ws?topic=flood`);
    let bystanderFrames = 0;
    bystander.on('message', () => (bystanderFrames += 1));
    await onceWithin(bystander, 'open', 5_000);
    await until(() => bystanderFrames === 1, 5_000, 'the bystander is connected');

    (slow.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const payload = 'x'.repeat(64 * 1024);
    let published = 0;
    // Bounded: the kernel's socket buffers take a few megabytes before the server has to queue.
    while (t.pushlet.stats().slowConsumersDisconnected === 0 && published < 2_000) {
      await t.pushlet.publish('flood', 'message', payload);
      published += 1;
      await nextTurn();
    }
    assert.equal(t.pushlet.stats().slowConsumersDisconnected, 1);
    (slow.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    const closed = await slow.waitForClose(10_000);
    // 1013 when the close frame gets through within the grace period; a client still too slow
    // to take it by then is cut off (1006). Either way it is gone and counted.
    assert.ok([1013, 1006].includes(closed.code), `close code ${closed.code}`);
    await until(() => t!.pushlet.stats().connections.ws === 1, 5_000, 'the slow connection is released');

    await t.pushlet.publish('flood', 'message', 'after');
    await until(() => bystanderFrames === published + 2, 10_000, 'the bystander got every message');
    assert.equal(bystander.readyState, WebSocket.OPEN);
    bystander.terminate();
  });
});
