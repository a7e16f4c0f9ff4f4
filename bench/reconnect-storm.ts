/**
 * The reconnect storm (issue 13): thousands of WebSocket and SSE clients of an instance that is
 * SIGKILLed reconnect with their last id to the other instance on the same Redis while a
 * publisher runs. Measures the time until every client is reconnected and caught up, what it
 * cost Redis (CPU, commands, script calls) and the surviving instance, and checks every message:
 * once, in order, or announced by a reset. The `storm` scenario of `npm run bench`; `npm run
 * bench:storm` runs it alone (bench/results/storm.*) with every `--storm-*` option of bench/config.ts.
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { StormCollected, StormCounts, StormProgress, StormTarget, StormTimes } from './client/load-client.js';
import type { BenchConfig } from './config.js';
import { latestProfile, profileMarkdown, summarizeProfile, type ProfileSummary } from './lib/cpuprofile.js';
import { nowUs, sampleProcess, sleep } from './lib/proc.js';
import { LOG_DIR, PEERS, ProcessPool } from './lib/processes.js';
import { NatsServer } from '../test/support/nats.js';
import { commandDelta, startRedis, type RedisInfo } from './lib/redis.js';
import { fmt } from './lib/report.js';
import { col, measureRow, release, startServer, type Cleanup, type Row, type Scenario, type ScenarioResult } from './lib/scenario.js';
import { percentile, round, sum, sumFields } from './lib/stats.js';

const HOST = '127.0.0.1';
const TOPIC_PREFIX = 'storm/t';
/** The baseline (publisher only) is measured over the last this-many ms before the kill. */
const BASELINE_MS = 3_000;

/** The storm's knobs (see bench/config.ts); `reads`: how instance B reads history; `profileDir`: B under `--cpu-prof`. */
export type StormOptions = ReturnType<typeof stormOptions>;

export function stormOptions(config: BenchConfig, reads = 'per-turn', broker = 'redis') {
  return {
    clients: config.stormClients,
    wsShare: config.stormWsShare,
    topics: config.stormTopics,
    rate: config.stormRate,
    jitterMs: config.stormJitterMs,
    warmMs: config.stormWarmMs,
    timeoutMs: config.stormTimeoutMs,
    tailMs: config.stormTailMs,
    connsPerProcess: config.stormConnsPerProcess,
    connectTimeoutMs: config.stormConnectTimeoutMs,
    backlog: config.stormBacklog,
    clientNice: config.stormClientNice,
    payloadBytes: config.payloadBytes,
    holders: config.stormHolders,
    reads,
    broker,
    profileDir: config.stormProfile ? join(config.outDir, 'profiles') : (undefined as string | undefined),
  };
}

/**
 * Which script ran how often, from the commands the scripts run inside (INFO counts those too):
 * on a single server the publish script is the only one that SETs (once per call), the replay
 * script the only one that HGETs outside an instance's start (once per call) and XRANGEs (twice
 * per topic it reads), and the position script GETs once per call, as the publish script does.
 */
function scriptCalls(commands: Record<string, number>) {
  const get = (name: string) => commands[name] ?? 0;
  return {
    evalsha: get('evalsha') + get('eval'),
    publish: get('set'),
    replay: get('hget'),
    topicReads: get('xrange') / 2,
    position: Math.max(0, get('get') - get('set')),
  };
}

/** Listen-queue overflows and drops of the machine's TCP stack (/proc/net/netstat; every process counts). */
function listenDrops(): { overflows: number; drops: number } {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('TcpExt:'));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/).map(Number);
    const at = (name: string) => values[names.indexOf(name)] ?? NaN;
    return { overflows: at('ListenOverflows'), drops: at('ListenDrops') };
  } catch {
    return { overflows: NaN, drops: NaN };
  }
}

/** A listening socket's accept queue now (Recv-Q) and its backlog (Send-Q), from `ss`. */
function listenQueue(port: number): Promise<{ queued: number; backlog: number } | undefined> {
  return new Promise((resolve) => {
    execFile('ss', ['-ltnH', `sport = :${port}`], { timeout: 2_000 }, (error, stdout) => {
      const fields = error ? [] : stdout.trim().split(/\s+/);
      resolve(fields.length >= 3 ? { queued: Number(fields[1]), backlog: Number(fields[2]) } : undefined);
    });
  });
}

/** Everything one storm measured (bench/results/storm.json). */
export type StormRun = Awaited<ReturnType<typeof runStorm>>;

/** One nats-server -js for a storm on NATS, shaped as {@link startRedis}'s answer where the storm reads it. */
async function natsBackbone() {
  const server = await NatsServer.start();
  const pid = server.pid!;
  return {
    env: { NATS_URL: server.url, NATS_STREAM: 'storm', NATS_SUBJECT_PREFIX: 'storm' } as Record<string, string>,
    pid,
    info: async (): Promise<RedisInfo> => ({ cpuMs: sampleProcess(pid).cpuMs, commands: {}, usec: {}, usedMemory: 0, pid }),
    stop: () => server.stop(),
  };
}

/** Percentiles of times in µs, in ms. */
function percentiles(valuesUs: number[]): { p50: number; p90: number; p99: number; max: number; count: number } {
  const ms = (p: number) => round(percentile(valuesUs, p) / 1000, 0);
  return { p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), max: ms(1), count: valuesUs.length };
}

function mergeCounts(parts: Array<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(sumFields(parts)).sort((a, b) => b[1] - a[1]));
}

/** One storm: fresh Redis, instances A, B and a publisher, clients on A; A killed; measured until all caught up. */
export async function runStorm(o: StormOptions, log: (line: string) => void = console.log) {
  mkdirSync(LOG_DIR, { recursive: true });
  const label = o.reads;
  const cleanup: Cleanup = [];
  const startLoad = loadavg();
  const startedAt = new Date().toISOString();
  try {
    // The backbone: its CPU from INFO (Redis, with the commands run) or from /proc (NATS: no command counts).
    const redis = o.broker === 'nats' ? await natsBackbone() : await startRedis();
    cleanup.push(() => redis.stop());

    const env = {
      ...redis.env,
      HEARTBEAT_MS: '30000',
      BENCH_PAYLOAD: String(o.payloadBytes),
      ...(o.backlog > 0 ? { BENCH_BACKLOG: String(o.backlog) } : {}),
    };
    const peer = PEERS['pushlet-ws']!;
    const start = async (name: string, extra: NodeJS.ProcessEnv = {}, cpuProfileDir?: string) => {
      const server = await startServer(peer, cleanup, { ...env, ...extra }, name, cpuProfileDir);
      if (!server.features.distributed) throw new Error(`${name}: the sample app did not start in distributed mode`);
      return server;
    };
    if (o.profileDir) mkdirSync(o.profileDir, { recursive: true });
    const a = await start(`${label}-A`);
    const bName = `${label}-B`;
    const b = await start(bName, { BENCH_READS: o.reads }, o.profileDir);
    if (!b.features[`reads:${o.reads}`]) throw new Error(`instance B did not switch to ${o.reads} reads`);
    const publisher = await start(`${label}-publisher`);
    // Subscribers of every topic on B from the start (`--storm-holders`): B watches them before the kill.
    for (let h = 0; h < o.holders; h += 1) {
      for (let t = 0; t < o.topics; t += 1) {
        const held = request({ host: HOST, port: b.port, path: `/events?topic=${TOPIC_PREFIX}${t}` });
        held.on('response', (response) => response.resume());
        held.on('error', () => undefined);
        held.end();
        cleanup.push(async () => void held.destroy());
      }
    }

    const ws = Math.round(o.clients * o.wsShare);
    const sse = o.clients - ws;
    const shares: Array<{ protocol: 'ws' | 'sse'; first: number; count: number }> = [];
    for (const [protocol, count, offset] of [
      ['ws', ws, 0],
      ['sse', sse, ws],
    ] as const) {
      const processes = Math.ceil(count / o.connsPerProcess);
      for (let i = 0, first = offset; i < processes; i += 1) {
        const share = Math.floor(count / processes) + (i < count % processes ? 1 : 0);
        shares.push({ protocol, first, count: share });
        first += share;
      }
    }
    const children = await ProcessPool.spawn('client/load-client.js', shares.length, `storm-${label}`, o.clientNice);
    const pool = new ProcessPool<StormProgress>(children, () => ({ clients: 0, connected: 0, warm: 0, dropped: 0, reconnected: 0, caughtUp: 0, pending: 0 }));
    cleanup.push(() => pool.stop());

    // Every client on A, `pushlet:connected` received, before anything is published.
    const connectStarted = Date.now();
    const opened = await Promise.all(
      shares.map((share, i) => {
        const target: StormTarget = {
          protocol: share.protocol,
          host: HOST,
          portA: a.port,
          portB: b.port,
          topicPrefix: TOPIC_PREFIX,
          topicFirst: share.first,
          topics: o.topics,
          count: share.count,
          localAddress: `127.20.${1 + (i >> 8)}.${1 + (i & 0xff)}`,
          concurrency: 100,
          jitterMs: o.jitterMs,
          backoffBaseMs: 500,
          backoffMaxMs: 5_000,
          timeoutMs: o.connectTimeoutMs,
        };
        return pool.children[i]!.call<{ opened: number; failed: number; errors: string[] }>('open', target, 600_000);
      }),
    );
    const failed = sum(opened.map((r) => r.failed));
    const errors = opened.flatMap((r) => r.errors).slice(0, 3);
    if (failed > 0) throw new Error(`${failed} of ${o.clients} clients could not connect to A: ${errors.join('; ')}`);
    await pool.watch(100);
    if (!(await pool.waitFor((p) => p.connected === o.clients, 60_000)))
      throw new Error(`only ${pool.total().connected} of ${o.clients} clients got pushlet:connected from A`);
    const connectMs = Date.now() - connectStarted;
    log(`  ${o.clients.toLocaleString('en')} clients (${ws} WebSocket, ${sse} SSE) connected to A in ${(connectMs / 1000).toFixed(1)} s`);

    // The publisher runs from here to the end: per-topic sequence numbers in every message's data.
    const topics = Array.from({ length: o.topics }, (_, i) => `${TOPIC_PREFIX}${i}`);
    const steady = publisher.call<{ sent: number; totals: number[]; publishErrors: number }>(
      'steady',
      { topics, rate: o.rate, durationMs: 3_600_000 },
      3_700_000,
    );
    steady.catch(() => undefined);
    if (!(await pool.waitFor((p) => p.warm === o.clients, 30_000))) throw new Error(`only ${pool.total().warm} of ${o.clients} clients received a message`);
    await sleep(Math.max(0, o.warmMs - BASELINE_MS));
    const base0 = await redis.info();
    const a0 = a.sample();
    const baseStartUs = nowUs();
    await sleep(BASELINE_MS);
    const base1 = await redis.info();
    const a1 = a.sample();
    const baseSeconds = (nowUs() - baseStartUs) / 1e6;

    // The kill.
    const redisProc0 = sampleProcess(redis.pid);
    const b0 = b.sample();
    const bLoop0 = (await b.stats(false)).eventLoop;
    const p0 = publisher.sample();
    const clients0 = sum(pool.children.map((c) => sampleProcess(c.pid).cpuMs));
    const queue0 = listenDrops();
    const killLoad = loadavg();
    const killUs = nowUs();
    process.kill(a.pid, 'SIGKILL');
    let aExitMs = NaN;
    void a.exit.then(() => (aExitMs = round((nowUs() - killUs) / 1000, 0)));
    log(`  A (pid ${a.pid}) killed; waiting for every client to reconnect to B and catch up`);

    const timeline: Array<{ ms: number; reconnected: number; caughtUp: number; redisCpuMs: number; bCpuMs: number }> = [];
    const acceptQueue = { peak: 0, backlog: 0, samples: 0 };
    const sampler = setInterval(() => {
      void listenQueue(b.port).then((q) => {
        if (!q) return;
        acceptQueue.samples += 1;
        acceptQueue.backlog = q.backlog;
        if (q.queued > acceptQueue.peak) acceptQueue.peak = q.queued;
      });
      const p = pool.total();
      timeline.push({
        ms: round((nowUs() - killUs) / 1000, 0),
        reconnected: p.reconnected,
        caughtUp: p.caughtUp,
        redisCpuMs: round(sampleProcess(redis.pid).cpuMs - redisProc0.cpuMs, 0),
        bCpuMs: round(b.sample().cpuMs - b0.cpuMs, 0),
      });
    }, 250);
    const allCaughtUp = await pool.waitFor((p) => p.caughtUp === o.clients, o.timeoutMs);
    const endUs = nowUs();
    const redis1 = await redis.info();
    const redisProc1 = sampleProcess(redis.pid);
    const b1 = b.sample();
    const clients1 = sum(pool.children.map((c) => sampleProcess(c.pid).cpuMs));
    const bLoop1 = (await b.stats(false)).eventLoop;
    const p1 = publisher.sample();
    const queue1 = listenDrops();
    clearInterval(sampler);
    const windowMs = (endUs - killUs) / 1000;
    log(
      `  ${allCaughtUp ? 'all caught up' : `timed out: ${pool.total().caughtUp} of ${o.clients} caught up`} ${(windowMs / 1000).toFixed(2)} s after the kill`,
    );

    // Publishing goes on a little, then stops; every client must then hold every message.
    await sleep(o.tailMs);
    await publisher.call('stopSteady', {});
    const published = await steady;
    const totals = Object.fromEntries(topics.map((topic, i) => [topic, published.totals[i]!]));
    await pool.expect(totals);
    const drained = await pool.waitFor((p) => p.pending === 0, 15_000);
    const parts = await Promise.all(pool.children.map((c) => c.call<StormCollected>('collect', { killUs, endUs, totals }, 120_000)));
    const bStats = await b.stats(false);

    const counts: StormCounts = sumFields(parts.map((p) => p.counts));
    const times = Object.fromEntries(Object.keys(parts[0]!.times).map((key) => [key, parts.flatMap((p) => p.times[key as keyof StormTimes])])) as StormTimes;

    const aCpuUsPerDelivery = round(((a1.cpuMs - a0.cpuMs) * 1000) / ((o.clients * o.rate * baseSeconds) / o.topics), 1);
    const perCommand = commandDelta(redis1, base1);
    const scripts = scriptCalls(perCommand);
    const basePerCommand = commandDelta(base1, base0);
    const perSec = (n: number) => round(n / baseSeconds, 1);
    const baselinePerSec = {
      cpuMs: perSec(base1.cpuMs - base0.cpuMs),
      commands: perSec(sum(Object.values(basePerCommand))),
      evalsha: perSec(scriptCalls(basePerCommand).evalsha),
      perCommand: Object.fromEntries(Object.entries(basePerCommand).map(([k, v]) => [k, perSec(v)])),
    };
    const windowS = windowMs / 1000;
    const commands = sum(Object.values(perCommand));
    const netEvalsha = scripts.evalsha - baselinePerSec.evalsha * windowS;

    const run = {
      options: o,
      transports: { ws, sse },
      processes: shares.length,
      startedAt,
      loadAverage: { start: startLoad, kill: killLoad, end: loadavg() },
      connectMs,
      allReconnectedMs: percentiles(times.reconnected).max,
      allCaughtUpMs: percentiles(times.caughtUp).max,
      allReplayedMs: percentiles(times.replayed).max,
      reconnected: percentiles(times.reconnected),
      caughtUp: percentiles(times.caughtUp),
      replayed: percentiles(times.replayed),
      dropNoticed: percentiles(times.dropped),
      steps: { tcpConnect: percentiles(times.tcpConnect), httpAccept: percentiles(times.httpAccept), sessionStart: percentiles(times.sessionStart) },
      aExitMs,
      windowMs: round(windowMs, 0),
      window: { killUs, endUs },
      timedOut: !allCaughtUp,
      redis: {
        cpuMs: round(redis1.cpuMs - base1.cpuMs, 0),
        cpuMsProc: round(redisProc1.cpuMs - redisProc0.cpuMs, 0),
        commands,
        perCommand,
        scripts,
        baselinePerSec,
        net: {
          cpuMs: round(redis1.cpuMs - base1.cpuMs - baselinePerSec.cpuMs * windowS, 0),
          commands: round(commands - baselinePerSec.commands * windowS, 0),
          evalsha: round(netEvalsha, 0),
        },
      },
      aCpuUsPerDelivery,
      readsPerClient: round((scripts.replay + scripts.position) / o.clients, 4),
      replayCallsPerClient: round(scripts.replay / o.clients, 4),
      topicReadsPerClient: round(scripts.topicReads / o.clients, 4),
      instanceB: {
        cpuMs: round(b1.cpuMs - b0.cpuMs, 0),
        cpuPct: round(((b1.cpuMs - b0.cpuMs) * 100) / windowMs, 0),
        cpuMsPerClient: round((b1.cpuMs - b0.cpuMs) / o.clients, 2),
        deliveries: counts.windowDeliveries,
        cpuMsPerClientLessDeliveries: round((b1.cpuMs - b0.cpuMs - (counts.windowDeliveries * aCpuUsPerDelivery) / 1000) / o.clients, 2),
        eventLoopUtilization: round((bLoop1.activeMs - bLoop0.activeMs) / Math.max(1, bLoop1.activeMs - bLoop0.activeMs + bLoop1.idleMs - bLoop0.idleMs), 2),
        rssMB: round(bStats.rssBytes / 2 ** 20, 0),
        connections: bStats.connections,
        problems: b.problems(),
      },
      publisher: { cpuMs: round(p1.cpuMs - p0.cpuMs, 0), published: published.sent, publishErrors: published.publishErrors },
      clientCpuMs: round(sum(parts.map((p) => p.cpuUs)) / 1000, 0),
      clientWindowCpuMs: round(clients1 - clients0, 0),
      listenQueue: { overflows: queue1.overflows - queue0.overflows, drops: queue1.drops - queue0.drops },
      acceptQueue,
      counts,
      drained,
      samples: parts.flatMap((p) => p.problems).slice(0, 24),
      dropReasons: mergeCounts(parts.map((p) => p.dropReasons)),
      failureReasons: mergeCounts(parts.map((p) => p.failureReasons)),
      timeline,
      profile: undefined as { file: string; summary: ProfileSummary } | undefined,
    };

    if (o.profileDir) {
      await b.stop(); // exits the process, which writes its profile
      const file = latestProfile(o.profileDir, bName);
      if (file) run.profile = { file, summary: summarizeProfile(join(o.profileDir, file), { startUs: killUs, endUs }) };
    }
    return run;
  } finally {
    await release(cleanup);
  }
}

// ---- report -------------------------------------------------------------------------------------

const TARGET_MS = 10_000;

/** Whether a run meets the issue's target: all caught up within 10 s, every message once, no reset (history covers the outage). */
export function stormMet(run: StormRun): boolean {
  const c = run.counts;
  return !run.timedOut && run.allCaughtUpMs < TARGET_MS && run.drained && c.missing + c.tailMissing + c.duplicates + c.reorders + c.resets === 0;
}

const s = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '–');

export const READ_LABELS: Record<string, string> = {
  'per-turn': 'reads batched per turn (main)',
  'per-connection': 'a read per connection (before 4f2d30d, emulated)',
  coalesced: 'reads coalesced while one is in flight (proposal, emulated)',
};

/** The storm's details after its table: every figure per run, then each run's commands, progress and samples. */
function stormNotes(result: ScenarioResult): string[] {
  const rows = result.rows.filter((row) => row.status === 'ok');
  const runs = rows.map((row) => row.detail as StormRun);
  if (runs.length === 0) return [];
  const o = runs[0]!.options;
  const lines = [
    `Load average (1/5/15 min) at the kill: ${runs.map((r, i) => `${r.loadAverage.kill.map((l) => l.toFixed(1)).join(' / ')} (${rows[i]!.label})`).join(', ')}. ` +
      `Failed attempts: full jitter from 500 ms up to 5 s, an attempt without an answer given up after ${o.connectTimeoutMs / 1000} s; ` +
      `${o.clientNice !== 0 ? `load clients at nice ${o.clientNice}; ` : ''}listen queue ${o.backlog > 0 ? o.backlog : "Node's default, 511"}.`,
    '',
    `| | ${rows.map((row) => row.label).join(' | ')} |`,
    `|---|${rows.map(() => '---:').join('|')}|`,
  ];
  const row = (name: string, value: (r: StormRun) => string) => lines.push(`| ${name} | ${runs.map(value).join(' | ')} |`);
  row('reconnected p50 / p99', (r) => `${s(r.reconnected.p50)} / ${s(r.reconnected.p99)}`);
  row('all replayed (every message published before the reconnection)', (r) => s(r.allReplayedMs));
  row('caught up p50 / p99', (r) => `${s(r.caughtUp.p50)} / ${s(r.caughtUp.p99)}`);
  row(
    "Redis CPU in the window (INFO) / of it the publisher's baseline",
    (r) => `${fmt(r.redis.cpuMs)} ms / ${fmt(r.redis.baselinePerSec.cpuMs * (r.windowMs / 1000))} ms`,
  );
  row("evalsha calls in the window / net of the publisher's", (r) => `${fmt(r.redis.scripts.evalsha)} / ${fmt(r.redis.net.evalsha)}`);
  row('replay script calls / topic reads', (r) => `${fmt(r.redis.scripts.replay)} / ${fmt(r.redis.scripts.topicReads)}`);
  row('position script calls / publish script calls', (r) => `${fmt(r.redis.scripts.position)} / ${fmt(r.redis.scripts.publish)}`);
  row('instance B CPU % of one core / event loop busy', (r) => `${fmt(r.instanceB.cpuPct)} % / ${fmt(r.instanceB.eventLoopUtilization * 100)} %`);
  row(
    "B: messages delivered in the window / CPU per client less them (at A's cost per delivery)",
    (r) => `${fmt(r.instanceB.deliveries)} / ${fmt(r.instanceB.cpuMsPerClientLessDeliveries, 2)} ms`,
  );
  row("A's CPU per live delivery before the kill (this machine, now)", (r) => `${fmt(r.aCpuUsPerDelivery, 1)} µs`);
  row("load clients' CPU in the window", (r) => `${fmt(r.clientWindowCpuMs)} ms`);
  row("messages replayed (published before the client's reconnection, received after its drop)", (r) => fmt(r.counts.replayedMessages));
  row('reconnection attempts / failed', (r) => `${fmt(r.counts.attempts)} / ${fmt(r.counts.failedAttempts)}`);
  row(
    "B's accept queue: peak / backlog; listen-queue overflows (machine-wide)",
    (r) => `${fmt(r.acceptQueue.peak)} / ${fmt(r.acceptQueue.backlog)}; ${fmt(r.listenQueue.overflows)}`,
  );
  row('clients never reconnected / the messages they did not get', (r) => `${fmt(r.counts.notReconnected)} / ${fmt(r.counts.undelivered)}`);
  row('target: all caught up < 10 s, every message once, no reset', (r) =>
    stormMet(r) ? '**met**' : `**missed**${r.allCaughtUpMs >= TARGET_MS ? ` by ${s(r.allCaughtUpMs - TARGET_MS)}` : ''}`,
  );
  lines.push(
    '',
    '**Definitions.** Times from the kill (monotonic clock shared by all processes); "all" is the slowest client. *Reconnected*: `pushlet:connected` from B. ' +
      'Caught up: the first message published after its reconnection received while holding every earlier one of its topic from sequence 0 ' +
      `(so it includes waiting for the topic's next message, up to ${round(o.topics / o.rate, 2)} s). *Replayed*: holds every message published before its reconnection. ` +
      `Redis: INFO deltas from the kill to all caught up; *baseline*: the same per second over the ${BASELINE_MS / 1000} s before the kill (publisher only), *net* subtracts it. ` +
      'Scripts are told apart by their inner commands: publish SETs once, replay HGETs once and XRANGEs twice per topic, position GETs once. ' +
      `*Missing*: a gap without a \`pushlet:reset\` before it, or a message never received (publishing goes on ${o.tailMs / 1000} s after the window). *Reorders*: received after a later one.`,
    '',
  );
  runs.forEach((r, i) => {
    const step = (p: { p50: number; p99: number; max: number }) => `${s(p.p50)} / ${s(p.p99)} / ${s(p.max)}`;
    const reasons = (counts: Record<string, number>) =>
      Object.entries(counts)
        .map(([reason, n]) => `${reason} (${fmt(n)})`)
        .join('; ');
    lines.push(
      `### ${rows[i]!.label}`,
      '',
      `Connecting to A took ${s(r.connectMs)}. A's exit seen ${s(r.aExitMs)} after the kill; drops noticed p50 ${s(r.dropNoticed.p50)}, max ${s(r.dropNoticed.max)}. ` +
        `The attempt that got through, p50 / p99 / max: TCP handshake ${step(r.steps.tcpConnect)}, then the HTTP answer (101 or 200) ${step(r.steps.httpAccept)}, ` +
        `then \`pushlet:connected\` ${step(r.steps.sessionStart)}. Replayed ${step(r.replayed)}. ` +
        `Instance B: RSS ${fmt(r.instanceB.rssMB)} MB, ${fmt(r.instanceB.connections)} connections at the end. Publisher: ${fmt(r.publisher.published)} messages, ${fmt(r.publisher.cpuMs)} ms CPU in the window, ${fmt(r.publisher.publishErrors)} errors. ` +
        `Load clients: ${fmt(r.clientCpuMs)} ms CPU over the whole run. Redis process CPU (/proc) in the window: ${fmt(r.redis.cpuMsProc)} ms. ` +
        `Baseline (publisher only) per second: ${fmt(r.redis.baselinePerSec.commands)} commands, ${fmt(r.redis.baselinePerSec.evalsha)} evalsha, ${fmt(r.redis.baselinePerSec.cpuMs)} ms Redis CPU. ` +
        `Clients dropped twice: ${fmt(r.counts.droppedTwice)}; skipped after a reset: ${fmt(r.counts.skippedByReset)}; drained at the end: ${r.drained ? 'yes' : 'no'}.`,
      '',
      `Redis commands in the window: ${Object.entries(r.redis.perCommand)
        .map(([name, calls]) => `${name} ${fmt(calls)}`)
        .join(', ')}.`,
      '',
      '| s after the kill | reconnected | caught up | Redis CPU ms | B CPU ms |',
      '|---:|---:|---:|---:|---:|',
      ...r.timeline
        .filter((_, k) => k % 4 === 3)
        .map((t) => `| ${(t.ms / 1000).toFixed(1)} | ${fmt(t.reconnected)} | ${fmt(t.caughtUp)} | ${fmt(t.redisCpuMs)} | ${fmt(t.bCpuMs)} |`),
      '',
    );
    if (r.samples.length) lines.push('Samples of what went wrong with messages:', '', ...r.samples.map((x) => `- ${x.replace(/\|/g, '\\|')}`), '');
    if (Object.keys(r.failureReasons).length) lines.push(`Failed reconnection attempts: ${reasons(r.failureReasons)}.`, '');
    if (Object.keys(r.dropReasons).length) lines.push(`Connections to B closed after they were established: ${reasons(r.dropReasons)}.`, '');
    if (r.instanceB.problems.count)
      lines.push(`Instance B logged ${r.instanceB.problems.count} warnings or errors:`, '', ...r.instanceB.problems.samples.map((x) => `- ${x}`), '');
    if (r.profile) lines.push(profileMarkdown(`Instance B during the storm (kill to all caught up), ${r.profile.file}`, r.profile.summary), '');
  });
  return lines;
}

/**
 * `storm` (`npm run bench`, or alone with `npm run bench:storm`): one row per way of reading
 * history on instance B (`--storm-reads`); main's is the Pushlet row, the emulated others are its references.
 */
export const storm: Scenario = {
  id: 'storm',
  async rows(config) {
    const rows: Row[] = [];
    for (const reads of config.stormReads) {
      if (!READ_LABELS[reads]) throw new Error(`--storm-reads: ${reads} is not one of ${Object.keys(READ_LABELS).join(', ')}`);
      const main = reads === 'per-turn';
      // The other backbones with main's reads only (the emulated read modes swap Redis's).
      for (const broker of main ? config.stormBrokers : ['redis']) {
        if (broker !== 'redis' && broker !== 'nats') throw new Error(`--storm-brokers: ${broker} is not one of redis, nats`);
        const onNats = broker === 'nats';
        rows.push(
          await measureRow(
            {
              peer: main ? (onNats ? 'pushlet-storm-nats' : 'pushlet-storm') : `storm-${reads}`,
              label: onNats ? 'NATS JetStream, reads batched per turn' : READ_LABELS[reads]!,
              pushlet: main,
            },
            async () => {
              const run = await runStorm(stormOptions(config, reads, broker), (line) => console.log(`  ${line.trim()}`));
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
                  bCpuMsPerResume: run.instanceB.cpuMsPerClientLessDeliveries,
                  missing: c.missing + c.tailMissing,
                  duplicates: c.duplicates,
                  reorders: c.reorders,
                  resets: c.resets,
                  errors: c.errors + run.instanceB.problems.count + (run.timedOut ? 1 : 0),
                  met: stormMet(run) ? 1 : 0,
                },
                detail: run,
              };
            },
          ),
        );
      }
    }
    return rows;
  },
  notes: stormNotes,
  title: (c) => `Reconnect storm: ${c.stormClients.toLocaleString('en')} clients of a killed instance reconnect to the other`,
  description: (c) => {
    const ws = Math.round(c.stormClients * c.stormWsShare);
    return (
      `${ws.toLocaleString('en')} WebSocket and ${(c.stormClients - ws).toLocaleString('en')} SSE clients on ${c.stormTopics} topics of instance A; ` +
      `${c.stormRate} msg/s published throughout by a third instance (${c.payloadBytes}-byte data); after ${c.stormWarmMs / 1000} s A is SIGKILLed; ` +
      `each client reconnects to instance B with its last id (WebSocket \`lastEventId=\`, SSE \`Last-Event-ID\`) after a random delay in [0, ${c.stormJitterMs} ms). ` +
      'Times from the kill: all reconnected (`pushlet:connected` from B), all caught up (every message of its topic up to the first one published after its reconnection). ' +
      "Redis CPU and commands (INFO deltas) and instance B's CPU over the same window; on NATS JetStream, nats-server's CPU from /proc in the Redis columns (no command counts). " +
      'Details: bench/reconnect-storm.ts; `npm run bench:storm` runs it alone (bench/results/storm.*).'
    );
  },
  params: (c) => ({ ...stormOptions(c) }),
  columns: [
    col('allReconnectedS', 'all reconnected s', 2, 'lower'),
    col('allCaughtUpS', 'all caught up s', 2, 'lower'),
    col('caughtUpP50S', 'caught up p50 s', 2, 'lower'),
    col('redisCpuMs', 'Redis CPU ms', 0, 'lower'),
    col('redisCommands', 'Redis commands', 0, 'lower'),
    col('evalsha', 'evalsha', 0, 'lower'),
    col('readsPerClient', 'read scripts per client', 3, 'lower'),
    col('bCpuMs', 'B CPU ms', 0, 'lower'),
    col('bCpuMsPerClient', 'B CPU ms/client', 2, 'lower'),
    col('bCpuMsPerResume', 'B CPU ms/client less live deliveries', 2, 'lower'),
    col('missing', 'missing'),
    col('duplicates', 'dup'),
    col('reorders', 'reorders'),
    col('resets', 'resets'),
    col('errors', 'errors'),
  ],
};
