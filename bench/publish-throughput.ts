/**
 * `publish`: publish throughput through Redis from one instance (issue 13): what one instance can
 * publish a second and what each publication costs Redis and the instance, side by side with bare
 * PUBLISH, XADD + PUBLISH in MULTI, and Socket.IO's Redis adapter, on one redis-server; then on a
 * one-master and a three-master Cluster. Every variant: 100 topics, 100-byte messages, `inFlight`
 * publications outstanding, for `durationMs` after a warm-up. Redis CPU and commands from INFO,
 * instance CPU from process.cpuUsage() of the measuring process (which only publishes): the
 * scenario runs it in a process of its own, `node build/bench/publish-throughput.js [durationMs]
 * [inFlight] [--json]` (ONLY=bare,multi,pushlet,socketio,cluster,patterns picks variants).
 *
 * `patterns` (issue 23): three instances in this process on the server, one publishing (measured)
 * and two holding the subscriptions, every message delivered once: to 100 exact subscriptions,
 * then to 10,000 patterns held across the two (`orders/<n>/*`, one first segment: each holder gets
 * the segment's traffic and matches it), then to the 100 exact subscriptions again with 10,000
 * patterns of distinct first segments held (`p<n>/#`, matching nothing published: what holding
 * them costs Redis and the holders, which then take every message through one catch-all glob).
 *
 * `nats` (issue 24): the same load on one nats-server -js (file storage, its own port and store):
 * bare JetStream publishes (acknowledged, with `Nats-Msg-Id`, into a stream with the same
 * per-subject limit) against `PushletService.publish` through `natsBroker()`. Server CPU is the
 * nats-server process's utime+stime from /proc; the publishing instance also reads the stream back
 * live (its ordered consumer: every instance receives every publication on NATS 2.9).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { connect } from 'nats';
import { natsBroker } from '../src/nats/index.js';
import { startApp } from '../test/support/app.js';
import { NatsServer } from '../test/support/nats.js';
import { sampleProcess } from './lib/proc.js';
import { redisInfo, startRedis, type RedisInfo } from './lib/redis.js';
import { col, type Row, type Scenario } from './lib/scenario.js';
import { round, sum } from './lib/stats.js';

const TOPICS = 100;
const PAYLOAD = 'x'.repeat(100);

interface ThroughputResult {
  /** The row's peer id (bare-publish, xadd-multi, pushlet, socketio-adapter, pushlet-cluster-<masters>). */
  peer: string;
  name: string;
  published: number;
  perSecond: number;
  /** The server's CPU per published message, µs (Redis: summed over every master on a Cluster; or nats-server). */
  redisCpuUs: number;
  /** This process's CPU per published message, µs. */
  instanceCpuUs: number;
  /** Redis commands per published message (scripts' inner commands included), and script calls (none on NATS). */
  commandsPerMessage?: number;
  scriptCallsPerMessage?: number;
}

type Publish = (topic: string, i: number) => Promise<unknown>;

/** Keeps `inFlight` publications outstanding for `ms`; resolves to how many completed. */
async function drive(publish: Publish, ms: number, inFlight: number, topicOf = (n: number) => `bench/t${n % TOPICS}`): Promise<number> {
  let done = 0;
  let i = 0;
  const end = Date.now() + ms;
  const worker = async () => {
    while (Date.now() < end) {
      const n = i++;
      await publish(topicOf(n), n);
      done += 1;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return done;
}

/** One variant after a warm-up; `perCall`: messages published by one call of `publish`. */
async function measure(
  peer: string,
  name: string,
  publish: Publish,
  server: readonly Redis[] | NatsServer,
  durationMs: number,
  inFlight: number,
  perCall = 1,
  topicOf?: (n: number) => string,
): Promise<ThroughputResult> {
  const read = async (): Promise<{ cpuMs: number; info?: RedisInfo }> => {
    if (server instanceof NatsServer) return { cpuMs: sampleProcess(server.pid!).cpuMs };
    const info = await redisInfo(server);
    return { cpuMs: info.cpuMs, info };
  };
  await drive(publish, Math.min(1_000, durationMs / 2), inFlight, topicOf);
  const before = await read();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const published = (await drive(publish, durationMs, inFlight, topicOf)) * perCall;
  const elapsed = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const after = await read();
  const count = (i: RedisInfo, scripts: boolean) =>
    sum(Object.entries(i.commands).map(([cmd, calls]) => (!scripts || cmd === 'evalsha' || cmd === 'eval' ? calls : 0)));
  return {
    peer,
    name,
    published,
    perSecond: Math.round((published / elapsed) * 1_000),
    redisCpuUs: round(((after.cpuMs - before.cpuMs) * 1_000) / published, 1),
    instanceCpuUs: round((cpu.user + cpu.system) / published, 1),
    ...(before.info && after.info
      ? {
          commandsPerMessage: round((count(after.info, false) - count(before.info, false)) / published, 2),
          scriptCallsPerMessage: round((count(after.info, true) - count(before.info, true)) / published, 3),
        }
      : {}),
  };
}

async function main(durationMs: number, inFlight: number): Promise<ThroughputResult[]> {
  const only = process.env.ONLY?.split(',');
  const want = (key: string) => !only || only.includes(key);
  const results: ThroughputResult[] = [];
  const run = async (peer: string, name: string, publish: Publish, infos: readonly Redis[], perCall?: number) =>
    results.push(await measure(peer, name, publish, infos, durationMs, inFlight, perCall));
  const pushletOn = async (peer: string, name: string, redis: Awaited<ReturnType<typeof startRedis>>) => {
    const app = await startApp({
      heartbeatInterval: 60_000,
      redis: { ...(redis.url ? { url: redis.url } : { cluster: { nodes: redis.nodes } }), keyPrefix: 'pt:' },
    });
    try {
      await run(peer, name, (topic) => app.pushlet.publish(topic, 'message', PAYLOAD), redis.infos);
    } finally {
      await app.close();
    }
  };
  // One redis-server, then the same load on a one-master and a three-master Cluster: how publish throughput grows with shards.
  for (const masters of [0, ...(want('cluster') && process.env.CLUSTER !== '0' ? [1, 3] : [])]) {
    const redis = await startRedis(masters);
    try {
      if (masters > 0) {
        await pushletOn(`pushlet-cluster-${masters}`, `PushletService.publish, Cluster of ${masters}`, redis);
        continue;
      }
      const client = new Redis(redis.url);
      if (want('bare')) await run('bare-publish', 'bare PUBLISH (ioredis)', (topic, i) => client.publish(`bare:${topic}`, `${i} ${PAYLOAD}`), redis.infos);
      if (want('multi')) {
        const multi: Publish = (topic, i) =>
          client.multi().xadd(`multi:s:${topic}`, 'MAXLEN', '~', 1000, '*', 'm', PAYLOAD).publish(`multi:c:${topic}`, `${i} ${PAYLOAD}`).exec();
        await run('xadd-multi', 'XADD MAXLEN ~ 1000 + PUBLISH in MULTI', multi, redis.infos);
      }
      client.disconnect();
      if (want('pushlet')) await pushletOn('pushlet', 'PushletService.publish (history on)', redis);
      if (want('patterns')) results.push(...(await patternVariants(redis, durationMs, inFlight)));
      if (want('socketio')) {
        const { createAdapter } = await import('@socket.io/redis-adapter');
        const { Server } = await import('socket.io');
        const [pub, sub] = [new Redis(redis.url), new Redis(redis.url)];
        const io = new Server();
        io.adapter(createAdapter(pub, sub));
        // emit() is fire-and-forget: each call emits 16 and then waits for a PING on the publishing
        // connection, which Redis answers after those 16 PUBLISH commands (one PING per 16 messages).
        const emit16: Publish = async (topic) => {
          for (let k = 0; k < 16; k += 1) io.to(topic).emit('message', PAYLOAD);
          await pub.ping();
        };
        await run('socketio-adapter', 'Socket.IO Redis adapter emit (no history)', emit16, redis.infos, 16);
        pub.disconnect();
        sub.disconnect();
      }
    } finally {
      await redis.stop();
    }
  }
  if (want('nats')) results.push(...(await natsVariants(durationMs, inFlight)));
  return results;
}

/** The `nats` variants (see the header): bare JetStream publishes, then PushletService.publish through natsBroker(). */
async function natsVariants(durationMs: number, inFlight: number): Promise<ThroughputResult[]> {
  const server = await NatsServer.start();
  const results: ThroughputResult[] = [];
  try {
    // As the broker connects: no stack traces captured per request (nats.js's noAsyncTraces).
    const nc = await connect({ servers: server.url, noAsyncTraces: true });
    try {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.add({ name: 'bare', subjects: ['bare.>'], max_msgs_per_subject: 1_000, duplicate_window: 120e9 });
      const js = nc.jetstream();
      const body = new TextEncoder().encode(PAYLOAD);
      const bare: Publish = (topic, i) => js.publish(`bare.${topic.replace('/', '.')}`, body, { msgID: `bare:${i}` });
      results.push(await measure('bare-jetstream', 'bare JetStream publish (nats.js, acknowledged, Nats-Msg-Id)', bare, server, durationMs, inFlight));
    } finally {
      await nc.close();
    }
    const app = await startApp({ heartbeatInterval: 60_000, broker: natsBroker({ servers: server.url, stream: 'pt', subjectPrefix: 'pt' }) });
    try {
      const publish: Publish = (topic) => app.pushlet.publish(topic, 'message', PAYLOAD);
      results.push(await measure('pushlet-nats', 'PushletService.publish through natsBroker() (history on)', publish, server, durationMs, inFlight));
    } finally {
      await app.close();
    }
  } finally {
    await server.stop();
  }
  return results;
}

/** The `patterns` variants (see the header): every message delivered once, with and without 10,000 patterns held. */
async function patternVariants(redis: Awaited<ReturnType<typeof startRedis>>, durationMs: number, inFlight: number): Promise<ThroughputResult[]> {
  const results: ThroughputResult[] = [];
  const topicOf = (n: number) => `orders/${n % TOPICS}/x`;
  const variants: Array<[string, string, (i: number) => string | undefined, boolean]> = [
    ['pushlet-exact', '100 exact subscriptions on 2 instances', () => undefined, true],
    ['pushlet-patterns', '10,000 patterns orders/<n>/* on 2 instances', (i) => `orders/${i}/*`, false],
    ['pushlet-patterns-held', '100 exact subscriptions + 10,000 patterns p<n>/# held', (i) => `p${i}/#`, true],
  ];
  for (const [peer, name, pattern, exact] of variants) {
    const options = { heartbeatInterval: 60_000, redis: { url: redis.url!, keyPrefix: `pp-${peer}:` } };
    const [a, b, c] = [await startApp(options), await startApp(options), await startApp(options)];
    let [sent, delivered] = [0, 0];
    const subscriptions = [];
    try {
      const holders = [b, c];
      if (exact) for (let k = 0; k < TOPICS; k++) subscriptions.push(holders[k % 2]!.pushlet.subscribe(topicOf(k)).subscribe(() => (delivered += 1)));
      for (let i = 0; i < 10_000; i++) {
        const held = pattern(i);
        if (held) subscriptions.push(holders[i % 2]!.pushlet.subscribe(held).subscribe(() => (delivered += 1)));
      }
      // Subscriptions are live within a few turns; a second covers 10,000 of them.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const publish: Publish = (topic) => ((sent += 1), a.pushlet.publish(topic, 'message', PAYLOAD));
      const result = await measure(peer, name, publish, redis.infos, durationMs, inFlight, 1, topicOf);
      await new Promise((resolve) => setTimeout(resolve, 500));
      results.push({ ...result, name: `${name} (${(delivered / sent).toFixed(2)} deliveries/msg)` });
    } finally {
      for (const subscription of subscriptions) subscription.unsubscribe();
      for (const app of [a, b, c]) await app.close();
    }
  }
  return results;
}

export const publish: Scenario = {
  id: 'publish',
  async rows(c) {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), String(c.quick ? 1_000 : 4_000), '64', '--json'], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    let results: ThroughputResult[];
    try {
      results = JSON.parse((child.stdout ?? '').trim().split('\n').at(-1) ?? '[]');
    } catch {
      results = [];
    }
    const rows: Row[] = results.map(({ peer, name, published: _, ...metrics }) => ({
      peer,
      label: name,
      pushlet: peer.startsWith('pushlet'),
      status: 'ok',
      metrics,
    }));
    if (rows.length === 0)
      rows.push({
        peer: 'pushlet',
        label: 'PushletService.publish',
        pushlet: true,
        status: 'failed',
        note: (child.stderr ?? String(child.error)).slice(-500),
        metrics: {},
      });
    return rows;
  },
  title: () => 'Publish throughput through Redis (and NATS JetStream) from one instance',
  description: (c) =>
    `One process publishes to 100 topics (100-byte messages) with 64 publications in flight for ${c.quick ? 1 : 4} s after a warm-up, ` +
    `on one redis-server (own process, free loopback port), then on a one-master and a three-master Cluster. Redis CPU from INFO (all masters), ` +
    `instance CPU from the publishing process; Redis commands per message include the scripts' inner commands. ` +
    `Pushlet records every message in its topic's history (Redis Streams) and publishes it through atomic scripts carrying an event-loop turn's publications (a turn spread over up to four calls while few are in flight; per master on a Cluster); ` +
    `bare PUBLISH and the Socket.IO Redis adapter keep no history. ` +
    `Then on one nats-server -js (file storage): bare acknowledged JetStream publishes with Nats-Msg-Id against PushletService.publish through natsBroker(); ` +
    `server CPU there is the nats-server process's from /proc, and the publishing instance also reads every publication back live (its ordered consumer).`,
  params: (c) => ({ durationMs: c.quick ? 1_000 : 4_000, inFlight: 64, topics: TOPICS, payloadBytes: 100 }),
  columns: [
    col('perSecond', 'published/s', 0, 'higher'),
    col('redisCpuUs', 'server CPU µs/msg (Redis or NATS)', 1, 'lower'),
    col('instanceCpuUs', 'instance CPU µs/msg', 1, 'lower'),
    col('commandsPerMessage', 'Redis commands/msg', 2),
    col('scriptCallsPerMessage', 'script calls/msg', 3),
  ],
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = await main(Number(process.argv[2] ?? 3_000), Number(process.argv[3] ?? 64));
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(results)}\n`);
  else console.table(results);
}
