import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startApp, type TestApp } from './support/app.js';
import { SseClient } from './support/sse-client.js';
import { until, within } from './support/wait.js';

/**
 * The SSE write path: frames written straight to the socket as shared HTTP chunks, corked for
 * the rest of the event-loop turn, with `ServerResponse.write` kept for responses that someone
 * else wraps and for HTTP/1.0.
 */
describe('SSE write path', () => {
  const apps: TestApp[] = [];
  const clients: SseClient[] = [];
  const sockets: Socket[] = [];
  const start = async (...args: Parameters<typeof startApp>) => {
    const app = await startApp(...args);
    apps.push(app);
    return app;
  };
  const open = async (url: string) => {
    const client = await SseClient.open(url);
    clients.push(client);
    await client.waitForEvents(1, 5_000, 'pushlet:connected');
    return client;
  };
  /** A raw TCP client that sends `head` and collects every byte of the answer. */
  const raw = (url: string, head: string) => {
    const { hostname, port } = new URL(url);
    const socket = connect({ host: hostname, port: Number(port) });
    sockets.push(socket);
    const state = { text: '', closed: false };
    socket.on('connect', () => socket.write(head));
    socket.on('data', (chunk: Buffer) => (state.text += chunk.toString('latin1')));
    socket.on('close', () => (state.closed = true));
    socket.on('error', () => undefined);
    return { socket, state };
  };

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const socket of sockets.splice(0)) socket.destroy();
    for (const app of apps.splice(0)) await app.close();
  });

  it('delivers a burst published in one turn completely, in order, in valid chunked framing', async () => {
    const t = await start({ heartbeatInterval: 60_000 });
    const client = await open(`${t.url}/events?topic=burst`);
    const sent = Array.from({ length: 300 }, (_, i) => t.pushlet.publish('burst', 'n', `message ${i}\nline two`));
    await Promise.all(sent);
    const events = await client.waitForEvents(300, 10_000, 'n');
    assert.deepEqual(
      events.map((e) => e.data),
      Array.from({ length: 300 }, (_, i) => `message ${i}\nline two`),
    );
    assert.equal(client.headers['transfer-encoding'], 'chunked');
  });

  it('writes bare frames to an HTTP/1.0 client, which gets no chunked encoding', async () => {
    const t = await start({ heartbeatInterval: 60_000 });
    const { state } = raw(t.url, 'GET /events?topic=old HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n');
    await until(() => state.text.includes('event: pushlet:connected'), 5_000, 'the connected frame');
    const published = await t.pushlet.publish('old', 'hello', 'one\ntwo');
    await until(() => state.text.includes('event: hello'), 5_000, 'the message');
    assert.doesNotMatch(state.text, /transfer-encoding/i);
    assert.ok(state.text.endsWith(`id: ${published.id}\nevent: hello\ndata: one\ndata: two\n\n`), state.text);
  });

  it('keeps going through ServerResponse.write when middleware wraps it (as compression does)', async () => {
    const seen: string[] = [];
    const t = await start({ heartbeatInterval: 60_000 }, (app) => {
      app.use((_req: IncomingMessage, res: ServerResponse, next: () => void) => {
        const write = res.write;
        res.write = function (this: ServerResponse, ...args: unknown[]) {
          seen.push(String(args[0]));
          return (write as (...a: unknown[]) => boolean).apply(this, args);
        } as typeof res.write;
        next();
      });
    });
    const client = await open(`${t.url}/events?topic=wrapped`);
    await t.pushlet.publish('wrapped', 'through', 'the wrapper');
    const [message] = await client.waitForEvents(1, 5_000, 'through');
    assert.equal(message!.data, 'the wrapper');
    assert.ok(
      seen.some((chunk) => chunk.includes('event: through')),
      'the wrapper saw the frame',
    );
  });

  it('disconnects a client that stops reading once bufferBytes are queued, and releases it', async () => {
    const t = await start({ heartbeatInterval: 60_000, limits: { bufferBytes: 256 * 1024 } });
    const { socket, state } = raw(t.url, 'GET /events?topic=slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => state.text.includes('pushlet:connected'), 5_000, 'the connected frame');
    socket.pause();
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 400 && t.pushlet.stats().slowConsumersDisconnected === 0; i += 1) {
      await t.pushlet.publish('slow', 'big', big);
      if (i % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => t.pushlet.stats().slowConsumersDisconnected === 1, 5_000, 'the slow client is cut off');
    await until(() => t.pushlet.stats().connections.sse === 0 && t.pushlet.stats().topics === 0, 5_000, 'the connection is released');
  });

  it('sends everything published before shutdown, then ends the stream', async () => {
    const t = await start({ heartbeatInterval: 60_000 });
    const client = await open(`${t.url}/events?topic=last`);
    for (let i = 0; i < 5; i += 1) void t.pushlet.publish('last', 'bye', String(i));
    await within(t.close(), 5_000, 'app.close()');
    await client.waitForEnd(5_000);
    assert.deepEqual(
      client.events.filter((e) => e.event === 'bye').map((e) => e.data),
      ['0', '1', '2', '3', '4'],
    );
  });
});
