import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { clientReconnect } from './client-reconnect.js';
import { clientSize } from './client-size.js';
import type { BenchConfig } from './config.js';
import { round } from './lib/histogram.js';
import { startRedis, type RedisHandle } from './lib/redis.js';
import { READ_LABELS, runStorm, stormMet, stormOptions, type StormRun } from './reconnect-storm.js';
import {
  ClientPool,
  floodPhase,
  mergePhases,
  PEERS,
  probeWebSocket,
  ServerHandle,
  sleep,
  steadyPhase,
  sum,
  warmUp,
  type Collected,
  type Peer,
  type PhaseResult,
} from './lib/runner.js';

export interface Column {
  key: string;
  label: string;
  digits?: number;
  /** Which way is better; ratio rows are shown for these columns. */
  better?: 'lower' | 'higher';
}

export interface Row {
  /** Peer id (`ws`, `socketio`, `pushlet-ws`, ...), with `+redis` in the cross-instance scenario. */
  peer: string;
  label: string;
  pushlet: boolean;
  status: 'ok' | 'skipped' | 'failed';
  note?: string;
  metrics: Record<string, number>;
  detail?: unknown;
}

export interface ScenarioResult {
  id: string;
  title: string;
  description: string;
  params: Record<string, unknown>;
  columns: Column[];
  rows: Row[];
}

export interface Scenario {
  id: string;
  run(config: BenchConfig): Promise<ScenarioResult>;
}

const HOST = '127.0.0.1';
const MB = 1024 * 1024;
const WS_NOT_MERGED = 'the WebSocket transport is not on main yet (no upgrade at /ws)';
const REDIS_NOT_MERGED = 'the Redis broker is not on main yet (the sample app ignores REDIS_URL)';

class Skip extends Error {}

function wanted(config: BenchConfig, ids: string[]): string[] {
  return ids.filter((id) => !config.peers || config.peers.includes(id));
}

function processesFor(config: BenchConfig, connections: number, minimum = 2): number {
  return Math.max(minimum, Math.ceil(connections / config.connsPerProcess));
}

/** Runs `body` for one peer, turning a skip or a failure into a row instead of stopping the run. */
async function runPeer(
  peer: Peer,
  rowId: string,
  label: string,
  body: (cleanup: Array<() => Promise<void>>) => Promise<{ metrics: Record<string, number>; detail?: unknown }>,
): Promise<Row> {
  const cleanup: Array<() => Promise<void>> = [];
  const row: Row = { peer: rowId, label, pushlet: peer.pushlet, status: 'ok', metrics: {} };
  process.stdout.write(`  ${label.padEnd(28)} `);
  const started = Date.now();
  try {
    const result = await body(cleanup);
    row.metrics = result.metrics;
    row.detail = result.detail;
    console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    row.status = error instanceof Skip ? 'skipped' : 'failed';
    row.note = error instanceof Error ? error.message.split('\n')[0] : String(error);
    console.log(`${row.status}: ${row.note}`);
  } finally {
    for (const step of cleanup.reverse()) await step().catch((error: unknown) => console.log(`    cleanup: ${String(error)}`));
  }
  return row;
}

interface Entry {
  peer: Peer;
  rowId: string;
  label: string;
}

interface Contender<S> extends Entry {
  cleanup: Array<() => Promise<void>>;
  row: Row;
  state?: S;
}

/**
 * Runs the peers side by side: every peer is set up first (its own server and clients), then each
 * measurement runs in `rounds` short slices taken in turn (A B C A B C ...), so that a burst of
 * load from elsewhere on the machine hits every peer alike instead of one of them.
 */
async function contest<S>(
  entries: Entry[],
  setup: (entry: Entry, cleanup: Array<() => Promise<void>>) => Promise<S>,
  rounds: number,
  phases: Array<(state: S, round: number) => Promise<void>>,
  finish: (state: S) => Promise<{ metrics: Record<string, number>; detail?: unknown }>,
): Promise<Row[]> {
  const contenders: Array<Contender<S>> = entries.map((e) => ({ ...e, cleanup: [], row: { peer: e.rowId, label: e.label, pushlet: e.peer.pushlet, status: 'ok', metrics: {} } }));
  const fail = async (c: Contender<S>, error: unknown) => {
    c.row.status = error instanceof Skip ? 'skipped' : 'failed';
    c.row.note = error instanceof Error ? error.message.split('\n')[0] : String(error);
    console.log(`  ${c.label.padEnd(28)} ${c.row.status}: ${c.row.note}`);
    c.state = undefined;
    await release(c);
  };
  const release = async (c: Contender<S>) => {
    for (const step of c.cleanup.splice(0).reverse()) await step().catch((error: unknown) => console.log(`    cleanup: ${String(error)}`));
  };
  try {
    for (const c of contenders) {
      const started = Date.now();
      try {
        c.state = await setup(c, c.cleanup);
        console.log(`  ${c.label.padEnd(28)} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      } catch (error) {
        await fail(c, error);
      }
    }
    for (const [index, phase] of phases.entries()) {
      const started = Date.now();
      for (let round = 0; round < rounds; round += 1) {
        for (const c of contenders) {
          if (c.state === undefined) continue;
          try {
            await phase(c.state, round);
          } catch (error) {
            await fail(c, error);
          }
        }
      }
      console.log(`  phase ${index + 1} of ${phases.length}: ${rounds} round(s) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    for (const c of contenders) {
      if (c.state === undefined) continue;
      try {
        const result = await finish(c.state);
        c.row.metrics = result.metrics;
        c.row.detail = result.detail;
      } catch (error) {
        await fail(c, error);
      }
    }
  } finally {
    for (const c of contenders) await release(c);
  }
  return contenders.map((c) => c.row);
}

async function startServer(peer: Peer, cleanup: Array<() => Promise<void>>, env: NodeJS.ProcessEnv, name?: string): Promise<ServerHandle> {
  const server = await ServerHandle.start(peer, { env, name });
  cleanup.push(() => server.stop());
  if (peer.pushlet && peer.protocol === 'ws' && !(await probeWebSocket(server.port))) throw new Skip(WS_NOT_MERGED);
  return server;
}

async function startPool(processes: number, name: string, cleanup: Array<() => Promise<void>>): Promise<ClientPool> {
  const pool = await ClientPool.start(processes, name);
  cleanup.push(() => pool.stop());
  return pool;
}

async function openAll(pool: ClientPool, peer: Peer, server: ServerHandle, count: number, config: BenchConfig, topic: { topic?: string; topicPrefix?: string; topicModulo?: number }) {
  const opened = await pool.open({ protocol: peer.protocol, host: HOST, port: server.port, pathPrefix: peer.pathPrefix, ...topic }, count, config.connectConcurrency);
  if (opened.failed > 0) throw new Error(`${opened.failed} of ${count} connections failed: ${opened.errors.join('; ')}`);
  return opened;
}

/** Everything that went wrong, summed: nothing here may be above zero in a clean run. */
function errorCount(server: ServerHandle | ServerHandle[], collected: Collected, extra = 0): number {
  const servers = Array.isArray(server) ? server : [server];
  return sum(servers.map((s) => s.problems().count)) + collected.unexpectedCloses + collected.malformed + collected.negativeLatencies + extra;
}

function integrity(collected: Collected) {
  return { lost: collected.integrity.lost, duplicates: collected.integrity.duplicates, outOfOrder: collected.integrity.outOfOrder };
}

function roundDetail(phase: PhaseResult) {
  return { deliveriesPerSec: phase.deliveriesPerSec, cpuUsPerDelivery: phase.cpuUsPerDelivery, serverCpuPct: phase.serverCpuPct, p99Ms: phase.latency.p99Ms, clientCpuPct: phase.clientCpuPct };
}

function phaseDetail(phase: PhaseResult) {
  const { collected, ...rest } = phase;
  return { ...rest, integrity: collected.integrity, heartbeats: collected.heartbeats, samples: collected.samples };
}

const INTEGRITY_COLUMNS: Column[] = [
  { key: 'lost', label: 'lost' },
  { key: 'duplicates', label: 'dup' },
  { key: 'outOfOrder', label: 'out of order' },
  { key: 'errors', label: 'errors' },
];

// ---------------------------------------------------------------------------------------------

/** Thousands of subscribers on one topic: latency at a steady rate, then throughput at saturation. */
function fanout(transport: 'ws' | 'sse'): Scenario {
  const id = `fanout-${transport}`;
  return {
    id,
    async run(config) {
      const subs = config.fanoutSubs;
      const rounds = config.rounds;
      const ids = transport === 'ws' ? ['ws', 'socketio', 'pushlet-ws'] : ['sse', 'pushlet-sse'];
      interface State {
        server: ServerHandle;
        pool: ClientPool;
        steady: PhaseResult[];
        flood: PhaseResult[];
      }
      const rows = await contest<State>(
        wanted(config, ids).map((peerId) => ({ peer: PEERS[peerId]!, rowId: peerId, label: PEERS[peerId]!.label })),
        async ({ peer }, cleanup) => {
          const server = await startServer(peer, cleanup, { HEARTBEAT_MS: '30000', BENCH_PAYLOAD: String(config.payloadBytes) });
          const pool = await startPool(processesFor(config, subs), `${id}-${peer.id}`, cleanup);
          await openAll(pool, peer, server, subs, config, { topic: 'fanout' });
          await warmUp(server, pool, ['fanout'], subs);
          await floodPhase({ server, pool, topic: 'fanout', durationMs: config.preheatMs, window: config.floodWindow });
          return { server, pool, steady: [], flood: [] };
        },
        rounds,
        [
          async (st) => {
            st.steady.push(await steadyPhase({ publisher: st.server, receiver: st.server, pool: st.pool, topics: ['fanout'], rate: config.steadyRate, durationMs: config.steadyMs / rounds }));
          },
          async (st) => {
            st.flood.push(await floodPhase({ server: st.server, pool: st.pool, topic: 'fanout', durationMs: config.floodMs / rounds, window: config.floodWindow }));
          },
        ],
        async ({ server, steady: steadyRuns, flood: floodRuns }) => {
          const steady = mergePhases(steadyRuns);
          const flood = mergePhases(floodRuns);
          const stats = await server.stats(true);
          const final = flood.collected;
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
              ...integrity(final),
              errors: errorCount(server, final, steady.publishErrors + flood.publishErrors + (steady.drained && flood.drained ? 0 : 1)),
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
      );
      return {
        id,
        title: `Fan-out, ${transport === 'ws' ? 'WebSocket' : 'SSE'}: ${subs.toLocaleString('en')} subscribers on one topic`,
        description:
          `Steady: ${config.steadyRate} msg/s for ${config.steadyMs / 1000} s (latency, CPU per delivery). ` +
          `Saturation: published as fast as the server delivers, at most ${config.floodWindow} messages ahead of the slowest client, for ${config.floodMs / 1000} s ` +
          `(the server is the bottleneck when its event loop is busy all the time and the publisher never waits for the clients). ` +
          `Peers run side by side, each measurement in ${rounds} interleaved slices.`,
        params: { subscribers: subs, steadyRate: config.steadyRate, steadyMs: config.steadyMs, floodMs: config.floodMs, floodWindow: config.floodWindow, payloadBytes: config.payloadBytes, rounds },
        columns: [
          { key: 'steadyP50Ms', label: 'p50 ms @steady', digits: 2, better: 'lower' },
          { key: 'steadyP99Ms', label: 'p99 ms @steady', digits: 2, better: 'lower' },
          { key: 'steadyP99SliceMs', label: 'p99 ms @steady, median slice', digits: 2, better: 'lower' },
          { key: 'steadyCpuUs', label: 'CPU µs/delivery @steady', digits: 2, better: 'lower' },
          { key: 'satDeliveriesPerSec', label: 'deliveries/s @saturation', digits: 0, better: 'higher' },
          { key: 'satCpuUs', label: 'CPU µs/delivery @saturation', digits: 2, better: 'lower' },
          { key: 'satServerCpuPct', label: 'server CPU % @saturation', digits: 0 },
          { key: 'satP99Ms', label: 'p99 ms @saturation', digits: 1 },
          { key: 'satElu', label: 'server event-loop use @saturation', digits: 2 },
          { key: 'satStalls', label: 'waits for slow clients', digits: 0 },
          { key: 'clientCpuPct', label: 'load-client CPU % (all processes)', digits: 0 },
          { key: 'rssMB', label: 'RSS MB', digits: 0, better: 'lower' },
          ...INTEGRITY_COLUMNS,
        ],
        rows,
      };
    },
  };
}

/** One subscriber per topic, messages spread over all topics: per-message cost, not fan-out. */
function manyTopics(transport: 'ws' | 'sse'): Scenario {
  const id = `topics-${transport}`;
  return {
    id,
    async run(config) {
      const count = config.topics;
      const rounds = config.rounds;
      const topics = Array.from({ length: count }, (_, i) => `t${i}`);
      const ids = transport === 'ws' ? ['ws', 'socketio', 'pushlet-ws'] : ['sse', 'pushlet-sse'];
      interface State {
        server: ServerHandle;
        pool: ClientPool;
        steady: PhaseResult[];
      }
      const rows = await contest<State>(
        wanted(config, ids).map((peerId) => ({ peer: PEERS[peerId]!, rowId: peerId, label: PEERS[peerId]!.label })),
        async ({ peer }, cleanup) => {
          const server = await startServer(peer, cleanup, { HEARTBEAT_MS: '30000', BENCH_PAYLOAD: String(config.payloadBytes) });
          const pool = await startPool(processesFor(config, count), `${id}-${peer.id}`, cleanup);
          await openAll(pool, peer, server, count, config, { topicPrefix: 't' });
          await warmUp(server, pool, topics, count);
          await steadyPhase({ publisher: server, receiver: server, pool, topics, rate: config.topicsRate, durationMs: config.preheatMs });
          return { server, pool, steady: [] };
        },
        rounds,
        [
          async (st) => {
            st.steady.push(await steadyPhase({ publisher: st.server, receiver: st.server, pool: st.pool, topics, rate: config.topicsRate, durationMs: config.topicsMs / rounds }));
          },
        ],
        async ({ server, steady: runs }) => {
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
              errors: errorCount(server, steady.collected, steady.publishErrors + (steady.drained ? 0 : 1)),
            },
            detail: { steady: phaseDetail(steady), rounds: runs.map(roundDetail), server: stats, problems: server.problems() },
          };
        },
      );
      return {
        id,
        title: `Many topics, ${transport === 'ws' ? 'WebSocket' : 'SSE'}: ${count.toLocaleString('en')} topics, one subscriber each`,
        description: `${config.topicsRate.toLocaleString('en')} msg/s in total, round-robin over the topics, for ${config.topicsMs / 1000} s (${rounds} interleaved slices): every message has exactly one recipient, so this measures per-message cost (routing, encoding, one write) rather than fan-out.`,
        params: { topics: count, rate: config.topicsRate, durationMs: config.topicsMs, rounds },
        columns: [
          { key: 'deliveriesPerSec', label: 'deliveries/s', digits: 0 },
          { key: 'p50Ms', label: 'p50 ms', digits: 2, better: 'lower' },
          { key: 'p99Ms', label: 'p99 ms', digits: 2, better: 'lower' },
          { key: 'cpuUs', label: 'CPU µs/delivery', digits: 2, better: 'lower' },
          { key: 'serverCpuPct', label: 'server CPU %', digits: 0 },
          { key: 'clientCpuPct', label: 'load-client CPU %', digits: 0 },
          { key: 'rssMB', label: 'RSS MB', digits: 0, better: 'lower' },
          ...INTEGRITY_COLUMNS,
        ],
        rows,
      };
    },
  };
}

/** Opens `count` connections, holds them with heartbeats running, and measures memory per connection. */
async function holdIdle(
  config: BenchConfig,
  peer: Peer,
  scenarioId: string,
  count: number,
  heartbeatMs: number,
  holdMs: number,
  cleanup: Array<() => Promise<void>>,
) {
  const server = await startServer(peer, cleanup, { HEARTBEAT_MS: String(heartbeatMs) });
  const pool = await startPool(processesFor(config, count, 2), `${scenarioId}-${peer.id}`, cleanup);
  await sleep(300);
  const base = await server.stats(true);
  const topic = config.idleTopics > 1 ? { topicPrefix: 'idle', topicModulo: config.idleTopics } : { topic: 'idle' };
  const opened = await pool.open(
    { protocol: peer.protocol, host: HOST, port: server.port, pathPrefix: peer.pathPrefix, ...topic },
    count,
    config.connectConcurrency,
  );
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
      errors: errorCount(server, collected, opened.failed + Math.abs(collected.open - opened.opened)),
    },
    detail: { base, final: stats, open: opened, samples: collected.samples, problems: server.problems() },
  };
}

function idle(transport: 'ws' | 'sse'): Scenario {
  const id = `idle-${transport}`;
  return {
    id,
    async run(config) {
      // Pushlet WS is also measured in the SSE table: the target compares SSE with WS.
      const ids = transport === 'ws' ? ['ws', 'socketio', 'pushlet-ws'] : ['sse', 'pushlet-sse'];
      const rows: Row[] = [];
      for (const peerId of wanted(config, ids)) {
        const peer = PEERS[peerId]!;
        rows.push(await runPeer(peer, peer.id, peer.label, (cleanup) => holdIdle(config, peer, id, config.idleConns, config.idleHeartbeatMs, config.idleHoldMs, cleanup)));
      }
      return {
        id,
        title: `Idle connections, ${transport === 'ws' ? 'WebSocket' : 'SSE'}: ${config.idleConns.toLocaleString('en')} open`,
        description: `Connections opened (${config.connectConcurrency} handshakes in flight per load-client process), then held ${config.idleHoldMs / 1000} s with heartbeats every ${config.idleHeartbeatMs / 1000} s. Memory per connection is the growth of the server's RSS and V8 heap (after a full GC) divided by the connections.`,
        params: { connections: config.idleConns, holdMs: config.idleHoldMs, heartbeatMs: config.idleHeartbeatMs, topics: config.idleTopics },
        columns: [
          { key: 'rssPerConnKB', label: 'RSS KB/conn', digits: 1, better: 'lower' },
          { key: 'heapPerConnKB', label: 'heap KB/conn', digits: 1, better: 'lower' },
          { key: 'connectPerSec', label: 'connects/s', digits: 0, better: 'higher' },
          { key: 'idleCpuPct', label: 'idle CPU %', digits: 1 },
          { key: 'heartbeatsPerConn', label: 'heartbeats/conn', digits: 1 },
          { key: 'openAtEnd', label: 'open at end', digits: 0 },
          { key: 'errors', label: 'errors' },
        ],
        rows,
      };
    },
  };
}

/** As many connections as one process's open-file limit allows, heartbeats running. */
const maxConnections: Scenario = {
  id: 'max-conn',
  async run(config) {
    const rows: Row[] = [];
    for (const peerId of wanted(config, config.maxPeers)) {
      const peer = PEERS[peerId]!;
      rows.push(await runPeer(peer, peer.id, peer.label, (cleanup) => holdIdle(config, peer, 'max-conn', config.maxConns, config.maxHeartbeatMs, config.maxHoldMs, cleanup)));
    }
    return {
      id: 'max-conn',
      title: `Connection limit: ${config.maxConns.toLocaleString('en')} concurrent connections in one server process`,
      description: `The open-file limit is ${config.maxConns + 100} per process; the server keeps about 100 descriptors for itself. Held ${config.maxHoldMs / 1000} s with heartbeats every ${config.maxHeartbeatMs / 1000} s; every connection must stay open and nothing may be logged as an error.`,
      params: { connections: config.maxConns, holdMs: config.maxHoldMs, heartbeatMs: config.maxHeartbeatMs },
      columns: [
        { key: 'opened', label: 'opened', digits: 0 },
        { key: 'openAtEnd', label: 'open at end', digits: 0 },
        { key: 'serverCounted', label: 'server counts', digits: 0 },
        { key: 'serverFds', label: 'server fds', digits: 0 },
        { key: 'connectPerSec', label: 'connects/s', digits: 0 },
        { key: 'heartbeatsPerConn', label: 'heartbeats/conn', digits: 1 },
        { key: 'rssPerConnKB', label: 'RSS KB/conn', digits: 1 },
        { key: 'idleCpuPct', label: 'idle CPU %', digits: 1 },
        { key: 'errors', label: 'errors' },
      ],
      rows,
    };
  },
};

/** Two instances joined through Redis: subscribers on B, messages published on A. */
const cluster: Scenario = {
  id: 'cluster',
  async run(config) {
    const subs = config.clusterSubs;
    const rounds = config.rounds;
    let redis: RedisHandle | undefined;
    let rows: Row[] = [];
    interface State {
      a: ServerHandle;
      b: ServerHandle;
      pool: ClientPool;
      steady: PhaseResult[];
    }
    try {
      redis = await startRedis();
      const r = redis;
      // Every peer uses its own Redis channel names; one redis-server serves them all.
      rows = await contest<State>(
        wanted(config, ['ws', 'socketio', 'pushlet-ws', 'pushlet-sse']).map((peerId) => {
          const peer = PEERS[peerId]!;
          const label = `${peer.label} + Redis${peer.id === 'ws' ? ' pub/sub' : peer.id === 'socketio' ? ' adapter' : ''}`;
          return { peer, rowId: `${peer.id}+redis`, label };
        }),
        async ({ peer }, cleanup) => {
          const env = { HEARTBEAT_MS: '30000', REDIS_URL: r.url, BENCH_PAYLOAD: String(config.payloadBytes) };
          const a = await startServer(peer, cleanup, env, `${peer.id}-A`);
          const b = await startServer(peer, cleanup, env, `${peer.id}-B`);
          if (!a.features.distributed) throw new Skip(REDIS_NOT_MERGED);
          const pool = await startPool(processesFor(config, subs), `cluster-${peer.id}`, cleanup);
          // Topics per peer, so that no peer's instances see another's messages.
          const topic = `cluster-${peer.id}`;
          await openAll(pool, peer, b, subs, config, { topic });
          await warmUp(a, pool, [topic], subs);
          await steadyPhase({ publisher: a, receiver: b, pool, topics: [topic], rate: config.clusterRate * 5, durationMs: config.preheatMs });
          return { a, b, pool, steady: [] };
        },
        rounds,
        [
          async (st) => {
            const topic = `cluster-${st.a.peer.id}`;
            st.steady.push(
              await steadyPhase({
                publisher: st.a,
                receiver: st.b,
                pool: st.pool,
                topics: [topic],
                rate: config.clusterRate,
                durationMs: config.clusterMs / rounds,
                extra: [
                  { name: 'publisher', pid: st.a.pid },
                  { name: 'redis', pid: r.pid },
                ],
              }),
            );
          },
        ],
        async ({ a, b, steady: runs }) => {
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
              errors: errorCount([a, b], steady.collected, steady.publishErrors + (steady.drained ? 0 : 1)),
            },
            detail: { steady: phaseDetail(steady), rounds: runs.map(roundDetail), problems: [a.problems(), b.problems()] },
          };
        },
      );
    } finally {
      await redis?.stop();
    }
    return {
      id: 'cluster',
      title: `Cross-instance through Redis: ${subs.toLocaleString('en')} subscribers on instance B, published on instance A`,
      description: `Two server processes per peer and one redis-server (own process, free loopback port). ${config.clusterRate} msg/s for ${config.clusterMs / 1000} s in ${rounds} interleaved slices; latency from the publish call on A to receipt by the clients of B.`,
      params: { subscribers: subs, rate: config.clusterRate, durationMs: config.clusterMs, rounds },
      columns: [
        { key: 'p50Ms', label: 'p50 ms', digits: 2, better: 'lower' },
        { key: 'p99Ms', label: 'p99 ms', digits: 2, better: 'lower' },
        { key: 'p99SliceMs', label: 'p99 ms, median slice', digits: 2, better: 'lower' },
        { key: 'p999Ms', label: 'p99.9 ms', digits: 2 },
        { key: 'deliveriesPerSec', label: 'deliveries/s', digits: 0 },
        { key: 'cpuUs', label: 'CPU µs/delivery (B)', digits: 2, better: 'lower' },
        { key: 'publisherCpuMs', label: 'CPU ms (A)', digits: 0 },
        { key: 'redisCpuMs', label: 'CPU ms (Redis)', digits: 0 },
        ...INTEGRITY_COLUMNS,
      ],
      rows,
    };
  },
};

/** Connections opened and closed continuously next to a steady fan-out that must not notice. */
const churn: Scenario = {
  id: 'churn',
  async run(config) {
    const rows: Row[] = [];
    for (const peerId of wanted(config, ['ws', 'socketio', 'pushlet-ws', 'sse', 'pushlet-sse'])) {
      const peer = PEERS[peerId]!;
      rows.push(
        await runPeer(peer, peer.id, peer.label, async (cleanup) => {
          const server = await startServer(peer, cleanup, { HEARTBEAT_MS: '30000', BENCH_PAYLOAD: String(config.payloadBytes) });
          const background = await startPool(1, `churn-${peer.id}-steady`, cleanup);
          const churners = await startPool(config.churnProcesses, `churn-${peer.id}`, cleanup);
          const bgSubs = config.churnBackgroundSubs;
          await openAll(background, peer, server, bgSubs, config, { topic: 'steady' });
          await warmUp(server, background, ['steady'], bgSubs);
          await floodPhase({ server, pool: background, topic: 'steady', durationMs: config.preheatMs, window: config.floodWindow });
          const base = await server.stats(true);
          const before = server.sample();
          const [steady, churned] = await Promise.all([
            steadyPhase({ publisher: server, receiver: server, pool: background, topics: ['steady'], rate: config.steadyRate, durationMs: config.churnMs }),
            churners.churn(
              { protocol: peer.protocol, host: HOST, port: server.port, pathPrefix: peer.pathPrefix, topicPrefix: 'churn', topicModulo: 100 },
              config.churnMs,
              config.churnConcurrency,
            ),
          ]);
          const after = server.sample();
          await sleep(1_000);
          const stats = await server.stats(true);
          const cycles = sum(churned.map((c) => c.cycles));
          const failures = sum(churned.map((c) => c.failures));
          const elapsedS = Math.max(...churned.map((c) => c.elapsedUs)) / 1e6;
          const openP50 = Math.max(...churned.map((c) => c.openLatency.p50Ms));
          const openP99 = Math.max(...churned.map((c) => c.openLatency.p99Ms));
          const leaked = stats.connections - bgSubs;
          return {
            metrics: {
              cyclesPerSec: round(cycles / elapsedS, 0),
              cpuUsPerCycle: round(((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, cycles), 0),
              openP50Ms: openP50,
              openP99Ms: openP99,
              steadyP99Ms: steady.latency.p99Ms,
              heapGrowthKB: round((stats.heapUsedBytes - base.heapUsedBytes) / 1024, 0),
              leaked,
              ...integrity(steady.collected),
              errors: errorCount(server, steady.collected, failures + Math.abs(leaked) + sum(churned.map((c) => c.unexpectedCloses)) + (steady.drained ? 0 : 1)),
            },
            detail: { churn: churned, steady: phaseDetail(steady), base, final: stats, problems: server.problems() },
          };
        }),
      );
    }
    return {
      id: 'churn',
      title: 'Connection churn',
      description:
        `${config.churnProcesses} load-client processes × ${config.churnConcurrency} loops open a connection (subscribing to one of 100 topics), wait until it is established ` +
        `(101 for WebSocket, CONNECT for Socket.IO, 200 for SSE) and close it as a browser would, for ${config.churnMs / 1000} s, ` +
        `while ${config.churnBackgroundSubs} other subscribers receive ${config.steadyRate} msg/s. CPU per cycle includes that background fan-out. ` +
        `Leaked: connections the server still counts 1 s after the churn ends.`,
      params: { durationMs: config.churnMs, concurrency: config.churnConcurrency, processes: config.churnProcesses, background: config.churnBackgroundSubs },
      columns: [
        { key: 'cyclesPerSec', label: 'open+close/s', digits: 0, better: 'higher' },
        { key: 'cpuUsPerCycle', label: 'CPU µs/cycle', digits: 0, better: 'lower' },
        { key: 'openP50Ms', label: 'open p50 ms', digits: 2, better: 'lower' },
        { key: 'openP99Ms', label: 'open p99 ms', digits: 2, better: 'lower' },
        { key: 'steadyP99Ms', label: 'background p99 ms', digits: 2, better: 'lower' },
        { key: 'heapGrowthKB', label: 'heap growth KB', digits: 0 },
        { key: 'leaked', label: 'leaked' },
        ...INTEGRITY_COLUMNS,
      ],
      rows,
    };
  },
};

/** Publish throughput through Redis from one instance (bench/publish-throughput.ts, own process). */
const publish: Scenario = {
  id: 'publish',
  async run(config) {
    const durationMs = config.quick ? 1_000 : 4_000;
    const inFlight = 64;
    const script = fileURLToPath(new URL('./publish-throughput.js', import.meta.url));
    const child = spawnSync(process.execPath, [script, String(durationMs), String(inFlight), '--json'], { encoding: 'utf8', timeout: 300_000 });
    const lines = (child.stdout ?? '').trim().split('\n');
    let results: Array<{ name: string; perSecond: number; redisCpuUs: number; instanceCpuUs: number; commandsPerMessage: number; scriptCallsPerMessage: number }> = [];
    try {
      results = JSON.parse(lines[lines.length - 1] ?? '[]');
    } catch {
      results = [];
    }
    const peerOf = (name: string) =>
      name.startsWith('bare') ? 'bare-publish' : name.startsWith('XADD') ? 'xadd-multi' : name.startsWith('Socket.IO') ? 'socketio-adapter' : name.includes('Cluster of 3') ? 'pushlet-cluster-3' : name.includes('Cluster of 1') ? 'pushlet-cluster-1' : 'pushlet';
    const rows: Row[] = results.map((r) => ({
      peer: peerOf(r.name),
      label: r.name,
      pushlet: r.name.startsWith('PushletService'),
      status: 'ok',
      metrics: {
        perSecond: r.perSecond,
        redisCpuUs: r.redisCpuUs,
        instanceCpuUs: r.instanceCpuUs,
        commandsPerMessage: r.commandsPerMessage,
        scriptCallsPerMessage: r.scriptCallsPerMessage,
      },
    }));
    if (rows.length === 0) {
      rows.push({ peer: 'pushlet', label: 'PushletService.publish', pushlet: true, status: 'failed', note: (child.stderr ?? String(child.error)).slice(-500), metrics: {} });
    }
    return {
      id: 'publish',
      title: 'Publish throughput through Redis from one instance',
      description:
        `One process publishes to 100 topics (100-byte messages) with ${inFlight} publications in flight for ${durationMs / 1000} s after a warm-up, ` +
        `on one redis-server (own process, free loopback port), then on a one-master and a three-master Cluster. Redis CPU from INFO (all masters), ` +
        `instance CPU from the publishing process; Redis commands per message include the scripts' inner commands. ` +
        `Pushlet records every message in its topic's history (Redis Streams) and publishes it in one atomic script per event-loop turn (per slot on a Cluster); ` +
        `bare PUBLISH and the Socket.IO Redis adapter keep no history.`,
      params: { durationMs, inFlight, topics: 100, payloadBytes: 100 },
      columns: [
        { key: 'perSecond', label: 'published/s', digits: 0, better: 'higher' },
        { key: 'redisCpuUs', label: 'Redis CPU µs/msg', digits: 1, better: 'lower' },
        { key: 'instanceCpuUs', label: 'instance CPU µs/msg', digits: 1, better: 'lower' },
        { key: 'commandsPerMessage', label: 'Redis commands/msg', digits: 2 },
        { key: 'scriptCallsPerMessage', label: 'script calls/msg', digits: 3 },
      ],
      rows,
    };
  },
};

/**
 * The reconnect storm (bench/reconnect-storm.ts): the clients of a SIGKILLed instance reconnect
 * to the other with their last id. One row per way of reading history on instance B
 * (`--storm-reads`); main's is the Pushlet row, the emulated others are its references.
 */
const storm: Scenario = {
  id: 'storm',
  async run(config) {
    const rows: Row[] = [];
    for (const reads of config.stormReads) {
      const main = reads === 'per-turn';
      const peer: Peer = { ...PEERS['pushlet-ws']!, pushlet: main };
      rows.push(
        await runPeer(peer, main ? 'pushlet-storm' : `storm-${reads}`, READ_LABELS[reads] ?? reads, async () => {
          const run: StormRun = await runStorm(stormOptions(config, reads), (line) => console.log(`  ${line.trim()}`));
          const c = run.counts;
          return {
            metrics: {
              allReconnectedS: run.allReconnectedMs / 1000,
              allCaughtUpS: run.timedOut ? NaN : run.allCaughtUpMs / 1000,
              caughtUpP50S: run.caughtUp.p50 / 1000,
              redisCpuMs: run.redis.cpuMs,
              redisCommands: run.redis.commands,
              evalsha: run.redis.scripts.evalsha,
              readsPerClient: run.readsPerClient,
              bCpuMs: run.instanceB.cpuMs,
              bCpuMsPerClient: run.instanceB.cpuMsPerClient,
              missing: c.missing + c.tailMissing,
              duplicates: c.duplicates,
              reorders: c.reorders,
              resets: c.resets,
              errors: c.errors + run.instanceB.problems.count + (run.timedOut ? 1 : 0),
              met: stormMet(run) ? 1 : 0,
            },
            detail: run,
          };
        }),
      );
    }
    const o = stormOptions(config);
    return {
      id: 'storm',
      title: `Reconnect storm: ${o.clients.toLocaleString('en')} clients of a killed instance reconnect to the other`,
      description:
        `${Math.round(o.clients * o.wsShare).toLocaleString('en')} WebSocket and ${(o.clients - Math.round(o.clients * o.wsShare)).toLocaleString('en')} SSE clients on ${o.topics} topics of instance A; ` +
        `${o.rate} msg/s published throughout by a third instance; A SIGKILLed; each client reconnects to instance B with its last id after a random delay in [0, ${o.jitterMs} ms). ` +
        'Times from the kill: all reconnected (`pushlet:connected` from B), all caught up (every message of its topic up to the first one published after its reconnection). ' +
        'Redis CPU and commands (INFO deltas) and instance B\'s CPU over the same window. Details: bench/reconnect-storm.ts, `node build/bench/reconnect-storm.js` writes bench/results/storm.md.',
      params: { ...o },
      columns: [
        { key: 'allReconnectedS', label: 'all reconnected s', digits: 2, better: 'lower' },
        { key: 'allCaughtUpS', label: 'all caught up s', digits: 2, better: 'lower' },
        { key: 'caughtUpP50S', label: 'caught up p50 s', digits: 2, better: 'lower' },
        { key: 'redisCpuMs', label: 'Redis CPU ms', digits: 0, better: 'lower' },
        { key: 'redisCommands', label: 'Redis commands', digits: 0, better: 'lower' },
        { key: 'evalsha', label: 'evalsha', digits: 0, better: 'lower' },
        { key: 'readsPerClient', label: 'read scripts per client', digits: 3, better: 'lower' },
        { key: 'bCpuMs', label: 'B CPU ms', digits: 0, better: 'lower' },
        { key: 'bCpuMsPerClient', label: 'B CPU ms/client', digits: 2, better: 'lower' },
        { key: 'missing', label: 'missing' },
        { key: 'duplicates', label: 'dup' },
        { key: 'reorders', label: 'reorders' },
        { key: 'resets', label: 'resets' },
        { key: 'errors', label: 'errors' },
      ],
      rows,
    };
  },
};

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
];
