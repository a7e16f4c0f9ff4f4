import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import { createSampleApp } from '../sample/app.js';
import { request } from './support/app.js';
import { parseExposition } from './support/metrics.js';
import { NatsServer } from './support/nats.js';
import { RedisServer } from './support/redis.js';
import { SseClient } from './support/sse-client.js';
import { eventually } from './support/wait.js';

/**
 * The sample's operations routes (issue 15; docs/protocol.md, "The sample app"): `GET /metrics`,
 * `GET /health` (503 while the broker is down), `GET /health/live` and `GET /stats`, the JSON a
 * page can poll.
 */

async function listen(app: INestApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  return (await app.getUrl()).replace('[::1]', '127.0.0.1');
}

describe('sample app: /metrics, /health, /stats (issue 15)', () => {
  const clients: SseClient[] = [];
  let app: INestApplication | undefined;
  let redis: RedisServer | undefined;
  let nats: NatsServer | undefined;
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await app?.close();
    app = undefined;
    await redis?.stop();
    redis = undefined;
    await nats?.stop();
    nats = undefined;
  });

  it('in memory: Prometheus text with the connection, ready, and stats with per-topic counts', async () => {
    app = await createSampleApp({ heartbeatMs: 60_000 }, { logger: false });
    const url = await listen(app);
    const client = await SseClient.open(`${url}/events?topic=room/a`);
    clients.push(client);
    await client.waitForEvents(1);

    const metrics = await request(`${url}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4; charset=utf-8/);
    const samples = parseExposition(metrics.body);
    assert.equal(samples.get('pushlet_connections{transport="sse"}'), 1);
    assert.equal(samples.get('pushlet_topics'), 1);
    assert.equal(samples.get('pushlet_broker_up'), 1);

    const health = await request(`${url}/health`);
    assert.equal(health.status, 200, health.body);
    assert.equal((await request(`${url}/health/live`)).status, 200);

    const stats = await request(`${url}/stats`);
    assert.equal(stats.status, 200);
    assert.match(stats.headers.get('content-type') ?? '', /application\/json/);
    const body = JSON.parse(stats.body) as { connections: { sse: number }; topicSubscribers: unknown; broker: { connected: boolean } };
    assert.equal(body.connections.sse, 1);
    assert.deepEqual(body.topicSubscribers, [{ topic: 'room/a', subscribers: 1 }]);
    assert.equal(body.broker.connected, true);
  });

  it('with REDIS_URL: /health answers 503 while Redis is down and 200 once it is back', async () => {
    redis = await RedisServer.start();
    app = await createSampleApp({ heartbeatMs: 60_000, redisUrl: redis.url }, { logger: false });
    const url = await listen(app);
    assert.equal((await request(`${url}/health`)).status, 200);
    await redis.kill();
    await eventually(async () => (await request(`${url}/health`)).status === 503, 10_000, '/health to answer 503');
    const down = JSON.parse((await request(`${url}/health`)).body) as { status: string; error: { pushlet: { broker: string } } };
    assert.equal(down.status, 'error');
    assert.equal(down.error.pushlet.broker, 'down');
    assert.equal(parseExposition((await request(`${url}/metrics`)).body).get('pushlet_broker_up'), 0);
    await redis.restart();
    await eventually(async () => (await request(`${url}/health`)).status === 200, 15_000, '/health to answer 200 again');
  });

  it('with NATS_URL: /health answers 503 while NATS is down and 200 once it is back, with the stream as it was', async () => {
    nats = await NatsServer.start();
    app = await createSampleApp({ heartbeatMs: 60_000, natsUrl: nats.url }, { logger: false });
    const url = await listen(app);
    assert.equal((await request(`${url}/health`)).status, 200);
    assert.equal((JSON.parse((await request(`${url}/stats`)).body) as { broker: { connected: boolean } }).broker.connected, true);
    await nats.kill();
    await eventually(async () => (await request(`${url}/health`)).status === 503, 15_000, '/health to answer 503');
    assert.equal(parseExposition((await request(`${url}/metrics`)).body).get('pushlet_broker_up'), 0);
    await nats.restart();
    await eventually(async () => (await request(`${url}/health`)).status === 200, 15_000, '/health to answer 200 again');
  });

  it('metrics: false leaves /metrics out and keeps /health and /stats', async () => {
    app = await createSampleApp({ heartbeatMs: 60_000, metrics: false }, { logger: false });
    const url = await listen(app);
    assert.equal((await request(`${url}/metrics`)).status, 404);
    assert.equal((await request(`${url}/health`)).status, 200);
    assert.equal((await request(`${url}/stats`)).status, 200);
  });
});
