import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { PushletHub } from '../src/pushlet.hub.js';
import { SseClient } from './support/sse-client.js';
import { request, startApp, type TestApp } from './support/app.js';
import { until, within } from './support/wait.js';

describe('SSE endpoint (docs/protocol.md, Server-Sent Events)', () => {
  let t: TestApp;
  const clients: SseClient[] = [];
  const open = async (path: string, headers?: Record<string, string>) => {
    const client = await SseClient.open(t.url + path, headers);
    clients.push(client);
    return client;
  };

  before(async () => {
    t = await startApp({ heartbeatInterval: 60_000 });
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(async () => {
    await t.close();
  });

  it('answers with the contract headers and a pushlet:connected first frame naming the topics', async () => {
    const client = await open('/events?topic=a&topic=b');
    assert.equal(client.status, 200);
    assert.equal(client.headers['content-type'], 'text/event-stream');
    assert.equal(client.headers['cache-control'], 'no-cache');
    assert.equal(client.headers['connection'], 'keep-alive');
    assert.equal(client.headers['x-accel-buffering'], 'no');
    const [first] = await client.waitForEvents(1);
    assert.equal(first!.event, 'pushlet:connected');
    assert.deepEqual(
      JSON.parse(first!.data),
      { topics: ['a', 'b'], heartbeat: t.pushlet.heartbeatInterval },
      'the topics, and the heartbeat interval a client derives its dead-link timeout from',
    );
  });

  it('delivers id, event and data of a published message', async () => {
    const client = await open('/events?topic=orders/1');
    await client.waitForEvents(1, 5_000, 'pushlet:connected');
    const published = await t.pushlet.publish('orders/1', 'shipped', { id: 1 });
    const [message] = await client.waitForEvents(1, 5_000, 'shipped');
    assert.equal(message!.id, published.id);
    assert.equal(message!.data, '{"id":1}');
    assert.match(published.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(published.topic, 'orders/1');
  });

  it('uses the topic "default" when none is named', async () => {
    const client = await open('/events');
    const [connected] = await client.waitForEvents(1);
    assert.deepEqual(JSON.parse(connected!.data).topics, ['default']);
    await t.pushlet.publish('default', 'message', 'hello');
    const [message] = await client.waitForEvents(1, 5_000, 'message');
    assert.equal(message!.data, 'hello');
  });

  it('splits data on CRLF, CR and LF so that no payload can forge a field or end a frame', async () => {
    const client = await open('/events?topic=lines');
    await client.waitForEvents(1);
    const data = 'one\r\ntwo\rthree\nfour\n\nevent: forged\nid: 999-0\n\ndata: x';
    await t.pushlet.publish('lines', 'message', data);
    await t.pushlet.publish('lines', 'after', 'still framed');
    const [message] = await client.waitForEvents(1, 5_000, 'message');
    assert.equal(message!.data, 'one\ntwo\nthree\nfour\n\nevent: forged\nid: 999-0\n\ndata: x');
    const [afterEvent] = await client.waitForEvents(1, 5_000, 'after');
    assert.equal(afterEvent!.data, 'still framed');
    assert.equal(client.events.filter((e) => e.event === 'forged').length, 0);
  });

  it('subscribes one connection to several topics and delivers only those', async () => {
    const client = await open('/events?topic=x&topic=y');
    await client.waitForEvents(1);
    await t.pushlet.publish('x', 'message', 'to x');
    await t.pushlet.publish('z', 'message', 'to z');
    await t.pushlet.publish('y', 'message', 'to y');
    const messages = await client.waitForEvents(2, 5_000, 'message');
    assert.deepEqual(
      messages.map((m) => m.data),
      ['to x', 'to y'],
    );
  });

  it('delivers publishToAll once per connection, whatever it subscribes to', async () => {
    const one = await open('/events?topic=p&topic=q&topic=r');
    const two = await open('/events?topic=other');
    await one.waitForEvents(1);
    await two.waitForEvents(1);
    const sent = await t.pushlet.publishToAll('announce', 'to everyone');
    await t.pushlet.publish('p', 'marker', 'end');
    await one.waitForEvents(1, 5_000, 'marker');
    await two.waitForEvents(1, 5_000, 'announce');
    assert.equal(sent.topic, '*');
    assert.equal(one.events.filter((e) => e.event === 'announce').length, 1);
    assert.equal(two.events.filter((e) => e.event === 'announce').length, 1);
  });

  it('format=json: each message frame holds the message as JSON with its topic, the id stays on the id: line', async () => {
    const client = await open('/events?topic=x&topic=y&format=json');
    const [connected] = await client.waitForEvents(1);
    assert.deepEqual(JSON.parse(connected!.data).topics, ['x', 'y']);
    const published = await t.pushlet.publish('y', 'tick', 'line one\nline two');
    const everyone = await t.pushlet.publishToAll('announce', { n: 1 });
    const [message] = await client.waitForEvents(1, 5_000, 'tick');
    assert.equal(message!.id, published.id);
    assert.deepEqual(JSON.parse(message!.data), { topic: 'y', event: 'tick', data: 'line one\nline two', timestamp: published.timestamp });
    const [broadcast] = await client.waitForEvents(1, 5_000, 'announce');
    assert.equal(broadcast!.id, everyone.id);
    assert.deepEqual(JSON.parse(broadcast!.data), { topic: '*', event: 'announce', data: '{"n":1}', timestamp: everyone.timestamp });
    // A connection on the default format, open at the same time, still gets the data alone.
    const plain = await open('/events?topic=y&format=text');
    await plain.waitForEvents(1);
    await t.pushlet.publish('y', 'tick', 'plain');
    const [raw] = await plain.waitForEvents(1, 5_000, 'tick');
    assert.equal(raw!.data, 'plain');
  });

  it('answers 400 for an unknown format, before any stream starts', async () => {
    for (const format of ['xml', 'JSON', '%0Aevent:%20x']) {
      const response = await request(`${t.url}/events?topic=a&format=${format}`);
      assert.equal(response.status, 400, format);
      assert.match(JSON.parse(response.body).message, /format must be "text".*or "json"/);
      assert.ok(!response.body.includes('xml') && !response.body.includes('event: x'), 'the value is not echoed');
    }
  });

  it('answers 400 with {statusCode, message} for a bad topic, before any stream starts', async () => {
    for (const query of ['topic=', 'topic=a%20b', 'topic=pushlet:x', 'topic=a%0Ab', `topic=${'t'.repeat(201)}`, 'topic=a*']) {
      const response = await request(`${t.url}/events?${query}`);
      assert.equal(response.status, 400, query);
      assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8');
      const body = JSON.parse(response.body);
      assert.equal(body.statusCode, 400);
      assert.equal(typeof body.message, 'string');
    }
  });

  it('answers 400 for more topics than the per-connection limit', async () => {
    const query = Array.from({ length: 51 }, (_, i) => `topic=t${i}`).join('&');
    const response = await request(`${t.url}/events?${query}`);
    assert.equal(response.status, 400);
    assert.match(JSON.parse(response.body).message, /too many topics/);
  });

  it('rejects bad events and topics on publish with a clear error', async () => {
    await assert.rejects(t.pushlet.publish('a', 'pushlet:connected', 'x'), /control events/);
    await assert.rejects(t.pushlet.publish('a', 'bad\nevent', 'x'), /CR, LF or NUL/);
    await assert.rejects(t.pushlet.publish('a', '', 'x'), /1 to 100/);
    await assert.rejects(t.pushlet.publish('a/#', 'message', 'x'), /reserved for subscription patterns/);
    await assert.rejects(
      t.pushlet.publish('a', 'message', () => 1),
      /JSON-serialisable/,
    );
    await assert.rejects(t.pushlet.publishToAll('pushlet:x', 'x'), /control events/);
  });

  it('releases the topic when the client goes away', async () => {
    const client = await open('/events?topic=ephemeral');
    await client.waitForEvents(1);
    assert.ok(t.pushlet.stats().topics >= 1);
    assert.equal(t.pushlet.stats().connections.sse, 1);
    client.close();
    const { until } = await import('./support/wait.js');
    await until(() => t.pushlet.stats().connections.sse === 0 && t.pushlet.stats().topics === 0, 5_000, 'the topic is released');
  });

  it("releases a stream's request once its headers are out, and leaves a request body unread", async () => {
    const server = t.app.getHttpServer() as http.Server;
    const seen: http.IncomingMessage[] = [];
    const capture = (request: http.IncomingMessage) => void (request.url?.startsWith('/events') && seen.push(request));
    server.prependListener('request', capture);
    try {
      const client = await open('/events?topic=released');
      await client.waitForEvents(1, 5_000, 'pushlet:connected');
      await until(() => seen[0]?.destroyed === true, 5_000, 'the request read to its end and destroyed');
      assert.equal(seen[0]!.readableEnded, true);
      const published = await t.pushlet.publish('released', 'message', 'still streaming');
      assert.equal((await client.waitForEvents(1, 5_000, 'message'))[0]!.id, published.id);

      // A GET announcing a megabyte of body and sending ten bytes: the stream starts, the body is not read.
      const withBody = http.request(`${t.url}/events?topic=released`, { method: 'GET', headers: { 'content-length': '1000000' } });
      withBody.write('0123456789');
      const [response] = (await once(withBody, 'response')) as [http.IncomingMessage];
      try {
        assert.equal(response.statusCode, 200);
        const chunks: string[] = [];
        response.setEncoding('utf8').on('data', (chunk: string) => chunks.push(chunk));
        await until(() => chunks.join('').includes('pushlet:connected'), 5_000, 'pushlet:connected');
        assert.notEqual(seen[1]!.readableFlowing, true, 'the body is left unread');
        await t.pushlet.publish('released', 'message', 'to both');
        await until(() => chunks.join('').includes('to both'), 5_000, 'the message on the stream with a body');
      } finally {
        withBody.destroy();
      }
      await until(() => t.pushlet.stats().connections.sse === 1, 5_000, 'the stream with a body ends with its client');
    } finally {
      server.off('request', capture);
    }
  });
});

describe('SSE heartbeat', () => {
  it('writes a comment heartbeat every interval, and setHeartbeatInterval changes it', async () => {
    const t = await startApp({ heartbeatInterval: 50 });
    const client = await SseClient.open(`${t.url}/events?topic=hb`);
    try {
      const comments = await client.waitForComments(2, 5_000);
      assert.match(comments[0]!, /^heartbeat \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      t.pushlet.setHeartbeatInterval(60_000);
      assert.equal(t.pushlet.stats().heartbeatInterval, 60_000);
      assert.equal(t.pushlet.heartbeatInterval, 60_000);
    } finally {
      client.close();
      await t.close();
    }
  });
});

describe('SSE during shutdown', () => {
  it('answers 503 and closes the connection when a stream is requested once app.close() has begun', async () => {
    // Clients reconnecting while the app shut down (after the transports ended their streams,
    // before the HTTP server stopped listening) once got streams that nobody would end; then a
    // 503 on a keep-alive connection that they reused at once, which kept it busy: either way
    // app.close() waited forever (SSE clients of test/client-failover.test.ts did both). Here a
    // WebSocket client that never answers the closing handshake holds the shutdown open for the
    // grace period (the window), and a client retries on one keep-alive connection meanwhile.
    const t = await startApp({ heartbeatInterval: 60_000 });
    const ws = new WebSocket(`${t.wsUrl}/ws?topic=slow`);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const answers: Array<{ status: number; connection: string | undefined }> = [];
    let retrying: Promise<void> | undefined;
    let phase: 'retrying' | 'stopped' = 'retrying';
    try {
      await within(once(ws, 'message'), 5_000, 'pushlet:connected');
      ws.pause();
      const closing = t.close();
      const sessions = t.app.get(PushletHub).sessions;
      await until(() => [...sessions].every((session) => session.isEnded), 5_000, 'the shutdown to end the sessions');
      retrying = (async () => {
        while (phase === 'retrying') {
          const response = await new Promise<http.IncomingMessage>((resolve, reject) =>
            http.get(`${t.url}/events?topic=late`, { agent }, resolve).on('error', reject),
          ).catch(() => undefined);
          if (!response) return; // the server no longer listens
          answers.push({ status: response.statusCode ?? 0, connection: response.headers.connection });
          if (response.statusCode === 200) return void response.destroy();
          response.resume();
          await once(response, 'end');
          await new Promise((resolve) => setTimeout(resolve, 20)); // a reconnecting client's backoff
        }
      })();
      await within(closing, 5_000, 'app.close() while a client retries on a keep-alive connection');
      assert.ok(answers.length > 0, 'the late client was answered');
      for (const answer of answers) assert.deepEqual(answer, { status: 503, connection: 'close' });
    } finally {
      phase = 'stopped';
      agent.destroy();
      await retrying;
      ws.terminate();
      await t.close();
    }
  });
});
