// Distributed-mode figures on a real Redis started for the run (no port 6379, nothing left behind):
//   1. cross-instance latency: publish on instance A, received by an SSE client of instance B;
//   2. Redis commands per publish (INFO commandstats delta);
//   3. interest routing: what an instance without subscribers of a topic receives, versus an
//      instance that would subscribe to every channel.
// Run: npm run build:all && node build/bench/redis-latency.js [messages] [rate per second]
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { startApp, type TestApp } from '../test/support/app.js';
import { brokerOf } from '../test/support/distributed.js';
import { redisInfo, startRedis } from './lib/redis.js';
import { percentile, round } from './lib/stats.js';

const messages = Number(process.argv[2] ?? 2_000);
const rate = Number(process.argv[3] ?? 500);

/** A bare SSE reader that stamps every message with its arrival time. */
function listen(url: string, onMessage: (data: string, at: number) => void): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { Accept: 'text/event-stream' } }, (response) => {
      let buffer = '';
      let event = 'message';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        const at = performance.now();
        buffer += chunk;
        let index: number;
        while ((index = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, index);
          buffer = buffer.slice(index + 1);
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) {
            if (event === 'pushlet:connected') resolve(request);
            else onMessage(line.slice(6), at);
          } else if (line === '') event = 'message';
        }
      });
    });
    request.on('error', reject);
  });
}

/** Resolves after `ms` without keeping the process alive. */
function deadline(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

async function latency(from: TestApp, to: TestApp, topic: string): Promise<Record<string, number>> {
  const latencies: number[] = [];
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const request = await listen(`${to.url}/events?topic=${topic}`, (data, at) => {
    latencies.push(at - (JSON.parse(data) as { t: number }).t);
    if (latencies.length === messages) done();
  });
  const gap = 1_000 / rate;
  const start = performance.now();
  for (let i = 0; i < messages; i += 1) {
    const due = start + i * gap;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    void from.pushlet.publish(topic, 'message', { i, t: performance.now() });
  }
  await Promise.race([finished, deadline(30_000)]);
  request.destroy();
  return {
    p50: round(percentile(latencies, 0.5), 2),
    p90: round(percentile(latencies, 0.9), 2),
    p99: round(percentile(latencies, 0.99), 2),
    max: round(percentile(latencies, 1), 2),
    received: latencies.length,
  };
}

async function commandsPerPublish(app: TestApp, admin: Redis): Promise<Record<string, number>> {
  await app.pushlet.publish('warm', 'message', 'load the script');
  await admin.config('RESETSTAT');
  const count = 500;
  for (let i = 0; i < count; i += 1) await app.pushlet.publish('counted', 'message', `c${i}`);
  const { commands } = await redisInfo([admin]);
  return Object.fromEntries(
    Object.entries(commands)
      .filter(([name]) => !name.startsWith('config'))
      .map(([name, calls]) => [name, calls / count]),
  );
}

async function interestRouting(apps: readonly TestApp[], url: string): Promise<Record<string, number>> {
  const [a, b] = apps as [TestApp, TestApp, TestApp];
  const everything = new Redis(url);
  let everyChannel = 0;
  everything.on('pmessage', () => (everyChannel += 1));
  await everything.psubscribe(`${brokerOf(a).keys.prefix}c:*`);
  let received = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const count = 1_000;
  const request = await listen(`${a.url}/events?topic=routed`, () => {
    received += 1;
    if (received === count) done();
  });
  const before = apps.map((app) => brokerOf(app).stats().received);
  for (let i = 0; i < count; i += 1) await b.pushlet.publish('routed', 'message', { i, t: 0 });
  await Promise.race([finished, deadline(10_000)]);
  const after = apps.map((app, i) => brokerOf(app).stats().received - before[i]!);
  request.destroy();
  everything.disconnect();
  return { published: count, subscriberInstanceA: after[0]!, publisherInstanceB: after[1]!, idleInstanceC: after[2]!, everyChannelSubscriber: everyChannel };
}

const redis = await startRedis();
const apps: TestApp[] = [];
try {
  for (let i = 0; i < 3; i += 1) apps.push(await startApp({ heartbeatInterval: 60_000, redis: { url: redis.url } }));
  const [a, b] = apps as [TestApp, TestApp];
  const results = {
    messages,
    ratePerSecond: rate,
    crossInstanceMs: await latency(a, b, 'cross'),
    sameInstanceMs: await latency(b, b, 'same'),
    commandsPerPublish: await commandsPerPublish(a, redis.infos[0]!),
    interestRouting: await interestRouting(apps, redis.url),
  };
  console.log(JSON.stringify(results, null, 2));
} finally {
  for (const app of apps) await app.close();
  await redis.stop();
}
