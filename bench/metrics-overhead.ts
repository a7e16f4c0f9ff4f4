/**
 * Issue 15: what the metrics cost per delivery. The same server (the sample app, as `npm run
 * bench` runs it) with the Prometheus metrics off and on (PUSHLET_METRICS=1: PushletMetricsModule
 * mounted and its registry scraped every second in the process, 15 times as often as Prometheus
 * usually asks), side by side, each measurement cut into interleaved slices (off, on, off, on…):
 *
 * - fan-out: `--fanout-subs` subscribers of one topic, WebSocket and SSE, at saturation and at
 *   `--steady-rate` msg/s;
 * - many topics: `--topics` topics with one subscriber each at `--topics-rate` msg/s in total,
 *   where per-message costs (the histograms) weigh most.
 *
 * The counts behind `stats()` are kept whether or not metrics are mounted. To measure them too,
 * build an older commit elsewhere and name its build directory: METRICS_BASELINE_BUILD=/tmp/base/build
 * adds a third server, that build's sample app, to every comparison.
 *
 * The machine is shared: end-to-end figures move by several percent between runs. `--profile`
 * measures the same thing another way, less sensitive to that: each server (off, then on) under
 * each load with `node --cpu-prof`, and the share of its busy CPU spent under the module's
 * counting and metrics code (any frame from `src/metrics/` on the stack: the fan-out count, the
 * histograms, the scrapes with prom-client beneath them).
 *
 * Run: npm run build:all && node build/bench/metrics-overhead.js [--rounds=8 --flood-ms=16000]
 * (`--only=fanout-ws,topics-sse` for some of them, BENCH_QUICK=1 for a smoke run). Writes
 * bench/results/metrics-overhead.{md,json} (`.partial` for a partial run).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type BenchConfig } from './config.js';
import { round } from './lib/histogram.js';
import { nowUs } from './lib/proc.js';
import { ClientPool, floodPhase, medianOf, mergePhases, PEERS, ServerHandle, setRunLabel, steadyPhase, warmUp, type PhaseResult } from './lib/runner.js';

interface Variant {
  key: 'off' | 'on' | 'base';
  label: string;
  env: Record<string, string>;
  scriptPath?: string;
}

interface Measured {
  variant: Variant;
  server: ServerHandle;
  pool: ClientPool;
  phases: Record<string, PhaseResult[]>;
}

interface Figure {
  scenario: string;
  phase: string;
  /** CPU µs per delivery of each variant, over all slices. */
  cpuUs: Record<string, number>;
  deliveriesPerSec: Record<string, number>;
  /** on ÷ off (and off ÷ base), over all slices and as the median of each slice's ratio. */
  ratios: Record<string, { merged: number; medianSlice: number }>;
  integrity: Record<string, { lost: number; duplicates: number; outOfOrder: number; errors: number }>;
}

const HOST = '127.0.0.1';

function variants(): Variant[] {
  const list: Variant[] = [
    { key: 'off', label: 'metrics off', env: { PUSHLET_METRICS: '0' } },
    { key: 'on', label: 'metrics on, scraped every second', env: { PUSHLET_METRICS: '1', BENCH_SCRAPE_MS: '1000' } },
  ];
  const base = process.env.METRICS_BASELINE_BUILD;
  if (base) list.push({ key: 'base', label: `baseline build (${base})`, env: {}, scriptPath: join(base, 'bench/servers/pushlet.js') });
  return list;
}

async function setUp(
  config: BenchConfig,
  transport: 'ws' | 'sse',
  variant: Variant,
  connections: number,
  topic: { topic?: string; topicPrefix?: string },
  topics: string[],
  cpuProfileDir?: string,
): Promise<Measured> {
  const peer = { ...PEERS[`pushlet-${transport}`]!, scriptPath: variant.scriptPath };
  const name = `${transport}-${variant.key}-${topic.topic ?? 'topics'}`;
  const server = await ServerHandle.start(peer, { env: { HEARTBEAT_MS: '30000', BENCH_PAYLOAD: String(config.payloadBytes), ...variant.env }, name, cpuProfileDir });
  const pool = await ClientPool.start(Math.max(2, Math.ceil(connections / config.connsPerProcess)), name);
  const opened = await pool.open({ protocol: peer.protocol, host: HOST, port: server.port, pathPrefix: peer.pathPrefix, ...topic }, connections, config.connectConcurrency);
  if (opened.failed > 0) throw new Error(`${opened.failed} of ${connections} connections failed: ${opened.errors.join('; ')}`);
  await warmUp(server, pool, topics, connections);
  return { variant, server, pool, phases: {} };
}

async function tearDown(measured: Measured[]): Promise<void> {
  for (const { server, pool } of measured) {
    await pool.stop().catch(() => undefined);
    await server.stop().catch(() => undefined);
  }
}

/**
 * Runs `phases` for every variant in turn, `rounds` times, each round starting with the next
 * variant (off on base, on base off, …) so that no variant always runs first or last.
 */
async function interleave(measured: Measured[], rounds: number, phases: Record<string, (m: Measured) => Promise<PhaseResult>>): Promise<void> {
  for (let r = 0; r < rounds; r += 1) {
    const order = measured.map((_, i) => measured[(i + r) % measured.length]!);
    for (const [phase, run] of Object.entries(phases)) {
      for (const m of order) (m.phases[phase] ??= []).push(await run(m));
    }
    process.stdout.write(`  round ${r + 1} of ${rounds}\n`);
  }
}

function figures(scenario: string, measured: Measured[]): Figure[] {
  const phaseNames = Object.keys(measured[0]!.phases);
  return phaseNames.map((phase) => {
    const merged = new Map(measured.map((m) => [m.variant.key, mergePhases(m.phases[phase]!)]));
    const slices = new Map(measured.map((m) => [m.variant.key, m.phases[phase]!]));
    const ratio = (a: string, b: string) => {
      const x = merged.get(a as Variant['key']);
      const y = merged.get(b as Variant['key']);
      if (!x || !y) return undefined;
      const perSlice = slices.get(a as Variant['key'])!.map((s, i) => s.cpuUsPerDelivery / slices.get(b as Variant['key'])![i]!.cpuUsPerDelivery);
      return { merged: round(x.cpuUsPerDelivery / y.cpuUsPerDelivery, 4), medianSlice: round(medianOf(perSlice), 4) };
    };
    const ratios: Figure['ratios'] = {};
    const onOff = ratio('on', 'off');
    if (onOff) ratios['on/off'] = onOff;
    const offBase = ratio('off', 'base');
    if (offBase) ratios['off/base'] = offBase;
    const onBase = ratio('on', 'base');
    if (onBase) ratios['on/base'] = onBase;
    return {
      scenario,
      phase,
      cpuUs: Object.fromEntries([...merged].map(([key, p]) => [key, p.cpuUsPerDelivery])),
      deliveriesPerSec: Object.fromEntries([...merged].map(([key, p]) => [key, p.deliveriesPerSec])),
      ratios,
      integrity: Object.fromEntries(
        [...merged].map(([key, p]) => [
          key,
          { ...pick(p.collected.integrity), errors: p.collected.unexpectedCloses + p.collected.malformed + p.publishErrors + (p.drained ? 0 : 1) },
        ]),
      ),
    };
  });
}

function pick({ lost, duplicates, outOfOrder }: { lost: number; duplicates: number; outOfOrder: number }) {
  return { lost, duplicates, outOfOrder };
}

async function fanout(config: BenchConfig, transport: 'ws' | 'sse'): Promise<Figure[]> {
  console.log(`\nfan-out, ${transport}: ${config.fanoutSubs} subscribers`);
  const measured: Measured[] = [];
  try {
    for (const variant of variants()) measured.push(await setUp(config, transport, variant, config.fanoutSubs, { topic: 'fanout' }, ['fanout']));
    for (const m of measured) await floodPhase({ server: m.server, pool: m.pool, topic: 'fanout', durationMs: config.preheatMs, window: config.floodWindow });
    await interleave(measured, config.rounds, {
      saturation: (m) => floodPhase({ server: m.server, pool: m.pool, topic: 'fanout', durationMs: config.floodMs / config.rounds, window: config.floodWindow }),
      [`${config.steadyRate} msg/s`]: (m) =>
        steadyPhase({ publisher: m.server, receiver: m.server, pool: m.pool, topics: ['fanout'], rate: config.steadyRate, durationMs: config.steadyMs / config.rounds }),
    });
    return figures(`fan-out ${transport === 'ws' ? 'WebSocket' : 'SSE'}, ${config.fanoutSubs} subscribers`, measured);
  } finally {
    await tearDown(measured);
  }
}

async function manyTopics(config: BenchConfig, transport: 'ws' | 'sse'): Promise<Figure[]> {
  console.log(`\nmany topics, ${transport}: ${config.topics} topics, one subscriber each`);
  const topics = Array.from({ length: config.topics }, (_, i) => `t${i}`);
  const measured: Measured[] = [];
  try {
    for (const variant of variants()) measured.push(await setUp(config, transport, variant, config.topics, { topicPrefix: 't' }, topics));
    for (const m of measured) await steadyPhase({ publisher: m.server, receiver: m.server, pool: m.pool, topics, rate: config.topicsRate, durationMs: config.preheatMs });
    await interleave(measured, config.rounds, {
      [`${config.topicsRate} msg/s`]: (m) => steadyPhase({ publisher: m.server, receiver: m.server, pool: m.pool, topics, rate: config.topicsRate, durationMs: config.topicsMs / config.rounds }),
    });
    return figures(`many topics ${transport === 'ws' ? 'WebSocket' : 'SSE'}, ${config.topics} × 1 subscriber`, measured);
  } finally {
    await tearDown(measured);
  }
}

function markdown(config: BenchConfig, all: Figure[], meta: Record<string, unknown>): string {
  const keys = variants().map((v) => v.key);
  const ratioKeys = [...new Set(all.flatMap((f) => Object.keys(f.ratios)))];
  const head = ['scenario', 'phase', ...keys.map((k) => `CPU µs/delivery, ${k}`), ...ratioKeys.map((k) => `${k} (all slices / median slice)`), 'deliveries/s (off / on)', 'lost, dup, out of order, errors'];
  const lines = [
    '# Metrics overhead (issue 15)',
    '',
    `\`node build/bench/metrics-overhead.js\`, ${String(meta.startedAt)}, ${String(meta.cores)} × ${String(meta.cpus)}, Node ${process.version}; load average ${String(meta.loadAverage)}.`,
    '',
    `off: the sample app without PushletMetricsModule (the counts behind stats() are always kept). on: with it, its registry scraped every second in the process. ${config.rounds} interleaved slices per measurement; payload ${config.payloadBytes} B.`,
    '',
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
  ];
  for (const f of all) {
    const integrity = keys.map((k) => f.integrity[k]).filter(Boolean).map((i) => `${i!.lost}, ${i!.duplicates}, ${i!.outOfOrder}, ${i!.errors}`).join(' / ');
    const cells = [
      f.scenario,
      f.phase,
      ...keys.map((k) => (f.cpuUs[k] ?? NaN).toFixed(2)),
      ...ratioKeys.map((k) => (f.ratios[k] ? `${f.ratios[k]!.merged.toFixed(3)} / ${f.ratios[k]!.medianSlice.toFixed(3)}` : '')),
      `${f.deliveriesPerSec.off?.toLocaleString('en')} / ${f.deliveriesPerSec.on?.toLocaleString('en')}`,
      integrity,
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

/**
 * Samples in a profile's `window` that are busy (everything but idle), and those with a frame from
 * `src/metrics/` or prom-client on the stack (prom-client counts on its own too, because V8 may
 * inline the module's small counting functions into their callers). Samples are counted, not
 * weighed by their time deltas: on a loaded machine the profiler's thread is sometimes held up,
 * and one late sample would carry tens of milliseconds.
 */
function metricsShare(path: string, window: { startUs: number; endUs: number }): { busy: number; metrics: number } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as { startTime: number; nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const underMetrics = new Map<number, boolean>();
  const mark = (id: number, inherited: boolean) => {
    const node = byId.get(id)!;
    const url = node.callFrame.url;
    const flag = inherited || url.includes('/build/src/metrics/') || url.includes('/node_modules/prom-client/');
    underMetrics.set(id, flag);
    for (const child of node.children ?? []) mark(child, flag);
  };
  mark(profile.nodes[0]!.id, false);
  let at = profile.startTime;
  let busy = 0;
  let metrics = 0;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < window.startUs || at > window.endUs) return;
    if (byId.get(id)!.callFrame.functionName === '(idle)') return;
    busy += 1;
    if (underMetrics.get(id)) metrics += 1;
  });
  return { busy, metrics };
}

/** `--profile`: the share of busy CPU under `src/metrics/`, metrics off and on, under each load. */
async function profileShares(config: BenchConfig): Promise<string> {
  const dir = join(config.outDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  const rows: string[] = [];
  const loads = [
    ...(['ws', 'sse'] as const).map((transport) => ({
      label: `fan-out ${transport}, ${config.fanoutSubs} subscribers, saturation`,
      transport,
      connections: config.fanoutSubs,
      topic: { topic: 'fanout' } as { topic?: string; topicPrefix?: string },
      topics: ['fanout'],
      run: (m: Measured, durationMs: number) => floodPhase({ server: m.server, pool: m.pool, topic: 'fanout', durationMs, window: config.floodWindow }),
    })),
    ...(['ws', 'sse'] as const).map((transport) => {
      const topics = Array.from({ length: config.topics }, (_, i) => `t${i}`);
      return {
        label: `many topics ${transport}, ${config.topics} × 1 subscriber, ${config.topicsRate} msg/s`,
        transport,
        connections: config.topics,
        topic: { topicPrefix: 't' } as { topic?: string; topicPrefix?: string },
        topics,
        run: (m: Measured, durationMs: number) => steadyPhase({ publisher: m.server, receiver: m.server, pool: m.pool, topics, rate: config.topicsRate, durationMs }),
      };
    }),
  ];
  for (const load of loads) {
    if (config.only && !config.only.includes(`${load.topic.topic ? 'fanout' : 'topics'}-${load.transport}`)) continue;
    for (const variant of variants().filter((v) => v.key !== 'base')) {
      console.log(`profiling ${load.label}, ${variant.label}`);
      const measured = await setUp(config, load.transport, variant, load.connections, load.topic, load.topics, dir);
      let window: { startUs: number; endUs: number };
      let phase: PhaseResult;
      try {
        await load.run(measured, config.preheatMs);
        const startUs = nowUs();
        phase = await load.run(measured, load.topic.topic ? config.floodMs : config.topicsMs);
        window = { startUs, endUs: nowUs() };
      } finally {
        await tearDown([measured]);
      }
      const prefix = `${load.transport}-${variant.key}-${load.topic.topic ?? 'topics'}`;
      const file = readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.cpuprofile')).sort().pop();
      if (!file) throw new Error(`no profile written for ${prefix}`);
      const share = metricsShare(join(dir, file), window);
      const fraction = share.metrics / Math.max(1, share.busy);
      rows.push(
        `| ${load.label} | ${variant.key} | ${phase.deliveries.toLocaleString('en')} | ${phase.cpuUsPerDelivery.toFixed(2)} | ${share.busy} | ${share.metrics} | ${(100 * fraction).toFixed(2)} % | ${(fraction * phase.cpuUsPerDelivery).toFixed(3)} |`,
      );
    }
  }
  return [
    '## Share of busy CPU under src/metrics/ (`--profile`)',
    '',
    'Samples of `node --cpu-prof` (every 1 ms) during the measured phase. Busy: every sample but idle. Under metrics: a frame of `src/metrics/` or prom-client on the stack; with metrics off that is the fan-out count behind stats() (unless V8 inlined it into its caller), with them on also the two histograms and the scrapes. The share of busy samples is the share of the CPU each delivery cost; the last column is that share of the CPU per delivery measured from `/proc` during the same phase.',
    '',
    '| load | metrics | deliveries | CPU µs/delivery (/proc, while profiled) | busy samples | under metrics | share | µs/delivery under metrics |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
  ].join('\n');
}

const config = loadConfig();
setRunLabel('metrics');
if (config.profile) {
  const report = await profileShares(config);
  mkdirSync(config.outDir, { recursive: true });
  writeFileSync(join(config.outDir, 'metrics-profile.md'), `# Metrics overhead, profiled (issue 15)\n\n\`node build/bench/metrics-overhead.js --profile\`, ${new Date().toISOString()}, Node ${process.version}.\n\n${report}`);
  console.log(`\n${report}\nWrote ${join(config.outDir, 'metrics-profile.md')}`);
  process.exit(0);
}
const startedAt = new Date().toISOString();
const all: Figure[] = [];
// `--only=fanout-ws,topics-sse` picks measurements by the ids of the matching `npm run bench` scenarios.
const wanted = (id: string) => !config.only || config.only.includes(id);
for (const transport of ['ws', 'sse'] as const) if (wanted(`fanout-${transport}`)) all.push(...(await fanout(config, transport)));
for (const transport of ['ws', 'sse'] as const) if (wanted(`topics-${transport}`)) all.push(...(await manyTopics(config, transport)));
const meta = { startedAt, finishedAt: new Date().toISOString(), cpus: cpus()[0]?.model ?? 'unknown CPU', cores: cpus().length, loadAverage: loadavg().map((l) => l.toFixed(2)).join(' '), quick: config.quick };
mkdirSync(config.outDir, { recursive: true });
const base = join(config.outDir, config.quick || config.only ? 'metrics-overhead.partial' : 'metrics-overhead');
writeFileSync(`${base}.json`, `${JSON.stringify({ meta, config, variants: variants(), figures: all }, null, 2)}\n`);
const report = markdown(config, all, meta);
writeFileSync(`${base}.md`, report);
console.log(`\n${report}\nWrote ${base}.md and ${base}.json`);
