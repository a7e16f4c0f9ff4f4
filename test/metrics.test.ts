import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { Registry } from 'prom-client';
import { MemoryBroker, type BrokerPublication, type Position, type PushletMessage } from '../src/index.js';
import { PUSHLET_METRIC_NAMES } from '../src/metrics/index.js';
import { request, type TestApp } from './support/app.js';
import { perTestConnections } from './support/connections.js';
import { opsApp, pushletSamples, scrape, type Scrape } from './support/metrics.js';
import type { RawSseStream } from './support/raw-sse.js';
import { until } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

/**
 * Issue 15: the Prometheus metrics, scraped over HTTP after a known workload, every value
 * asserted exactly (and the same figures in `stats()`); two apps in one process, each with its
 * own registry or sharing one. Redis outages and health checks: test/metrics-health.test.ts.
 */

const LIMITS = { bufferBytes: 32 * 1024, maxMessageBytes: 16 * 1024, maxConnections: 6 };

/** Lets through requests without an `x-deny` header (the workload's guard refusal). */
const denyGuard: CanActivate = {
  canActivate: (context: ExecutionContext) => context.switchToHttp().getRequest<IncomingMessage>().headers['x-deny'] === undefined,
};

/** Bytes of an SSE event sent as one HTTP/1.1 chunk: `<size in hex>\r\n<event>\r\n`. */
function chunkBytes(eventBytes: number): number {
  return eventBytes.toString(16).length + 2 + eventBytes + 2;
}

/** Bytes of an unmasked WebSocket frame carrying `payload` bytes (RFC 6455: a 2, 4 or 10 byte header). */
function wsFrameBytes(payload: number): number {
  return (payload < 126 ? 2 : payload < 65_536 ? 4 : 10) + payload;
}

/** Bytes of the event with id `id` as the client received it, from its `id:` line to the blank line. */
function sseEventBytes(stream: RawSseStream, id: string): number {
  const event = stream.raw.split('\n\n').find((frame) => frame.startsWith(`id: ${id}\n`));
  assert.ok(event !== undefined, `the stream holds the event ${id}`);
  return Buffer.byteLength(`${event}\n\n`);
}

/** Bytes of every message frame (not `pushlet:*`) a WebSocket client received. */
function wsMessageBytes(client: WsClient): number[] {
  return client.frames
    .filter((frame) => frame.json && !String(frame.json.event).startsWith('pushlet:'))
    .map((frame) => wsFrameBytes(Buffer.byteLength(frame.text)));
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

function histogramCount(samples: Scrape, name: string): number {
  const count = samples.get(`${name}_count`);
  assert.equal(samples.get(`${name}_bucket{le="+Inf"}`), count, `${name}: the +Inf bucket holds every observation`);
  return count!;
}

describe('Prometheus metrics after a known workload (issue 15)', () => {
  const { app, sse, ws, track } = perTestConnections();

  it('counts connections of each transport, messages, a slow consumer, a resume that recovers and one that resets, refusals: every value exactly', async () => {
    const registry = new Registry();
    const t = await app(
      opsApp(
        {
          heartbeatInterval: 60_000,
          limits: LIMITS,
          authorize: ({ topic }) => !topic.startsWith('private/'),
          routes: { guards: [denyGuard] },
          ws: { allowedOrigins: ['https://ok.example'] },
        },
        registry,
      ),
    );

    // Three connections on `news`: SSE in each format, and WebSocket (also on `other`).
    const text = await sse(t, '/events?topic=news');
    const json = await sse(t, '/events?topic=news&format=json');
    const socket = await ws(t, '/ws?topic=news&topic=other');
    await text.waitForNamed('pushlet:connected');
    await json.waitForNamed('pushlet:connected');
    await socket.waitForEvents('pushlet:connected');
    const news: PushletMessage[] = [];
    for (const data of ['one', 'two', 'three']) news.push(await t.pushlet.publish('news', 'message', data));
    const broadcast = await t.pushlet.publishToAll('notice', 'to everyone');
    await text.waitForNamed('notice');
    await json.waitForNamed('notice');
    await socket.waitForEvents('notice');

    // A WebSocket client that stops reading, flooded until it is cut off: the message that
    // overflows its buffer is not written, so not counted.
    const slowClient = await ws(t, '/ws?topic=slow');
    await slowClient.waitForEvents('pushlet:connected');
    (slowClient.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const slow: PushletMessage[] = [];
    const big = 'x'.repeat(15 * 1024);
    while (t.pushlet.stats().slowConsumers.ws === 0) {
      assert.ok(slow.length < 5_000, 'the paused client was cut off');
      slow.push(await t.pushlet.publish('slow', 'message', big));
      await new Promise((resolve) => setImmediate(resolve));
    }
    slowClient.close();
    await until(() => t.pushlet.stats().connections.ws === 1, 5_000, 'the slow consumer is gone');

    // A resume that recovers (two messages and the broadcast replayed) and one that resets.
    const resumed = await sse(t, '/events?topic=news', { 'Last-Event-ID': news[0]!.id });
    await resumed.waitForNamed('notice');
    assert.deepEqual(
      resumed.dispatched.map((e) => e.data),
      ['{"topics":["news"],"heartbeat":60000}', 'two', 'three', 'to everyone'],
    );
    const reset = await sse(t, '/events?topic=news', { 'Last-Event-ID': 'garbage' });
    await reset.waitForNamed('pushlet:reset');
    const last = await t.pushlet.publish('news', 'message', 'four');
    for (const stream of [text, json, resumed, reset]) await stream.waitFor(() => stream.raw.includes(`id: ${last.id}\n`), 5_000, `message four`);
    await socket.waitFor((frame) => frame.id === last.id);

    // Refused: a bad topic, a topic authorize refuses, a guard, a foreign origin, one connection too many.
    assert.equal((await sse(t, '/events?topic=bad%20topic')).status, 400);
    assert.equal((await sse(t, '/events?topic=private/x')).status, 403);
    assert.equal((await sse(t, '/events?topic=news', { 'x-deny': '1' })).status, 403);
    assert.equal(await WsClient.refusal(`${t.wsUrl}/ws`, { origin: 'https://evil.example' }), 403);
    const sixth = await ws(t, '/ws');
    await sixth.waitForEvents('pushlet:connected');
    const seventh = track(await WsClient.open(`${t.wsUrl}/ws`));
    assert.equal((await seventh.waitForClose()).code, 1013);

    const samples = await scrape(t.url);
    const k = slow.length;
    const live = [...news, broadcast, last];
    const sseBytes =
      sum(live.map((m) => chunkBytes(sseEventBytes(text, m.id)))) +
      sum(live.map((m) => chunkBytes(sseEventBytes(json, m.id)))) +
      chunkBytes(sseEventBytes(resumed, last.id)) +
      chunkBytes(sseEventBytes(reset, last.id));
    const socketBytes = wsMessageBytes(socket);
    assert.equal(socketBytes.length, 5);
    const slowBytes = slow.slice(0, k - 1).map((m) => wsFrameBytes(Buffer.byteLength(JSON.stringify(m))));
    assert.deepEqual(pushletSamples(samples), {
      'pushlet_connections{transport="sse"}': 4,
      'pushlet_connections{transport="ws"}': 2,
      pushlet_subscriptions: 6,
      pushlet_topics: 2,
      'pushlet_messages_published_total{origin="server"}': 5 + k,
      'pushlet_messages_published_total{origin="client"}': 0,
      'pushlet_deliveries_total{transport="sse"}': 12,
      'pushlet_deliveries_total{transport="ws"}': 5 + k - 1,
      'pushlet_bytes_sent_total{transport="sse"}': sseBytes,
      'pushlet_bytes_sent_total{transport="ws"}': sum(socketBytes) + sum(slowBytes),
      'pushlet_slow_consumer_disconnects_total{transport="sse"}': 0,
      'pushlet_slow_consumer_disconnects_total{transport="ws"}': 1,
      'pushlet_resumes_total{result="recovered"}': 1,
      'pushlet_resumes_total{result="reset"}': 1,
      pushlet_replayed_messages_total: 3,
      // In memory there is no window: every topic of every start (broadcasts included) is read from the process's history.
      'pushlet_catch_up_reads_total{source="window"}': 0,
      'pushlet_catch_up_reads_total{source="broker"}': 14,
      pushlet_recent_window_bytes: 0,
      'pushlet_connections_refused_total{reason="limit"}': 1,
      'pushlet_connections_refused_total{reason="address_limit"}': 0,
      'pushlet_connections_refused_total{reason="user_limit"}': 0,
      'pushlet_connections_refused_total{reason="unauthenticated"}': 0,
      'pushlet_connections_refused_total{reason="guard"}': 1,
      'pushlet_connections_refused_total{reason="forbidden"}': 1,
      'pushlet_connections_refused_total{reason="invalid"}': 1,
      'pushlet_connections_refused_total{reason="origin"}': 1,
      'pushlet_connections_refused_total{reason="shutdown"}': 0,
      'pushlet_connections_refused_total{reason="unavailable"}': 0,
      pushlet_broker_up: 1,
      pushlet_broker_queued: 0,
    });
    // Every publication timed, every message that reached subscribers here timed once.
    assert.equal(histogramCount(samples, 'pushlet_publish_duration_seconds'), 5 + k);
    assert.equal(histogramCount(samples, 'pushlet_broker_lag_seconds'), 5 + k);

    // stats() says the same, and lists each topic's subscribers on request.
    const stats = t.pushlet.stats({ topics: true });
    assert.deepEqual(stats.connections, { sse: 4, ws: 2, total: 6 });
    assert.deepEqual(stats.deliveries, { sse: 12, ws: 5 + k - 1, total: 12 + 5 + k - 1 });
    assert.equal(stats.bytesSent.total, sseBytes + sum(socketBytes) + sum(slowBytes));
    assert.deepEqual(stats.publishedBy, { server: 5 + k, client: 0 });
    assert.equal(stats.published, 5 + k);
    assert.equal(stats.slowConsumersDisconnected, 1);
    assert.deepEqual(stats.topicSubscribers, [
      { topic: 'news', subscribers: 5 },
      { topic: 'other', subscribers: 1 },
    ]);
    assert.equal(t.pushlet.stats().topicSubscribers, undefined, 'per-topic counts only on request');
  });

  it('two apps in one process, each with its own registry, count only their own', async () => {
    const [first, second] = [new Registry(), new Registry()];
    const a = await app(opsApp({ heartbeatInterval: 60_000 }, first));
    const b = await app(opsApp({ heartbeatInterval: 60_000 }, second));
    const reader = await sse(a, '/events?topic=t');
    await reader.waitForNamed('pushlet:connected');
    const socket = await ws(b, '/ws?topic=t');
    await socket.waitForEvents('pushlet:connected');
    await a.pushlet.publish('t', 'message', 'for a');
    await a.pushlet.publish('t', 'message', 'for a again');
    await b.pushlet.publish('t', 'message', 'for b');
    await reader.waitFor(() => reader.named('message').length === 2, 5_000, 'two messages');
    await socket.waitForMessages(1);

    const fromA = pushletSamples(await scrape(a.url));
    const fromB = pushletSamples(await scrape(b.url));
    assert.equal(fromA['pushlet_connections{transport="sse"}'], 1);
    assert.equal(fromA['pushlet_connections{transport="ws"}'], 0);
    assert.equal(fromA['pushlet_messages_published_total{origin="server"}'], 2);
    assert.equal(fromA['pushlet_deliveries_total{transport="sse"}'], 2);
    assert.equal(fromB['pushlet_connections{transport="sse"}'], 0);
    assert.equal(fromB['pushlet_connections{transport="ws"}'], 1);
    assert.equal(fromB['pushlet_messages_published_total{origin="server"}'], 1);
    assert.equal(fromB['pushlet_deliveries_total{transport="ws"}'], 1);
    assert.equal(fromB['pushlet_deliveries_total{transport="sse"}'], 0);
  });

  it('two apps on one registry: registered once, figures summed, counters kept when one closes, nothing left when both have', async () => {
    const shared = new Registry();
    const a = await app(opsApp({ heartbeatInterval: 60_000 }, shared));
    const b = await app(opsApp({ heartbeatInterval: 60_000 }, shared));
    assert.deepEqual(
      shared
        .getMetricsAsArray()
        .map((metric) => (metric as unknown as { name: string }).name)
        .sort(),
      [...PUSHLET_METRIC_NAMES].sort(),
      'each metric once',
    );
    const onA = await sse(a, '/events?topic=t');
    const onB = await sse(b, '/events?topic=t');
    await onA.waitForNamed('pushlet:connected');
    await onB.waitForNamed('pushlet:connected');
    await a.pushlet.publish('t', 'message', 'a');
    await b.pushlet.publish('t', 'message', 'b');
    const both = pushletSamples(await scrape(a.url));
    assert.equal(both['pushlet_connections{transport="sse"}'], 2);
    assert.equal(both['pushlet_messages_published_total{origin="server"}'], 2);
    assert.equal(both['pushlet_deliveries_total{transport="sse"}'], 2);
    assert.deepEqual(both, pushletSamples(await scrape(b.url)), 'both apps serve the same registry');

    await b.close();
    const left = pushletSamples(await scrape(a.url));
    assert.equal(left['pushlet_connections{transport="sse"}'], 1, 'gauges drop the closed app');
    assert.equal(left['pushlet_messages_published_total{origin="server"}'], 2, 'counters never go back');
    assert.equal(left['pushlet_deliveries_total{transport="sse"}'], 2);
    await a.close();
    assert.deepEqual(shared.getMetricsAsArray(), [], 'the last app to close unregisters every metric');
  });

  it('refuses to start on a registry where a pushlet_* name is taken by something else', async () => {
    const registry = new Registry();
    registry.registerMetric(new (await import('prom-client')).Gauge({ name: 'pushlet_topics', help: 'not ours', registers: [] }));
    await assert.rejects(
      app(opsApp({ heartbeatInterval: 60_000 }, registry)),
      /a metric named pushlet_topics is already registered on this prom-client registry, and not by Pushlet/,
    );
  });
});

/** A memory broker that records nothing while `holding`: publications wait for it, as for an unreachable backend. */
class QueueingBroker extends MemoryBroker {
  holding = false;

  override append(publications: readonly BrokerPublication[]): Array<Promise<Position>> {
    return this.holding ? publications.map(() => new Promise<Position>(() => undefined)) : super.append(publications);
  }
}

describe('readiness of a custom broker with a queue (issue 15)', () => {
  const { app } = perTestConnections();

  it('is ready up to maxQueued publications waiting, not past it; liveness stays up; pushlet_broker_queued follows', async () => {
    const broker = new QueueingBroker({ maxCount: 10, maxAgeMs: 60_000, maxTopics: 10 });
    const t: TestApp = await app(opsApp({ heartbeatInterval: 60_000, broker }, new Registry(), { maxQueued: 2 }));
    broker.holding = true;
    // Never answered: they stay queued until the app's close fails them.
    const publish = (n: number) => void t.pushlet.publish('q', 'message', `m${n}`).catch(() => undefined);
    const queued = (n: number) => until(() => t.pushlet.stats().broker.queued === n, 5_000, `${n} publications to wait`);
    publish(1);
    publish(2);
    await queued(2);
    const ready = await request(`${t.url}/health`);
    assert.equal(ready.status, 200, ready.body);
    assert.deepEqual(JSON.parse(ready.body).details.pushlet, { broker: 'ready', queued: 2, connections: 0, status: 'up' });
    publish(3);
    await queued(3);
    const full = await request(`${t.url}/health`);
    assert.equal(full.status, 503, full.body);
    assert.deepEqual(JSON.parse(full.body).details.pushlet, {
      broker: 'ready',
      queued: 3,
      connections: 0,
      message: '3 publications wait for the broker, more than 2',
      status: 'down',
    });
    assert.equal((await request(`${t.url}/health/live`)).status, 200);
    assert.equal((await scrape(t.url)).get('pushlet_broker_queued'), 3);
  });
});
