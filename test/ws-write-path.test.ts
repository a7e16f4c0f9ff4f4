import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { startApp, type TestApp } from './support/app.js';
import { WsClient } from './support/ws-client.js';

/**
 * The WebSocket write path for published messages: one complete frame per message shared by all
 * clients, written to the upgraded socket and corked until the end of the event-loop turn, next
 * to the frames `ws` writes itself (replies, pings).
 */
describe('WebSocket write path', () => {
  let t: TestApp | undefined;
  const clients: WsClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await t?.close();
    t = undefined;
  });

  for (const frame of ['binary', 'text'] as const) {
    it(`delivers a burst published in one turn completely and in order, as ${frame} frames`, async () => {
      t = await startApp({ heartbeatInterval: 60_000, ws: { frame } });
      // Payload lengths across the 7-bit, 16-bit and 64-bit length encodings of RFC 6455.
      const size = (i: number) => (i % 60 === 0 ? 70_000 : [0, 10, 200][i % 3]!);
      const client = await WsClient.open(`${t.wsUrl}/ws?topic=burst`);
      clients.push(client);
      await client.waitForEvents('pushlet:connected');
      const sent = Array.from({ length: 300 }, (_, i) => t!.pushlet.publish('burst', 'n', `${i}:${'x'.repeat(size(i))}`));
      await Promise.all(sent);
      const messages = await client.waitForMessages(300, 10_000);
      assert.deepEqual(
        messages.map((m) => m.data),
        Array.from({ length: 300 }, (_, i) => `${i}:${'x'.repeat(size(i))}`),
      );
      assert.ok(client.frames.every((f) => f.binary === (frame === 'binary')));
    });
  }

  it('keeps replies and messages whole when both go out in the same turn', async () => {
    t = await startApp({ heartbeatInterval: 60_000 });
    const client = await WsClient.open(`${t.wsUrl}/ws?topic=mixed`);
    clients.push(client);
    await client.waitForEvents('pushlet:connected');
    const pong = client.call({ action: 'ping', ref: 'p1' });
    for (let i = 0; i < 50; i += 1) void t.pushlet.publish('mixed', 'n', String(i));
    assert.equal((await pong).event, 'pushlet:pong');
    const messages = await client.waitForMessages(50);
    assert.deepEqual(
      messages.map((m) => m.data),
      Array.from({ length: 50 }, (_, i) => String(i)),
    );
    assert.ok(
      client.frames.every((f) => f.json !== undefined),
      'every frame is one whole JSON object',
    );
  });
});
