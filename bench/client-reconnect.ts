/**
 * `client-reconnect`: what a server restart costs, measured with the real client SDK
 * (`client/sdk-clients.ts`); instance B restarts in its own process (`restart` of
 * `servers/pushlet.ts`). The scenario's description below says what is measured.
 */
import { eventually } from '../test/support/wait.js';
import type { ClientReport, OpenArgs, Status } from './client/sdk-clients.js';
import type { BenchConfig } from './config.js';
import { nowUs, sampleProcess, sleep } from './lib/proc.js';
import { PEERS, ProcessPool } from './lib/processes.js';
import { startRedis } from './lib/redis.js';
import { col, measureRow, startServer, withCleanup, type Cleanup, type Measured, type Row, type Scenario, type ScenarioResult } from './lib/scenario.js';
import { percentile, round, sum } from './lib/stats.js';

const TOPIC_PREFIX = 'reconnect/';
const MAX_DELAY_MS = 30_000;
/** Longest wait for every client to be back, and then for every message to arrive. */
const RECOVERY_TIMEOUT_MS = 120_000;
const DRAIN_TIMEOUT_MS = 30_000;

/** CPU time of one process sampled over time, to read it at moments known only afterwards. */
function cpuTrace(pid: number) {
  const samples: Array<[us: number, cpuMs: number]> = [];
  /** The CPU time at the last sample at or before `us` (else the first). */
  const at = (us: number) => (samples.filter((s) => s[0] <= us).at(-1) ?? samples[0])?.[1] ?? NaN;
  return {
    sample: () => samples.push([nowUs(), sampleProcess(pid).cpuMs]),
    /** CPU ms per second between the first two samples. */
    firstRate: () => (samples.length > 1 ? ((samples[1]![1] - samples[0]![1]) * 1e6) / (samples[1]![0] - samples[0]![0]) : NaN),
    between: (fromUs: number, toUs: number) => at(toUs) - at(fromUs),
  };
}

/** Counts of values in buckets `width` wide: `{ "0": n, "250": m, ... }`. */
function buckets(values: number[], width: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values.filter(Number.isFinite)) {
    const key = Math.floor(v / width) * width;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** The most values within any window `widthUs` wide. */
function peakIn(valuesUs: number[], widthUs: number): number {
  const sorted = [...valuesUs].sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; i < sorted.length; i += 1) {
    while (sorted[i]! - sorted[j]! >= widthUs) j += 1;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
}

/** When attempt k after the drop started, over all clients: k, how many, and min/p50/max ms after the drop. */
function attemptSpread(report: ClientReport) {
  const byAttempt: number[][] = [];
  report.attemptsUs.forEach((list, client) => list.forEach((us, k) => (byAttempt[k] ??= []).push((us - report.droppedUs[client]!) / 1000)));
  return byAttempt.map((ms, attempt) => ({
    attempt,
    count: ms.length,
    minMs: round(Math.min(...ms), 1),
    p50Ms: round(percentile(ms, 0.5), 1),
    maxMs: round(Math.max(...ms), 1),
  }));
}

/** One transport and `minReconnectDelayMs`: two instances on a fresh Redis, the SDK clients on B, B restarted. */
async function runVariant(config: BenchConfig, transport: 'websocket' | 'sse', minDelayMs: number, cleanup: Cleanup): Promise<Measured> {
  const peer = PEERS[transport === 'websocket' ? 'pushlet-ws' : 'pushlet-sse']!;
  const name = `reconnect-${transport}-${minDelayMs}`;
  const redis = await startRedis();
  cleanup.push(() => redis.stop());
  const env = { REDIS_URL: redis.url, HEARTBEAT_MS: '30000' };
  const a = await startServer(peer, cleanup, env, `${name}-a`);
  const b = await startServer(peer, cleanup, env, `${name}-b`);
  const clients = (await ProcessPool.spawn('client/sdk-clients.js', 1, name))[0]!;
  cleanup.push(() => clients.stop());
  const topics = Array.from({ length: config.reconnectTopics }, (_, i) => `${TOPIC_PREFIX}${i}`);
  const open: OpenArgs = {
    baseUrl: `http://127.0.0.1:${b.port}`,
    transport,
    clients: config.reconnectClients,
    topics: config.reconnectTopics,
    topicPrefix: TOPIC_PREFIX,
    minReconnectDelayMs: minDelayMs,
    maxReconnectDelayMs: MAX_DELAY_MS,
  };
  const opened = await clients.call<{ elapsedMs: number }>('open', open, RECOVERY_TIMEOUT_MS);
  const status = () => clients.call<Status>('status', {});
  // Subscriptions are live through Redis once a message published on A has reached every client.
  const warm = async () => {
    await a.call('warmup', { topics });
    await sleep(200);
    const s = await status();
    return s.warm === s.clients;
  };
  await eventually(warm, 30_000, 'every client warm through Redis');

  // A publishes in one-second slices until told to stop; sequence numbers run on across slices.
  let publishing = true;
  let totals: number[] = [];
  const publisher = (async () => {
    while (publishing) totals = (await a.call<{ totals: number[] }>('steady', { topics, rate: config.reconnectRate, durationMs: 1_000 }, 30_000)).totals;
  })();
  const clientCpu = cpuTrace(clients.pid);
  const serverCpu = cpuTrace(b.pid);
  const sample = () => [clientCpu, serverCpu].forEach((trace) => trace.sample());
  // The rate while only receiving: over the second half of the time before the restart.
  await sleep(config.reconnectBeforeMs / 2);
  sample();
  await sleep(config.reconnectBeforeMs / 2);
  sample();

  // The restart: mark, then B closes its app and starts a new one on the same port.
  const t0 = await clients.call<number>('mark', {});
  const sampler = setInterval(sample, 50);
  try {
    const restart = await b.call<{ closedUs: number; listeningUs: number }>('restart', {}, 60_000).catch(async (error: unknown) => {
      // Say what the closing app still holds (connections accepted while it closed keep app.close() waiting).
      const held = await b.stats().then(
        (s) => s.connections,
        () => 'unknown',
      );
      throw new Error(`${error instanceof Error ? error.message : String(error)}; the closing app still counts ${held} connections`, { cause: error });
    });
    const upUs = restart.listeningUs;
    const allBack = async () => {
      const s = await status();
      return s.back === s.clients;
    };
    await eventually(allBack, RECOVERY_TIMEOUT_MS, 'every client connected again');
    await sleep(config.reconnectAfterMs);
    publishing = false;
    await publisher;
    const totalByTopic = Object.fromEntries(topics.map((topic, i) => [topic, totals[i] ?? 0]));
    const expected = sum(Array.from({ length: config.reconnectClients }, (_, i) => totalByTopic[`${TOPIC_PREFIX}${i % config.reconnectTopics}`]!));
    // Every message published has arrived (or stopped arriving: then the report counts what is missing).
    let last = -1;
    const delivered = async () => {
      const { received } = await status();
      const done = received >= expected || received === last;
      last = received;
      return done;
    };
    await eventually(delivered, DRAIN_TIMEOUT_MS, 'every message delivered', 500);
    const report = await clients.call<ClientReport>('report', { totals: totalByTopic }, 60_000);
    sample();

    const back = Math.max(...report.connectedUs);
    const caughtUpUs = Math.max(...report.caughtUpUs);
    const reconnectAfterUpMs = report.connectedUs.map((us) => (us - upUs) / 1000);
    const caughtUpAfterReconnectMs = report.caughtUpUs.map((us, i) => (us - report.connectedUs[i]!) / 1000);
    const failedAttempts = report.attemptsUs.map((list) => Math.max(0, list.length - 1));
    const s = (us: number) => round(us / 1e6, 2);
    const metrics = {
      clients: report.clients,
      serverDownS: s(upUs - t0),
      allConnectedS: s(back - t0),
      reconnectP50MsAfterUp: round(percentile(reconnectAfterUpMs, 0.5), 0),
      reconnectMaxMsAfterUp: round((back - upUs) / 1000, 0),
      allCaughtUpS: s(caughtUpUs - t0),
      failedAttemptsP50: percentile(failedAttempts, 0.5),
      failedAttemptsMax: Math.max(...failedAttempts),
      peakAttemptsPer100ms: peakIn(report.attemptsUs.flat(), 100_000),
      clientCpuMs: round(clientCpu.between(t0, caughtUpUs), 0),
      clientCpuMsPerSSteady: round(clientCpu.firstRate(), 0),
      serverCpuMs: round(serverCpu.between(upUs, caughtUpUs), 0),
      lost: report.missed,
      duplicates: report.duplicates,
      outOfOrder: report.outOfOrder,
      resets: report.resets,
    };
    console.log(
      `    back ${metrics.allConnectedS} s, caught up ${metrics.allCaughtUpS} s after the restart began; lost ${report.missed}, dup ${report.duplicates}`,
    );
    const detail = {
      openedInMs: opened.elapsedMs,
      clientCpuMsPerClient: round(clientCpu.between(t0, caughtUpUs) / report.clients, 2),
      // What the window would have cost at the rate measured before the restart, receiving only.
      clientCpuMsAtSteadyRate: round((clientCpu.firstRate() * (caughtUpUs - t0)) / 1e6, 0),
      restart: { closeS: s(restart.closedUs - t0), startS: s(upUs - restart.closedUs) },
      serverCpuMsPerSBefore: round(serverCpu.firstRate(), 0),
      publishedPerTopic: totalByTopic,
      expectedDeliveries: expected,
      clientsMissing: report.clientsMissing,
      reconnectedMsAfterServerUp: {
        p50: percentile(reconnectAfterUpMs, 0.5),
        p90: percentile(reconnectAfterUpMs, 0.9),
        p99: percentile(reconnectAfterUpMs, 0.99),
        histogram250ms: buckets(reconnectAfterUpMs, 250),
      },
      attemptStartMsAfterDrop: attemptSpread(report),
      failedAttempts: buckets(failedAttempts, 1),
      failedAttemptsSeenAsErrors: buckets(report.failedAttempts, 1),
      caughtUpMsAfterReconnect: { p50: percentile(caughtUpAfterReconnectMs, 0.5), max: Math.max(...caughtUpAfterReconnectMs) },
      errorSamples: report.errorSamples,
      serverProblems: [a.problems(), b.problems()],
    };
    return { metrics, detail };
  } finally {
    clearInterval(sampler);
    publishing = false;
  }
}

/** When attempt k after the drop started, per row (the backoff as it played out). */
function attemptTable(result: ScenarioResult): string[] {
  const spreads = result.rows.map((row) => (row.detail as { attemptStartMsAfterDrop?: ReturnType<typeof attemptSpread> } | undefined)?.attemptStartMsAfterDrop);
  const attempts = Array.from({ length: Math.max(0, ...spreads.map((s) => s?.length ?? 0)) }, (_, k) => k);
  if (attempts.length === 0) return [];
  const ms = (v: number) => Math.round(v).toLocaleString('en');
  const cell = (a: ReturnType<typeof attemptSpread>[number] | undefined) => (a ? `${a.count}: ${ms(a.minMs)} / ${ms(a.p50Ms)} / ${ms(a.maxMs)}` : '');
  return [
    "Connection attempts after the drop: clients that made attempt k, and when it started (ms after that client's drop, min / p50 / max).",
    '',
    `| Peer | ${attempts.map((k) => `attempt ${k}`).join(' | ')} |`,
    `|---|${attempts.map(() => '---:').join('|')}|`,
    ...result.rows.map((row, i) => `| ${row.label} | ${attempts.map((k) => cell(spreads[i]?.[k])).join(' | ')} |`),
    '',
  ];
}

export const clientReconnect: Scenario = {
  id: 'client-reconnect',
  async rows(config) {
    const rows: Row[] = [];
    for (const transport of config.reconnectTransports as Array<'websocket' | 'sse'>) {
      for (const minDelayMs of config.reconnectMinDelays.map(Number)) {
        const peer = `pushlet-${transport === 'websocket' ? 'ws' : 'sse'}-min${minDelayMs}`;
        const label = `Pushlet ${transport === 'websocket' ? 'WS' : 'SSE'}, backoff ${minDelayMs} ms–${MAX_DELAY_MS / 1000} s${minDelayMs === 500 ? ' (default)' : ''}`;
        console.log(`  ${label}`);
        rows.push(await measureRow({ peer, label, pushlet: true }, () => withCleanup((cleanup) => runVariant(config, transport, minDelayMs, cleanup))));
      }
    }
    return rows;
  },
  notes: attemptTable,
  title: () => 'Client SDK: reconnect after a server restart',
  description: (config) =>
    `${config.reconnectClients.toLocaleString('en')} SDK clients in one Node process (WebSocket: \`ws\`; SSE: the SDK's fetch transport), each subscribed to one of ` +
    `${config.reconnectTopics} topics on instance B of two sample-app instances sharing one redis-server; instance A publishes ${config.reconnectRate} msg/s round-robin ` +
    `throughout. B is restarted on the same port: its app closed (WebSocket close 1001, SSE streams end) and a new one started in the same process. Times are from the start of the restart: ` +
    `*server down* until the new B listens, *all connected* until every client is connected again, *all caught up* until every client has every message ` +
    `published before its own reconnection. Reconnect ms are after the new B listens. Failed attempts: per client, before the one that got through; ` +
    `attempts in the busiest 100 ms: connection attempts (all clients) starting within any 100 ms, what the backoff's jitter leaves of a thundering herd. ` +
    `CPU: the client process from the restart until all caught up (and its rate while only receiving, before the restart), ` +
    `and B from listening again until all caught up. ` +
    `Reconnect backoff: the SDK's full jitter, attempt n waits between min and min(30 s, min × 2ⁿ).`,
  params: (config) => ({ clients: config.reconnectClients, topics: config.reconnectTopics, rate: config.reconnectRate, maxReconnectDelayMs: MAX_DELAY_MS }),
  columns: [
    col('clients', 'clients'),
    col('serverDownS', 'server down s', 2),
    col('allConnectedS', 'all connected s', 2, 'lower'),
    col('reconnectP50MsAfterUp', 'reconnect p50 ms', 0, 'lower'),
    col('reconnectMaxMsAfterUp', 'reconnect max ms', 0, 'lower'),
    col('allCaughtUpS', 'all caught up s', 2, 'lower'),
    col('failedAttemptsP50', 'failed attempts p50', 0),
    col('failedAttemptsMax', 'failed attempts max', 0),
    col('peakAttemptsPer100ms', 'attempts in busiest 100 ms', 0, 'lower'),
    col('clientCpuMs', 'client CPU ms', 0, 'lower'),
    col('clientCpuMsPerSSteady', 'client CPU ms/s before', 0),
    col('serverCpuMs', 'server CPU ms', 0, 'lower'),
    col('lost', 'lost'),
    col('duplicates', 'dup'),
    col('outOfOrder', 'out of order'),
    col('resets', 'resets'),
  ],
};
