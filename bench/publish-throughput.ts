// Publish throughput through Redis from one instance (issue 13): what one instance can publish a
// second and what each publication costs Redis and the instance, side by side with bare PUBLISH,
// XADD + PUBLISH in MULTI, and Socket.IO's Redis adapter, all in one run on one redis-server.
//
// Every variant: 100 topics, 100-byte messages, `inFlight` publications outstanding at any time,
// for `durationMs`, after a warm-up. Redis CPU is read from INFO (used_cpu_user + used_cpu_sys),
// instance CPU from process.cpuUsage() of this process (which only publishes).
//
// Run: npm run build:all && node build/bench/publish-throughput.js [durationMs] [inFlight] [--json]
// (`npm run bench` runs it as the `publish` scenario, in its own process.)
import { Redis } from 'ioredis';
import { startApp, type TestApp } from '../test/support/app.js';
import { RedisCluster, RedisServer } from '../test/support/redis.js';

const durationMs = Number(process.argv[2] ?? 3_000);
const inFlight = Number(process.argv[3] ?? 64);
const TOPICS = 100;
const PAYLOAD = 'x'.repeat(100);

export interface ThroughputResult {
  readonly name: string;
  readonly published: number;
  readonly perSecond: number;
  /** Redis CPU per published message, µs (summed over every master on a Cluster). */
  readonly redisCpuUs: number;
  /** This process's CPU per published message, µs. */
  readonly instanceCpuUs: number;
  /** Redis commands per published message (scripts' inner commands included), and script calls. */
  readonly commandsPerMessage: number;
  readonly scriptCallsPerMessage: number;
}

type Publish = (topic: string, i: number) => Promise<unknown>;

interface RedisCounters {
  cpuMs: number;
  commands: number;
  scripts: number;
}

async function redisCounters(clients: readonly Redis[]): Promise<RedisCounters> {
  const total = { cpuMs: 0, commands: 0, scripts: 0 };
  for (const client of clients) {
    const info = await client.info('all');
    const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
    const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
    total.cpuMs += (user + sys) * 1_000;
    for (const [, name, calls] of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
      if (name === 'info') continue;
      total.commands += Number(calls);
      if (name === 'evalsha' || name === 'eval') total.scripts += Number(calls);
    }
  }
  return total;
}

/** Keeps `inFlight` publications outstanding for `ms`; resolves to how many completed. */
async function drive(publish: Publish, ms: number): Promise<number> {
  let done = 0;
  let i = 0;
  const end = Date.now() + ms;
  const worker = async () => {
    while (Date.now() < end) {
      const n = i++;
      await publish(`bench/t${n % TOPICS}`, n);
      done += 1;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return done;
}

export async function measure(name: string, publish: Publish, info: readonly Redis[]): Promise<ThroughputResult> {
  await drive(publish, Math.min(1_000, durationMs / 2));
  const redisBefore = await redisCounters(info);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const published = await drive(publish, durationMs);
  const elapsed = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const redisAfter = await redisCounters(info);
  return {
    name,
    published,
    perSecond: Math.round((published / elapsed) * 1_000),
    redisCpuUs: Number((((redisAfter.cpuMs - redisBefore.cpuMs) * 1_000) / published).toFixed(1)),
    instanceCpuUs: Number(((cpu.user + cpu.system) / published).toFixed(1)),
    commandsPerMessage: Number(((redisAfter.commands - redisBefore.commands) / published).toFixed(2)),
    scriptCallsPerMessage: Number(((redisAfter.scripts - redisBefore.scripts) / published).toFixed(3)),
  };
}

async function bare(url: string, info: Redis): Promise<ThroughputResult> {
  const client = new Redis(url);
  try {
    return await measure('bare PUBLISH (ioredis)', (topic, i) => client.publish(`bare:${topic}`, `${i} ${PAYLOAD}`), [info]);
  } finally {
    client.disconnect();
  }
}

async function multi(url: string, info: Redis): Promise<ThroughputResult> {
  const client = new Redis(url);
  try {
    return await measure(
      'XADD MAXLEN ~ 1000 + PUBLISH in MULTI',
      (topic, i) =>
        client
          .multi()
          .xadd(`multi:s:${topic}`, 'MAXLEN', '~', 1000, '*', 'm', PAYLOAD)
          .publish(`multi:c:${topic}`, `${i} ${PAYLOAD}`)
          .exec(),
      [info],
    );
  } finally {
    client.disconnect();
  }
}

async function pushlet(url: string, info: Redis): Promise<ThroughputResult> {
  const app: TestApp = await startApp({ heartbeatInterval: 60_000, redis: { url, keyPrefix: 'pt:' } });
  try {
    return await measure('PushletService.publish (history on)', (topic) => app.pushlet.publish(topic, 'message', PAYLOAD), [info]);
  } finally {
    await app.close();
  }
}

async function socketIo(url: string, info: Redis): Promise<ThroughputResult | undefined> {
  let createAdapter: (pub: Redis, sub: Redis) => unknown;
  let Server: new () => { adapter(a: unknown): void; to(room: string): { emit(event: string, data: string): void }; close(): void };
  try {
    ({ createAdapter } = (await import('@socket.io/redis-adapter')) as never);
    ({ Server } = (await import('socket.io')) as never);
  } catch {
    return undefined;
  }
  const pub = new Redis(url);
  const sub = new Redis(url);
  const io = new Server();
  io.adapter(createAdapter(pub, sub));
  try {
    // emit() is fire-and-forget: each call emits 16 and then waits for a PING on the publishing
    // connection, which Redis answers after those 16 PUBLISH commands (one PING per 16 messages).
    const result = await measure(
      'Socket.IO Redis adapter emit (no history)',
      async (topic) => {
        for (let k = 0; k < 16; k += 1) io.to(topic).emit('message', PAYLOAD);
        await pub.ping();
      },
      [info],
    );
    return {
      ...result,
      published: result.published * 16,
      perSecond: result.perSecond * 16,
      redisCpuUs: Number((result.redisCpuUs / 16).toFixed(1)),
      instanceCpuUs: Number((result.instanceCpuUs / 16).toFixed(1)),
      commandsPerMessage: Number((result.commandsPerMessage / 16).toFixed(2)),
      scriptCallsPerMessage: 0,
    };
  } finally {
    pub.disconnect();
    sub.disconnect();
  }
}

async function cluster(masters: number): Promise<ThroughputResult> {
  const redis = await RedisCluster.start({ masters });
  const nodes = redis.nodes;
  const infos = nodes.map((node) => new Redis(node.port));
  const app = await startApp({ heartbeatInterval: 60_000, redis: { cluster: { nodes }, keyPrefix: 'pt:' } });
  try {
    return await measure(`PushletService.publish, Cluster of ${masters}`, (topic) => app.pushlet.publish(topic, 'message', PAYLOAD), infos);
  } finally {
    await app.close();
    for (const info of infos) info.disconnect();
    await redis.stop();
  }
}

async function main(): Promise<void> {
  const server = await RedisServer.start();
  const info = server.client();
  const results: ThroughputResult[] = [];
  try {
    const only = process.env.ONLY?.split(',');
    const want = (key: string) => !only || only.includes(key);
    if (want('bare')) results.push(await bare(server.url, info));
    if (want('multi')) results.push(await multi(server.url, info));
    if (want('pushlet')) results.push(await pushlet(server.url, info));
    if (want('socketio')) {
      const result = await socketIo(server.url, info);
      if (result) results.push(result);
    }
  } finally {
    info.disconnect();
    await server.stop();
  }
  if (process.env.CLUSTER !== '0' && (process.env.ONLY === undefined || process.env.ONLY.includes('cluster'))) {
    // Same load on a one-master and a three-master Cluster: how publish throughput grows with shards.
    results.push(await cluster(1));
    results.push(await cluster(3));
  }
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(results)}\n`);
  else console.table(results);
}

await main();
