/**
 * `npm run bench`: every scenario against every peer, one server process at a time, load clients
 * in their own processes. Writes bench/results/latest.{md,json,svg}. See bench/README.md.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type BenchConfig } from './config.js';
import { profileMarkdown, summarizeProfile } from './lib/cpuprofile.js';
import { evaluateTargets, gitCommit, markdownReport, svgChart, targetsTable, type RunMeta } from './lib/report.js';
import { nowUs } from './lib/proc.js';
import { ClientPool, floodPhase, LOG_DIR, PEERS, probeWebSocket, ServerHandle, setRunLabel, warmUp } from './lib/runner.js';
import { SCENARIOS, type Row, type ScenarioResult } from './scenarios.js';

function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median of every figure over repeated runs; integrity and error counts are summed instead. */
function combine(runs: ScenarioResult[]): ScenarioResult {
  if (runs.length === 1) return runs[0]!;
  const first = runs[0]!;
  const summed = new Set(['lost', 'duplicates', 'outOfOrder', 'errors', 'leaked']);
  const rows: Row[] = first.rows.map((row) => {
    const same = runs.map((r) => r.rows.find((x) => x.peer === row.peer)).filter((r): r is Row => r?.status === 'ok');
    if (same.length === 0) return row;
    const metrics: Record<string, number> = {};
    for (const key of Object.keys(same[0]!.metrics)) {
      const values = same.map((r) => r.metrics[key]!);
      metrics[key] = summed.has(key) ? values.reduce((a, b) => a + b, 0) : median(values);
    }
    return { ...same[0]!, metrics, detail: { runs: same.map((r) => ({ metrics: r.metrics, detail: r.detail })) } };
  });
  return { ...first, rows };
}

async function benchmark(config: BenchConfig): Promise<void> {
  const started = new Date();
  const loadStart = loadavg();
  const scenarios = SCENARIOS.filter((s) => !config.only || config.only.includes(s.id)).filter((s) => s.id !== 'max-conn' || config.maxConns > 0);
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const runs: ScenarioResult[] = [];
    for (let i = 0; i < config.repeat; i += 1) {
      console.log(`\n${scenario.id}${config.repeat > 1 ? ` (run ${i + 1} of ${config.repeat})` : ''}`);
      runs.push(await scenario.run(config));
    }
    results.push(combine(runs));
  }
  const finished = new Date();
  const meta: RunMeta = {
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationS: (finished.getTime() - started.getTime()) / 1000,
    commit: gitCommit(),
    node: process.version,
    cpus: cpus()[0]?.model ?? 'unknown CPU',
    cores: cpus().length,
    loadAverageStart: loadStart,
    loadAverageEnd: loadavg(),
    quick: config.quick,
    repeat: config.repeat,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}${config.quick ? ' (BENCH_QUICK=1)' : ''}`,
  };
  const targets = evaluateTargets(results);
  mkdirSync(config.outDir, { recursive: true });
  // A partial run (--only, --peers, quick) must not overwrite the committed full results.
  const partial = config.quick || config.only !== undefined || config.peers !== undefined;
  const base = join(config.outDir, partial ? 'partial' : 'latest');
  writeFileSync(`${base}.json`, `${JSON.stringify({ meta, config, targets, scenarios: results }, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdownReport(meta, targets, results));
  writeFileSync(`${base}.svg`, svgChart(meta, targets, results));
  console.log(`\n${targetsTable(targets)}\n\nWrote ${base}.md, ${base}.json and ${base}.svg (${Math.round(meta.durationS)} s)`);
}

/** Profiles the saturated fan-out of each peer with --cpu-prof and summarises where the time goes. */
async function profile(config: BenchConfig): Promise<void> {
  const dir = join(config.outDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  const sections: string[] = [];
  const windows = new Map<string, { startUs: number; endUs: number }>();
  const ids = (config.peers ?? ['pushlet-sse', 'sse', 'pushlet-ws', 'ws']).filter((id) => PEERS[id]);
  for (const id of ids) {
    const peer = PEERS[id]!;
    console.log(`profiling ${peer.label}`);
    const name = `profile-${id}`;
    const server = await ServerHandle.start(peer, { env: { HEARTBEAT_MS: '30000' }, name, cpuProfileDir: dir });
    let pool: ClientPool | undefined;
    try {
      if (peer.pushlet && peer.protocol === 'ws' && !(await probeWebSocket(server.port))) {
        sections.push(`### ${peer.label}\n\nNot profiled: the WebSocket transport is not on main yet.`);
        continue;
      }
      pool = await ClientPool.start(2, name);
      await pool.open({ protocol: peer.protocol, host: '127.0.0.1', port: server.port, pathPrefix: peer.pathPrefix, topic: 'fanout' }, config.fanoutSubs, config.connectConcurrency);
      await warmUp(server, pool, ['fanout'], config.fanoutSubs);
      await floodPhase({ server, pool, topic: 'fanout', durationMs: config.preheatMs, window: config.floodWindow });
      const startUs = nowUs();
      const flood = await floodPhase({ server, pool, topic: 'fanout', durationMs: config.floodMs, window: config.floodWindow });
      windows.set(id, { startUs, endUs: nowUs() });
      sections.push(
        `_${peer.label}: ${flood.deliveriesPerSec.toLocaleString('en')} deliveries/s, ${flood.cpuUsPerDelivery} µs CPU per delivery while profiled (the profiler itself costs CPU)._`,
      );
    } finally {
      await pool?.stop();
      await server.stop();
    }
    const file = readdirSync(dir)
      .filter((f) => f.startsWith(name) && f.endsWith('.cpuprofile'))
      .sort()
      .pop();
    if (!file) {
      sections.push(`### ${peer.label}\n\nNo profile was written.`);
      continue;
    }
    sections.push(profileMarkdown(`${peer.label}: ${config.fanoutSubs.toLocaleString('en')} subscribers at saturation, samples of the measured ${config.floodMs / 1000} s only (${file})`, summarizeProfile(join(dir, file), windows.get(id))));
  }
  const out = join(config.outDir, 'profile.md');
  writeFileSync(
    out,
    ['# CPU profiles of the fan-out write path', '', `\`npm run bench -- --profile\`, ${new Date().toISOString()}, commit \`${gitCommit()}\`.`, '', ...sections.flatMap((s) => [s, ''])].join('\n'),
  );
  console.log(`Wrote ${out}`);
}

const config = loadConfig();
setRunLabel(config.profile ? 'profile' : 'bench');
rmSync(LOG_DIR, { recursive: true, force: true });
if (config.profile) await profile(config);
else await benchmark(config);
