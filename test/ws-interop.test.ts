import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import { MessageBody, SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import { WebSocket } from 'ws';
import { createSampleApp } from '../sample/app.js';
import { Envelope, PushletModule } from '../src/index.js';
import { PushletHub } from '../src/pushlet.hub.js';
import { request, startApp, type TestApp } from './support/app.js';
import { SseClient } from './support/sse-client.js';
import { onceWithin } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

/** An application's own gateway, on another path of the same server. */
@WebSocketGateway({ path: '/chat' })
class ChatGateway {
  @SubscribeMessage('echo')
  echo(@MessageBody() data: unknown) {
    return { event: 'echo', data };
  }
}

/** Counts, per message id, how often each encoding of a delivered message is computed (wraps the app's topic registry). */
function countEncodings(app: INestApplication): Map<string, Map<symbol, number>> {
  const encodings = new Map<string, Map<symbol, number>>();
  const registry = app.get(PushletHub).registry;
  const deliver = registry.message;
  (registry as { message: (envelope: Envelope) => void }).message = (envelope) => {
    const counts = new Map<symbol, number>();
    encodings.set(envelope.id, counts);
    const encoded = envelope.encoded.bind(envelope);
    envelope.encoded = <T>(key: symbol, encode: (e: Envelope) => T): T =>
      encoded(key, (e) => {
        counts.set(key, (counts.get(key) ?? 0) + 1);
        return encode(e);
      });
    deliver(envelope);
  };
  return encodings;
}

describe('WebSocket next to the rest of an application', () => {
  const clients: Array<{ close(): void }> = [];
  let t: TestApp | undefined;
  let sample: INestApplication | undefined;
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await t?.close();
    await sample?.close();
    t = undefined;
    sample = undefined;
  });

  it('works next to an app gateway of its own under WsAdapter, and app.close() closes its clients with 1001', async () => {
    t = await startApp({ metadata: { imports: [PushletModule.forRoot({ heartbeatInterval: 60_000 })], providers: [ChatGateway] } }, (app) => {
      app.useWebSocketAdapter(new WsAdapter(app));
    });
    const chat = new WebSocket(`${t.wsUrl}/chat`);
    clients.push({ close: () => chat.terminate() });
    await onceWithin(chat, 'open', 5_000);
    chat.send(JSON.stringify({ event: 'echo', data: 'hello gateway' }));
    const [reply] = await onceWithin(chat, 'message', 5_000);
    assert.deepEqual(JSON.parse(String(reply)), { event: 'echo', data: 'hello gateway' });

    const pushlet = await WsClient.open(`${t.wsUrl}/ws?topic=next-to-gateway`);
    clients.push(pushlet);
    await pushlet.waitForEvents('pushlet:connected');
    await t.pushlet.publish('next-to-gateway', 'message', 'both work');
    await pushlet.waitFor((json) => json.data === 'both work');

    const chatClosed = onceWithin(chat, 'close', 5_000);
    await t.close();
    assert.equal((await pushlet.waitForClose()).code, 1001);
    await chatClosed;
  });

  it('serves the Go README client flow: subscribe in a JSON text frame, binary JSON with event, data, timestamp', async () => {
    sample = await createSampleApp({ heartbeatMs: 60_000 }, { logger: false });
    await sample.listen(0, '127.0.0.1');
    const url = (await sample.getUrl()).replace('[::1]', '127.0.0.1');
    const go = await WsClient.open(`${url.replace(/^http/, 'ws')}/ws`);
    clients.push(go);
    // c.WriteJSON(SubscriptionMessage{Action: "subscribe", Topic: "my-topic"}): a text frame, no ref.
    go.socket.send(JSON.stringify({ action: 'subscribe', topic: 'my-topic' }));
    await go.waitForEvents('pushlet:subscribed');
    const sent = await request(`${url}/send?topic=my-topic&message=${encodeURIComponent('Hello, World!')}`);
    assert.equal(sent.status, 200);
    assert.equal(sent.body, 'Message sent');
    const message = await go.waitFor((json) => json.event === 'message');
    assert.equal(message.data, 'Hello, World!');
    // Every frame must unmarshal into the Go client's Message {Event, Data string; Timestamp time.Time}.
    for (const frame of go.frames) {
      assert.equal(frame.binary, true);
      assert.equal(typeof frame.json?.event, 'string');
      assert.equal(typeof frame.json?.data, 'string');
      assert.match(String(frame.json?.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    }
  });

  it('delivers one message to SSE and WebSocket clients of its topic, encoded once per protocol', async () => {
    t = await startApp({ heartbeatInterval: 60_000 });
    const encodings = countEncodings(t.app);
    const sse = await SseClient.open(`${t.url}/events?topic=both`);
    clients.push(sse);
    await sse.waitForEvents(1, 5_000, 'pushlet:connected');
    const sockets = await Promise.all([1, 2, 3].map(() => WsClient.open(`${t!.wsUrl}/ws?topic=both`)));
    clients.push(...sockets);
    await Promise.all(sockets.map((socket) => socket.waitForEvents('pushlet:connected')));

    const published = await t.pushlet.publish('both', 'message', { hello: 'both' });
    const [event] = await sse.waitForEvents(1, 5_000, 'message');
    assert.equal(event!.id, published.id);
    assert.equal(event!.data, '{"hello":"both"}');
    for (const socket of sockets) {
      const message = await socket.waitFor((json) => json.id === published.id);
      assert.deepEqual(message, { ...published });
    }
    const counts = encodings.get(published.id)!;
    assert.equal(counts.size, 2, 'one encoding for SSE, one for WebSocket');
    assert.deepEqual([...counts.values()], [1, 1]);
  });
});
