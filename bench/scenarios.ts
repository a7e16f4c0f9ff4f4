/**
 * Every scenario of `npm run bench`, as data: its id, its peers, its parameters, and the
 * measurement functions the one runner (lib/scenario.ts) calls. The scenarios with processes of
 * their own (client SDK, storm, publish throughput) are defined next to them and listed here.
 */
import { resolve } from 'node:path';
import { clientReconnect } from './client-reconnect.js';
import { clientSize } from './client-size.js';
import type { BenchConfig } from './config.js';
import { floodPhase, mergePhases, steadyPhase, warmUp, type PhaseResult } from './lib/phases.js';
import { sleep } from './lib/proc.js';
import { PEERS, type ClientPool, type ServerHandle } from './lib/processes.js';
import { NatsServer } from '../test/support/nats.js';
import { startRedis } from './lib/redis.js';
import {
  col,
  errorCount,
  integrity,
  INTEGRITY_COLUMNS,
  openAll,
  phaseDetail,
  processesFor,
  roundDetail,
  startPool,
  startServer,
  targetOf,
  type Cleanup,
  type Entry,
  type Measured,
  type Row,
  type Scenario,
} from './lib/scenario.js';
import { median, round, sum } from './lib/stats.js';
import { publish } from './publish-throughput.js';
import { storm } from './reconnect-storm.js';

const MB = 1024 * 1024;
const WS_PEERS = ['ws', 'socketio', 'pushlet-ws'];
const SSE_PEERS = ['sse', 'pushlet-sse'];
const transportName = (t: 'ws' | 'sse') => (t === 'ws' ? 'WebSocket' : 'SSE');
const serverEnv = (c: BenchConfig, extra: NodeJS.ProcessEnv = {}) => ({ HEARTBEAT_MS: '30000', BENCH_PAYLOAD: String(c.payloadBytes), ...extra });

interface Loaded {
  server: ServerHandle;
  pool: ClientPool;
  steady: PhaseResult[];
  flood: PhaseResult[];
}

/** One server, `count` connections to it, warmed up (each connection has seen a message). */
async function loaded(
  id: string,
  { peer, rowId, env }: Entry,
  c: BenchConfig,
  cleanup: Cleanup,
  count: number,
  topic: { topic?: string; topicPrefix?: string },
  topics: string[],
): Promise<Loaded> {
  const server = await startServer(peer, cleanup, serverEnv(c, env), `${id}-${rowId}`);
  const pool = await startPool(processesFor(c, count), `${id}-${rowId}`, cleanup);
  await openAll(pool, peer, server, count, c, topic);
  await warmUp(server, pool, topics, count);
  return { server, pool, steady: [], flood: [] };
}

const topicList = (c: BenchConfig) => Array.from({ length: c.topics }, (_, i) => `t${i}`);
/** A steady rate published on the loaded server itself; saturation of its one topic. */
const steadyOn = (st: Loaded, topics: string[], rate: number, durationMs: number) =>
  steadyPhase({ publisher: st.server, receiver: st.server, pool: st.pool, topics, rate, durationMs });
const floodOn = (st: Loaded, c: BenchConfig, durationMs: number) =>
  floodPhase({ server: st.server, pool: st.pool, topic: 'fanout', durationMs, window: c.floodWindow });
/** Everything that went wrong in `phases` (the last one's counters are cumulative), and a phase that did not drain. */
const phaseErrors = (servers: ServerHandle[], ...phases: PhaseResult[]) =>
  errorCount(servers, phases.at(-1)!.collected, sum(phases.map((p) => p.publishErrors + (p.drained ? 0 : 1))));

/** Thousands of subscribers on one topic: latency at a steady rate, then throughput at saturation. */
const fanout = (t: 'ws' | 'sse'): Scenario<Loaded> => ({
  id: `fanout-${t}`,
  peers: t === 'ws' ? WS_PEERS : SSE_PEERS,
  title: (c) => `Fan-out, ${transportName(t)}: ${c.fanoutSubs.toLocaleString('en')} subscribers on one topic`,
  description: (c) =>
    `Steady: ${c.steadyRate} msg/s for ${c.steadyMs / 1000} s (latency, CPU per delivery). ` +
    `Saturation: published as fast as the server delivers, at most ${c.floodWindow} messages ahead of the slowest client, for ${c.floodMs / 1000} s ` +
    `(the server is the bottleneck when its event loop is busy all the time and the publisher never waits for the clients). ` +
    `Peers run side by side, each measurement in ${c.rounds} interleaved slices.`,
  params: (c) => ({
    subscribers: c.fanoutSubs,
    steadyRate: c.steadyRate,
    steadyMs: c.steadyMs,
    floodMs: c.floodMs,
    floodWindow: c.floodWindow,
    payloadBytes: c.payloadBytes,
    rounds: c.rounds,
  }),
  async setup(entry, c, cleanup) {
    const st = await loaded(`fanout-${t}`, entry, c, cleanup, c.fanoutSubs, { topic: 'fanout' }, ['fanout']);
    await floodOn(st, c, c.preheatMs);
    return st;
  },
  phases: [
    async (st, c) => void st.steady.push(await steadyOn(st, ['fanout'], c.steadyRate, c.steadyMs / c.rounds)),
    async (st, c) => void st.flood.push(await floodOn(st, c, c.floodMs / c.rounds)),
  ],
  async finish({ server, steady: steadyRuns, flood: floodRuns }) {
    const steady = mergePhases(steadyRuns);
    const flood = mergePhases(floodRuns);
    const stats = await server.stats(true);
    return {
      metrics: {
        steadyP50Ms: steady.latency.p50Ms,
        steadyP99Ms: steady.latency.p99Ms,
        steadyP99SliceMs: steady.p99SliceMedianMs ?? NaN,
        steadyCpuUs: steady.cpuUsPerDelivery,
        satDeliveriesPerSec: flood.deliveriesPerSec,
        satCpuUs: flood.cpuUsPerDelivery,
        satServerCpuPct: flood.serverCpuPct,
        satP99Ms: flood.latency.p99Ms,
        satElu: flood.flow?.eventLoopUtilization ?? NaN,
        satStalls: flood.flow?.stalls ?? NaN,
        clientCpuPct: flood.clientCpuPct,
        rssMB: round(stats.rssBytes / MB, 1),
        ...integrity(flood.collected),
        errors: phaseErrors([server], steady, flood),
      },
      detail: {
        steady: phaseDetail(steady),
        saturation: phaseDetail(flood),
        rounds: { steady: steadyRuns.map(roundDetail), saturation: floodRuns.map(roundDetail) },
        server: stats,
        problems: server.problems(),
      },
    };
  },
  columns: [
    col('steadyP50Ms', 'p50 ms @steady', 2, 'lower'),
    col('steadyP99Ms', 'p99 ms @steady', 2, 'lower'),
    col('steadyP99SliceMs', 'p99 ms @steady, median slice', 2, 'lower'),
    col('steadyCpuUs', 'CPU µs/delivery @steady', 2, 'lower'),
    col('satDeliveriesPerSec', 'deliveries/s @saturation', 0, 'higher'),
    col('satCpuUs', 'CPU µs/delivery @saturation', 2, 'lower'),
    col('satServerCpuPct', 'server CPU % @saturation', 0),
    col('satP99Ms', 'p99 ms @saturation', 1),
    col('satElu', 'server event-loop use @saturation', 2),
    col('satStalls', 'waits for slow clients', 0),
    col('clientCpuPct', 'load-client CPU % (all processes)', 0),
    col('rssMB', 'RSS MB', 0, 'lower'),
    ...INTEGRITY_COLUMNS,
  ],
});

/** One subscriber per topic, messages spread over all topics: per-message cost, not fan-out. */
const manyTopics = (t: 'ws' | 'sse'): Scenario<Loaded> => ({
  id: `topics-${t}`,
  peers: t === 'ws' ? WS_PEERS : SSE_PEERS,
  title: (c) => `Many topics, ${transportName(t)}: ${c.topics.toLocaleString('en')} topics, one subscriber each`,
  description: (c) =>
    `${c.topicsRate.toLocaleString('en')} msg/s in total, round-robin over the topics, for ${c.topicsMs / 1000} s (${c.rounds} interleaved slices): every message has exactly one recipient, so this measures per-message cost (routing, encoding, one write) rather than fan-out.`,
  params: (c) => ({ topics: c.topics, rate: c.topicsRate, durationMs: c.topicsMs, rounds: c.rounds }),
  async setup(entry, c, cleanup) {
    const st = await loaded(`topics-${t}`, entry, c, cleanup, c.topics, { topicPrefix: 't' }, topicList(c));
    await steadyOn(st, topicList(c), c.topicsRate, c.preheatMs);
    return st;
  },
  phases: [async (st, c) => void st.steady.push(await steadyOn(st, topicList(c), c.topicsRate, c.topicsMs / c.rounds))],
  async finish({ server, steady: runs }) {
    const steady = mergePhases(runs);
    const stats = await server.stats(true);
    return {
      metrics: {
        deliveriesPerSec: steady.deliveriesPerSec,
        p50Ms: steady.latency.p50Ms,
        p99Ms: steady.latency.p99Ms,
        cpuUs: steady.cpuUsPerDelivery,
        serverCpuPct: steady.serverCpuPct,
        clientCpuPct: steady.clientCpuPct,
        rssMB: round(stats.rssBytes / MB, 1),
        ...integrity(steady.collected),
        errors: phaseErrors([server], steady),
      },
      detail: { steady: phaseDetail(steady), rounds: runs.map(roundDetail), server: stats, problems: server.problems() },
    };
  },
  columns: [
    col('deliveriesPerSec', 'deliveries/s', 0),
    col('p50Ms', 'p50 ms', 2, 'lower'),
    col('p99Ms', 'p99 ms', 2, 'lower'),
    col('cpuUs', 'CPU µs/delivery', 2, 'lower'),
    col('serverCpuPct', 'server CPU %', 0),
    col('clientCpuPct', 'load-client CPU %', 0),
    col('rssMB', 'RSS MB', 0, 'lower'),
    ...INTEGRITY_COLUMNS,
  ],
});

/** Opens `count` connections, holds them with heartbeats running, and measures memory per connection. */
async function holdIdle(id: string, { peer }: Entry, c: BenchConfig, cleanup: Cleanup, count: number, heartbeatMs: number, holdMs: number): Promise<Measured> {
  const server = await startServer(peer, cleanup, { HEARTBEAT_MS: String(heartbeatMs) });
  const pool = await startPool(processesFor(c, count), `${id}-${peer.id}`, cleanup);
  await sleep(300);
  const base = await server.stats(true);
  const topic = c.idleTopics > 1 ? { topicPrefix: 'idle', topicModulo: c.idleTopics } : { topic: 'idle' };
  const opened = await pool.open(targetOf(peer, server, topic), count, c.connectConcurrency);
  await pool.reset();
  const cpuBefore = server.sample();
  await sleep(holdMs);
  const cpuAfter = server.sample();
  const stats = await server.stats(true);
  const fds = server.sample().fds;
  const collected = await pool.collect({});
  const n = Math.max(1, opened.opened);
  return {
    metrics: {
      opened: opened.opened,
      failed: opened.failed,
      connectPerSec: opened.perSecond,
      openAtEnd: collected.open,
      serverCounted: stats.connections,
      rssPerConnKB: round((stats.rssBytes - base.rssBytes) / n / 1024, 2),
      heapPerConnKB: round((stats.heapUsedBytes - base.heapUsedBytes) / n / 1024, 2),
      idleCpuPct: round(((cpuAfter.cpuMs - cpuBefore.cpuMs) * 100) / holdMs, 1),
      heartbeatsPerConn: round(collected.heartbeats / n, 1),
      rssMB: round(stats.rssBytes / MB, 0),
      serverFds: fds,
      errors: errorCount([server], collected, opened.failed + Math.abs(collected.open - opened.opened)),
    },
    detail: { base, final: stats, open: opened, samples: collected.samples, problems: server.problems() },
  };
}

const idle = (t: 'ws' | 'sse'): Scenario => ({
  id: `idle-${t}`,
  peers: t === 'ws' ? WS_PEERS : SSE_PEERS,
  title: (c) => `Idle connections, ${transportName(t)}: ${c.idleConns.toLocaleString('en')} open`,
  description: (c) =>
    `Connections opened (${c.connectConcurrency} handshakes in flight per load-client process), then held ${c.idleHoldMs / 1000} s with heartbeats every ${c.idleHeartbeatMs / 1000} s. Memory per connection is the growth of the server's RSS and V8 heap (after a full GC) divided by the connections.`,
  params: (c) => ({ connections: c.idleConns, holdMs: c.idleHoldMs, heartbeatMs: c.idleHeartbeatMs, topics: c.idleTopics }),
  measure: (entry, c, cleanup) => holdIdle(`idle-${t}`, entry, c, cleanup, c.idleConns, c.idleHeartbeatMs, c.idleHoldMs),
  columns: [
    col('rssPerConnKB', 'RSS KB/conn', 1, 'lower'),
    col('heapPerConnKB', 'heap KB/conn', 1, 'lower'),
    col('connectPerSec', 'connects/s', 0, 'higher'),
    col('idleCpuPct', 'idle CPU %', 1),
    col('heartbeatsPerConn', 'heartbeats/conn', 1),
    col('openAtEnd', 'open at end', 0),
    col('errors', 'errors'),
  ],
});

/** As many connections as one process's open-file limit allows, heartbeats running (skipped when --max-conns=0). */
const maxConnections: Scenario = {
  id: 'max-conn',
  peers: (c) => c.maxPeers.map((id) => ({ peer: PEERS[id]!, rowId: id, label: PEERS[id]!.label })),
  title: (c) => `Connection limit: ${c.maxConns.toLocaleString('en')} concurrent connections in one server process`,
  description: (c) =>
    `The open-file limit is ${c.maxConns + 100} per process; the server keeps about 100 descriptors for itself. Held ${c.maxHoldMs / 1000} s with heartbeats every ${c.maxHeartbeatMs / 1000} s; every connection must stay open and nothing may be logged as an error.`,
  params: (c) => ({ connections: c.maxConns, holdMs: c.maxHoldMs, heartbeatMs: c.maxHeartbeatMs }),
  measure: (entry, c, cleanup) => holdIdle('max-conn', entry, c, cleanup, c.maxConns, c.maxHeartbeatMs, c.maxHoldMs),
  columns: [
    col('opened', 'opened', 0),
    col('openAtEnd', 'open at end', 0),
    col('serverCounted', 'server counts', 0),
    col('serverFds', 'server fds', 0),
    col('connectPerSec', 'connects/s', 0),
    col('heartbeatsPerConn', 'heartbeats/conn', 1),
    col('rssPerConnKB', 'RSS KB/conn', 1),
    col('idleCpuPct', 'idle CPU %', 1),
    col('errors', 'errors'),
  ],
};

interface Pair {
  a: ServerHandle;
  b: ServerHandle;
  pool: ClientPool;
  topic: string;
  steady: PhaseResult[];
  redisPid: number;
}

/**
 * Two instances joined through Redis (one redis-server for every peer, own channel names), and
 * Pushlet's through NATS JetStream too (one nats-server -js, a stream per peer): subscribers on B,
 * messages published on A.
 */
const cluster: Scenario<Pair, { redis: { url: string; pid: number }; nats: NatsServer }> = {
  id: 'cluster',
  peers: () => [
    ...['ws', 'socketio', 'pushlet-ws', 'pushlet-sse'].map((id) => {
      const peer = PEERS[id]!;
      return { peer, rowId: `${id}+redis`, label: `${peer.label} + Redis${id === 'ws' ? ' pub/sub' : id === 'socketio' ? ' adapter' : ''}` };
    }),
    ...['pushlet-ws', 'pushlet-sse'].map((id) => ({ peer: PEERS[id]!, rowId: `${id}+nats`, label: `${PEERS[id]!.label} + NATS JetStream` })),
  ],
  title: (c) => `Cross-instance through Redis (and NATS JetStream): ${c.clusterSubs.toLocaleString('en')} subscribers on instance B, published on instance A`,
  description: (c) =>
    `Two server processes per peer and one redis-server (own process, free loopback port); Pushlet's NATS rows on one nats-server -js (file storage, a stream per peer), ` +
    `where every instance reads every publication of its stream. ${c.clusterRate} msg/s for ${c.clusterMs / 1000} s in ${c.rounds} interleaved slices; latency from the publish call on A to receipt by the clients of B.`,
  params: (c) => ({ subscribers: c.clusterSubs, rate: c.clusterRate, durationMs: c.clusterMs, rounds: c.rounds }),
  async shared(_c, cleanup) {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const nats = await NatsServer.start();
    cleanup.push(() => nats.stop());
    return { redis, nats };
  },
  async setup({ peer, rowId }, c, cleanup, { redis, nats }) {
    const onNats = rowId.endsWith('+nats');
    const stream = rowId.replace(/[^a-z]/g, '_');
    const backend = onNats ? { NATS_URL: nats.url, NATS_STREAM: stream, NATS_SUBJECT_PREFIX: stream } : { REDIS_URL: redis.url };
    const env = serverEnv(c, backend);
    const a = await startServer(peer, cleanup, env, `${peer.id}-A`);
    const b = await startServer(peer, cleanup, env, `${peer.id}-B`);
    const pool = await startPool(processesFor(c, c.clusterSubs), `cluster-${peer.id}`, cleanup);
    // Topics per peer, so that no peer's instances see another's messages.
    const topic = `cluster-${peer.id}`;
    await openAll(pool, peer, b, c.clusterSubs, c, { topic });
    await warmUp(a, pool, [topic], c.clusterSubs);
    await steadyPhase({ publisher: a, receiver: b, pool, topics: [topic], rate: c.clusterRate * 5, durationMs: c.preheatMs });
    return { a, b, pool, topic, steady: [], redisPid: onNats ? nats.pid! : redis.pid };
  },
  phases: [
    async (st, c) => {
      const extra = [
        { name: 'publisher', pid: st.a.pid },
        { name: 'redis', pid: st.redisPid },
      ];
      st.steady.push(
        await steadyPhase({
          publisher: st.a,
          receiver: st.b,
          pool: st.pool,
          topics: [st.topic],
          rate: c.clusterRate,
          durationMs: c.clusterMs / c.rounds,
          extra,
        }),
      );
    },
  ],
  async finish({ a, b, steady: runs }) {
    const steady = mergePhases(runs);
    return {
      metrics: {
        p50Ms: steady.latency.p50Ms,
        p99Ms: steady.latency.p99Ms,
        p99SliceMs: steady.p99SliceMedianMs ?? NaN,
        p999Ms: steady.latency.p999Ms,
        maxMs: steady.latency.maxMs,
        deliveriesPerSec: steady.deliveriesPerSec,
        cpuUs: steady.cpuUsPerDelivery,
        publisherCpuMs: steady.extraCpuMs.publisher ?? NaN,
        redisCpuMs: steady.extraCpuMs.redis ?? NaN,
        ...integrity(steady.collected),
        errors: phaseErrors([a, b], steady),
      },
      detail: { steady: phaseDetail(steady), rounds: runs.map(roundDetail), problems: [a.problems(), b.problems()] },
    };
  },
  columns: [
    col('p50Ms', 'p50 ms', 2, 'lower'),
    col('p99Ms', 'p99 ms', 2, 'lower'),
    col('p99SliceMs', 'p99 ms, median slice', 2, 'lower'),
    col('p999Ms', 'p99.9 ms', 2),
    col('deliveriesPerSec', 'deliveries/s', 0),
    col('cpuUs', 'CPU µs/delivery (B)', 2, 'lower'),
    col('publisherCpuMs', 'CPU ms (A)', 0),
    col('redisCpuMs', 'CPU ms (Redis or NATS)', 0),
    ...INTEGRITY_COLUMNS,
  ],
};

/** Connections opened and closed continuously next to a steady fan-out that must not notice. */
const churn: Scenario = {
  id: 'churn',
  peers: [...WS_PEERS, ...SSE_PEERS],
  title: () => 'Connection churn',
  description: (c) =>
    `${c.churnProcesses} load-client processes × ${c.churnConcurrency} loops open a connection (subscribing to one of 100 topics), wait until it is established ` +
    `(101 for WebSocket, CONNECT for Socket.IO, 200 for SSE) and close it as a browser would, for ${c.churnMs / 1000} s, ` +
    `while ${c.churnBackgroundSubs} other subscribers receive ${c.steadyRate} msg/s. CPU per cycle includes that background fan-out. ` +
    `Leaked: connections the server still counts 1 s after the churn ends.`,
  params: (c) => ({ durationMs: c.churnMs, concurrency: c.churnConcurrency, processes: c.churnProcesses, background: c.churnBackgroundSubs }),
  async measure({ peer }, c, cleanup) {
    const server = await startServer(peer, cleanup, serverEnv(c));
    const background = await startPool(1, `churn-${peer.id}-steady`, cleanup);
    const churners = await startPool(c.churnProcesses, `churn-${peer.id}`, cleanup);
    const bgSubs = c.churnBackgroundSubs;
    await openAll(background, peer, server, bgSubs, c, { topic: 'steady' });
    await warmUp(server, background, ['steady'], bgSubs);
    await floodPhase({ server, pool: background, topic: 'steady', durationMs: c.preheatMs, window: c.floodWindow });
    const base = await server.stats(true);
    const before = server.sample();
    const [steady, churned] = await Promise.all([
      steadyPhase({ publisher: server, receiver: server, pool: background, topics: ['steady'], rate: c.steadyRate, durationMs: c.churnMs }),
      churners.churn(targetOf(peer, server, { topicPrefix: 'churn', topicModulo: 100 }), c.churnMs, c.churnConcurrency),
    ]);
    const after = server.sample();
    await sleep(1_000);
    const stats = await server.stats(true);
    const cycles = sum(churned.map((x) => x.cycles));
    const elapsedS = Math.max(...churned.map((x) => x.elapsedUs)) / 1e6;
    const leaked = stats.connections - bgSubs;
    return {
      metrics: {
        cyclesPerSec: round(cycles / elapsedS, 0),
        cpuUsPerCycle: round(((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, cycles), 0),
        openP50Ms: Math.max(...churned.map((x) => x.openLatency.p50Ms)),
        openP99Ms: Math.max(...churned.map((x) => x.openLatency.p99Ms)),
        steadyP99Ms: steady.latency.p99Ms,
        heapGrowthKB: round((stats.heapUsedBytes - base.heapUsedBytes) / 1024, 0),
        leaked,
        ...integrity(steady.collected),
        errors: errorCount([server], steady.collected, sum(churned.map((x) => x.failures + x.unexpectedCloses)) + Math.abs(leaked) + (steady.drained ? 0 : 1)),
      },
      detail: { churn: churned, steady: phaseDetail(steady), base, final: stats, problems: server.problems() },
    };
  },
  columns: [
    col('cyclesPerSec', 'open+close/s', 0, 'higher'),
    col('cpuUsPerCycle', 'CPU µs/cycle', 0, 'lower'),
    col('openP50Ms', 'open p50 ms', 2, 'lower'),
    col('openP99Ms', 'open p99 ms', 2, 'lower'),
    col('steadyP99Ms', 'background p99 ms', 2, 'lower'),
    col('heapGrowthKB', 'heap growth KB', 0),
    col('leaked', 'leaked'),
    ...INTEGRITY_COLUMNS,
  ],
};

/**
 * Issue 15, what the Prometheus metrics cost per delivery: a load scenario run on the sample app
 * with PushletMetricsModule off and on (PUSHLET_METRICS=1, its registry scraped every second in
 * the process), side by side in interleaved slices; METRICS_BASELINE_BUILD=<build dir of another
 * commit> adds that build's sample app. Ratio rows: on ÷ off (and ÷ baseline); `… ratio, median
 * slice`: the median over the slices of each slice's on ÷ off CPU per delivery.
 */
function metricsOverhead(s: Scenario<Loaded>, t: 'ws' | 'sse'): Scenario<Loaded> {
  const peer = PEERS[`pushlet-${t}`]!;
  const base = process.env.METRICS_BASELINE_BUILD;
  const variants: Entry[] = [
    { peer: { ...peer, pushlet: false }, rowId: `${peer.id}-metrics-off`, label: 'metrics off', env: { PUSHLET_METRICS: '0' } },
    { peer, rowId: `${peer.id}-metrics-on`, label: 'metrics on, scraped every second', env: { PUSHLET_METRICS: '1', BENCH_SCRAPE_MS: '1000' } },
  ];
  if (base)
    variants.push({
      peer: { ...peer, pushlet: false, scriptPath: resolve(base, 'bench/servers/pushlet.js') },
      rowId: `${peer.id}-base`,
      label: `baseline build (${base})`,
    });
  const phases = s.id.startsWith('fanout') ? ['steady', 'saturation'] : ['steady'];
  return {
    ...s,
    id: `metrics-${s.id}`,
    optional: true,
    peers: () => variants,
    title: (c) => `Metrics overhead, ${s.title(c)}`,
    description: (c) => `The sample app with the Prometheus metrics off and on (scraped every second), side by side. ${s.description(c)}`,
    after(rows) {
      const [off, on] = rows;
      const slices = (row: Row | undefined, phase: string) => {
        const rounds = (row?.detail as { rounds?: unknown } | undefined)?.rounds;
        return ((Array.isArray(rounds) ? rounds : (rounds as Record<string, unknown>)?.[phase]) ?? []) as Array<{ cpuUsPerDelivery: number }>;
      };
      if (on?.status !== 'ok' || off?.status !== 'ok') return;
      for (const phase of phases) {
        const x = slices(off, phase);
        on.metrics[`${phase}CpuRatioSlice`] = round(median(slices(on, phase).map((r, i) => r.cpuUsPerDelivery / x[i]!.cpuUsPerDelivery)), 4);
      }
    },
    columns: [...s.columns, ...phases.map((phase) => ({ key: `${phase}CpuRatioSlice`, label: `CPU on ÷ off @${phase}, median slice`, digits: 3 }))],
  };
}

/** `npm run bench` runs these in this order (the optional ones only with --only). */
export const SCENARIOS: Scenario[] = [
  fanout('ws'),
  fanout('sse'),
  manyTopics('ws'),
  manyTopics('sse'),
  idle('ws'),
  idle('sse'),
  maxConnections,
  cluster,
  churn,
  publish,
  clientSize,
  clientReconnect,
  storm,
  metricsOverhead(fanout('ws'), 'ws'),
  metricsOverhead(fanout('sse'), 'sse'),
  metricsOverhead(manyTopics('ws'), 'ws'),
  metricsOverhead(manyTopics('sse'), 'sse'),
];
