import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { request } from './support/app.js';
import { perTestConnections } from './support/connections.js';
import { opsApp, scrape } from './support/metrics.js';
import { RedisServer } from './support/redis.js';
import { eventually, within } from './support/wait.js';

/**
 * Issue 15: `/health` (Terminus readiness) and `pushlet_broker_up` follow the Redis link: the
 * test's own Redis (on a free port) is stopped, readiness goes down and the gauge to 0 while a
 * publication waits in the queue, then both come back once Redis restarts. In memory, both are
 * always up. The link changes state by itself, with no event a client could await: the test
 * polls the endpoints, within bounds.
 */

interface HealthBody {
  status: string;
  details: { pushlet: Record<string, unknown> };
}

async function health(url: string, path = '/health'): Promise<{ status: number; body: HealthBody }> {
  const response = await request(`${url}${path}`);
  return { status: response.status, body: JSON.parse(response.body) as HealthBody };
}

describe('health and broker metrics (issue 15)', () => {
  const { app, sse } = perTestConnections();
  let redis: RedisServer | undefined;
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  it('in memory: ready, alive, pushlet_broker_up 1', async () => {
    const t = await app(opsApp({ heartbeatInterval: 60_000 }, new Registry()));
    const ready = await health(t.url);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.details.pushlet, { broker: 'ready', queued: 0, connections: 0, status: 'up' });
    const live = await health(t.url, '/health/live');
    assert.equal(live.status, 200);
    assert.deepEqual(live.body.details.pushlet, { connections: 0, status: 'up' });
    assert.equal((await scrape(t.url)).get('pushlet_broker_up'), 1);
  });

  it('with Redis: a resume on a watched topic is answered from the recent window, and the metrics say where each came from', async () => {
    redis = await RedisServer.start();
    const t = await app(opsApp({ heartbeatInterval: 60_000, redis: { url: redis.url } }, new Registry()));
    const watcher = await sse(t, '/events?topic=w');
    await watcher.waitForNamed('pushlet:connected');
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await t.pushlet.publish('w', 'message', `m${i}`));
    await watcher.waitForNamed('message', 3);
    const reads = async () => {
      const samples = await scrape(t.url);
      return [samples.get('pushlet_catch_up_reads_total{source="window"}')!, samples.get('pushlet_catch_up_reads_total{source="broker"}')!];
    };
    const [window0, broker0] = await reads();
    // A connection's topics are caught up together (its broadcasts too): from the window when it holds them all.
    const resumed = await sse(t, '/events?topic=w', { 'Last-Event-ID': sent[0]!.id });
    await resumed.waitForNamed('message', 2);
    assert.deepEqual(await reads(), [window0 + 2, broker0], 'w and the broadcasts, both watched here');
    const cold = await sse(t, '/events?topic=cold', { 'Last-Event-ID': sent[0]!.id });
    await cold.waitForNamed('pushlet:connected');
    assert.deepEqual(await reads(), [window0 + 2, broker0 + 2], 'a topic not watched here: both read from Redis');
    assert.ok(((await scrape(t.url)).get('pushlet_recent_window_bytes') ?? 0) > 0);
  });

  it('Redis stopped: readiness 503 and pushlet_broker_up 0, the publication queued and timed; back up after Redis restarts', async () => {
    redis = await RedisServer.start();
    const t = await app(opsApp({ heartbeatInterval: 60_000, redis: { url: redis.url } }, new Registry()));
    assert.equal((await health(t.url)).status, 200);
    const before = await scrape(t.url);
    assert.equal(before.get('pushlet_broker_up'), 1);
    assert.equal(before.get('pushlet_broker_queued'), 0);

    await redis.kill();
    await eventually(async () => (await health(t.url)).status === 503, 10_000, 'readiness to go down');
    const publishedAt = performance.now();
    const publication = t.pushlet.publish('during-outage', 'message', 'waits for Redis');
    publication.catch(() => undefined);
    const down = await health(t.url);
    assert.equal(down.status, 503);
    assert.deepEqual(down.body.details.pushlet, {
      broker: 'down',
      queued: 1,
      connections: 0,
      message: 'the broker is not connected (down): publications wait and clients cannot resume here',
      status: 'down',
    });
    assert.equal((await health(t.url, '/health/live')).status, 200, 'liveness stays up: restarting would not bring Redis back');
    const during = await scrape(t.url);
    assert.equal(during.get('pushlet_broker_up'), 0);
    assert.equal(during.get('pushlet_broker_queued'), 1);
    assert.equal(during.get('pushlet_publish_duration_seconds_count'), 0, 'nothing acknowledged yet');

    const restartedAt = performance.now();
    await redis.restart();
    await within(publication, 15_000, 'the queued publication to reach Redis');
    await eventually(async () => (await health(t.url)).status === 200, 10_000, 'readiness to come back');
    const after = await scrape(t.url);
    assert.equal(after.get('pushlet_broker_up'), 1);
    assert.equal(after.get('pushlet_broker_queued'), 0);
    assert.equal(after.get('pushlet_messages_published_total{origin="server"}'), 1);
    assert.equal(after.get('pushlet_publish_duration_seconds_count'), 1);
    const waited = after.get('pushlet_publish_duration_seconds_sum')!;
    assert.ok(waited >= (restartedAt - publishedAt) / 1000, `the publication was timed through the outage (${waited} s)`);
  });
});
