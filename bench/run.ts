/**
 * The entry point of `npm run bench`: runs the scenarios of bench/scenarios.ts (all but the
 * optional ones, or `--only=`) with the one runner and writes bench/results/latest.{md,json,svg}
 * (`partial.*` for a quick, narrowed or resized run). `npm run bench:client` (`--suite=client`)
 * and `npm run bench:storm` (`--suite=storm`) are the same over the client SDK's scenarios and the
 * reconnect storm; `--profile` (`--profile=metrics`) profiles instead. See bench/README.md.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type BenchConfig } from './config.js';
import { latestProfile, profileMarkdown, samplesUnder, summarizeProfile } from './lib/cpuprofile.js';
import { floodPhase, steadyPhase, warmUp } from './lib/phases.js';
import { nowUs } from './lib/proc.js';
import { LOG_DIR, PEERS, setRunLabel, type Peer } from './lib/processes.js';
import { evaluateTargets, gitCommit, markdownReport, scenarioTable, startRun, svgChart, targetsTable, writeReport } from './lib/report.js';
import { combineRuns, openAll, processesFor, release, runScenario, startPool, startServer, withCleanup, type ScenarioResult } from './lib/scenario.js';
import { SCENARIOS } from './scenarios.js';

/** What `npm run bench`, `bench:client` and `bench:storm` run (`--suite=`), and where each writes its results. */
const SUITES: Record<string, { ids?: string[]; title: string; base: string; command: string }> = {
  bench: { title: 'Pushlet benchmark results', base: 'latest', command: 'npm run bench' },
  client: { ids: ['client-size', 'client-reconnect'], title: 'Client SDK benchmark results', base: 'client', command: 'npm run bench:client' },
  storm: { ids: ['storm'], title: 'Reconnect storm', base: 'storm', command: 'npm run bench:storm' },
};

/** Knobs that do not change what is measured (or only add to it); any other away from its default makes a run partial. */
const NEUTRAL = new Set(['suite', 'repeat', 'profile', 'outDir', 'stormReads', 'stormProfile', 'stormTimeoutMs']);

async function bench(config: BenchConfig): Promise<void> {
  const suite = SUITES[config.suite];
  if (!suite) throw new Error(`--suite: ${config.suite} is not one of ${Object.keys(SUITES).join(', ')}`);
  setRunLabel(config.suite);
  rmSync(LOG_DIR, { recursive: true, force: true });
  if (config.profile) {
    const dir = join(config.outDir, 'profiles');
    mkdirSync(dir, { recursive: true });
    return console.log(`Wrote ${await (config.profile === 'metrics' ? profileMetrics : profileFanout)(config, dir)}`);
  }
  const run = startRun(suite.command, config.quick, config.repeat);
  const inSuite = SCENARIOS.filter((s) => (suite.ids ? suite.ids.includes(s.id) : !s.optional));
  const scenarios = (config.only ? SCENARIOS.filter((s) => config.only!.includes(s.id) && (!suite.ids || inSuite.includes(s))) : inSuite).filter(
    (s) => s.id !== 'max-conn' || config.maxConns > 0,
  );
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const runs: ScenarioResult[] = [];
    for (let i = 0; i < config.repeat; i += 1) {
      console.log(`\n${scenario.id}${config.repeat > 1 ? ` (run ${i + 1} of ${config.repeat})` : ''}`);
      runs.push(await runScenario(scenario, config));
    }
    results.push(combineRuns(runs));
  }
  const meta = run.finish();
  const main = suite.base === 'latest';
  const targets = main ? evaluateTargets(results) : [];
  // A quick, narrowed or resized run must not overwrite the committed full results.
  const defaults = loadConfig([], {});
  const partial = Object.entries(config).some(
    ([key, value]) => !NEUTRAL.has(key) && JSON.stringify(value) !== JSON.stringify(defaults[key as keyof BenchConfig]),
  );
  const base = join(config.outDir, partial ? (main ? 'partial' : `${suite.base}-partial`) : suite.base);
  writeReport(base, {
    json: { meta, config, targets, scenarios: results },
    md: markdownReport(suite.title, meta, targets, results),
    svg: main ? svgChart(meta, targets, results) : undefined,
  });
  console.log(`\n${main ? targetsTable(targets) : results.map((r) => scenarioTable(r)).join('\n\n')}\n\nWrote ${base}.* (${Math.round(meta.durationS)} s)`);
}

/**
 * A peer under `node --cpu-prof` (profiles in `dir`), loaded as in `fanout-*` (saturation) or
 * `topics-*` (steady rate): warmed up, run once unmeasured (`preheatMs`) and once measured; then
 * the server exits, writing its profile. Answers the measured phase, its window on the monotonic
 * clock, and the profile's file.
 */
async function profiledLoad(c: BenchConfig, load: 'fanout' | 'topics', peer: Peer, name: string, dir: string, env: NodeJS.ProcessEnv = {}) {
  const topics = load === 'fanout' ? ['fanout'] : Array.from({ length: c.topics }, (_, i) => `t${i}`);
  const count = load === 'fanout' ? c.fanoutSubs : c.topics;
  return withCleanup(async (cleanup) => {
    const server = await startServer(peer, cleanup, { HEARTBEAT_MS: '30000', BENCH_PAYLOAD: String(c.payloadBytes), ...env }, name, dir);
    const pool = await startPool(processesFor(c, count), name, cleanup);
    await openAll(pool, peer, server, count, c, load === 'fanout' ? { topic: 'fanout' } : { topicPrefix: 't' });
    await warmUp(server, pool, topics, count);
    const run = (durationMs: number) =>
      load === 'fanout'
        ? floodPhase({ server, pool, topic: 'fanout', durationMs, window: c.floodWindow })
        : steadyPhase({ publisher: server, receiver: server, pool, topics, rate: c.topicsRate, durationMs });
    await run(c.preheatMs);
    const startUs = nowUs();
    const phase = await run(load === 'fanout' ? c.floodMs : c.topicsMs);
    const window = { startUs, endUs: nowUs() };
    await release(cleanup); // the server exits, writing its profile
    return { phase, window, file: latestProfile(dir, name) };
  });
}

/** `--profile`: the saturated fan-out of each peer under --cpu-prof, and where the time goes (results/profile.md). */
async function profileFanout(config: BenchConfig, dir: string): Promise<string> {
  const sections: string[] = [];
  for (const id of (config.peers ?? ['pushlet-sse', 'sse', 'pushlet-ws', 'ws']).filter((id) => PEERS[id])) {
    const peer = PEERS[id]!;
    console.log(`profiling ${peer.label}`);
    const { phase, window, file } = await profiledLoad(config, 'fanout', peer, `profile-${id}`, dir);
    sections.push(
      `_${peer.label}: ${phase.deliveriesPerSec.toLocaleString('en')} deliveries/s, ${phase.cpuUsPerDelivery} µs CPU per delivery while profiled (the profiler itself costs CPU)._`,
      '',
    );
    const title = `${peer.label}: ${config.fanoutSubs.toLocaleString('en')} subscribers at saturation, samples of the measured ${config.floodMs / 1000} s only (${file})`;
    sections.push(file ? profileMarkdown(title, summarizeProfile(join(dir, file), window)) : `### ${peer.label}\n\nNo profile was written.`, '');
  }
  const out = join(config.outDir, 'profile.md');
  const head = ['# CPU profiles of the fan-out write path', '', `\`npm run bench -- --profile\`, ${new Date().toISOString()}, commit \`${gitCommit()}\`.`, ''];
  writeFileSync(out, [...head, ...sections].join('\n'));
  return out;
}

/**
 * `--profile=metrics` (issue 15), what the metrics cost under `node --cpu-prof` (the end-to-end
 * comparison is the optional `metrics-*` scenarios): the sample app, metrics off then on, under
 * the `fanout-*` (saturation) and `topics-*` loads (`--only=` picks some); the share of its busy
 * samples with a frame of `src/metrics/` or prom-client on the stack (with metrics off that is the
 * fan-out count behind stats(), unless V8 inlined it into its caller; on, also the two histograms
 * and the scrapes), less sensitive to a shared machine than /proc CPU. Writes results/metrics-profile.md.
 */
async function profileMetrics(config: BenchConfig, dir: string): Promise<string> {
  const rows: string[] = [];
  for (const load of ['fanout-ws', 'fanout-sse', 'topics-ws', 'topics-sse'].filter((id) => !config.only || config.only.includes(id))) {
    const [kind, transport] = load.split('-') as ['fanout' | 'topics', 'ws' | 'sse'];
    for (const metrics of ['off', 'on']) {
      console.log(`profiling ${load}, metrics ${metrics}`);
      const env = { PUSHLET_METRICS: metrics === 'on' ? '1' : '0', BENCH_SCRAPE_MS: '1000' };
      const { phase, window, file } = await profiledLoad(config, kind, PEERS[`pushlet-${transport}`]!, `${load}-${metrics}`, dir, env);
      if (!file) throw new Error(`no profile written for ${load}-${metrics}`);
      const share = samplesUnder(join(dir, file), window, (url) => url.includes('/build/src/metrics/') || url.includes('/node_modules/prom-client/'));
      const fraction = share.under / Math.max(1, share.busy);
      const perDelivery = `${phase.cpuUsPerDelivery.toFixed(2)} | ${share.busy} | ${share.under} | ${(100 * fraction).toFixed(2)} % | ${(fraction * phase.cpuUsPerDelivery).toFixed(3)}`;
      rows.push(`| ${load} | ${metrics} | ${phase.deliveries.toLocaleString('en')} | ${perDelivery} |`);
    }
  }
  const report = [
    '# Metrics overhead, profiled (issue 15)',
    '',
    `\`npm run bench -- --profile=metrics\`, ${new Date().toISOString()}, Node ${process.version}. Samples of \`node --cpu-prof\` (every 1 ms) during the measured phase. Busy: every sample but idle. Under metrics: a frame of \`src/metrics/\` or prom-client on the stack. The last column is that share of the CPU per delivery measured from \`/proc\` during the same phase.`,
    '',
    '| load | metrics | deliveries | CPU µs/delivery (/proc, while profiled) | busy samples | under metrics | share | µs/delivery under metrics |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
  ].join('\n');
  const out = join(config.outDir, config.quick || config.only ? 'metrics-profile.partial.md' : 'metrics-profile.md');
  writeFileSync(out, report);
  return out;
}

await bench(loadConfig());
