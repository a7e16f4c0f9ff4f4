/**
 * The entry point of `npm run bench`: runs the scenarios of bench/scenarios.ts (all but the
 * optional ones, or `--only=`) with the one runner and writes bench/results/latest.{md,json,svg}
 * (`partial.*` for a quick, narrowed or resized run). `npm run bench:client` (`--suite=client`)
 * and `npm run bench:storm` (`--suite=storm`) are the same over the client SDK's scenarios and the
 * reconnect storm; `--profile` profiles the fan-out instead. See bench/README.md.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type BenchConfig } from './config.js';
import { profileMarkdown, summarizeProfile } from './lib/cpuprofile.js';
import { floodPhase } from './lib/phases.js';
import { LOG_DIR, PEERS, setRunLabel, type ClientPool, type ServerHandle } from './lib/processes.js';
import { evaluateTargets, gitCommit, markdownReport, scenarioTable, startRun, svgChart, targetsTable, writeReport } from './lib/report.js';
import { combineRuns, profiledLoad, runScenario, type ScenarioResult } from './lib/scenario.js';
import { SCENARIOS } from './scenarios.js';

/** What `npm run bench`, `bench:client` and `bench:storm` run (`--suite=`), and where each writes its results. */
const SUITES: Record<string, { ids?: string[]; title: string; base: string; command: string }> = {
  bench: { title: 'Pushlet benchmark results', base: 'latest', command: 'npm run bench' },
  client: { ids: ['client-size', 'client-reconnect'], title: 'Client SDK benchmark results', base: 'client', command: 'npm run bench:client' },
  storm: { ids: ['storm'], title: 'Reconnect storm', base: 'storm', command: 'npm run bench:storm' },
};

/** Knobs that do not change what is measured; any other away from its default makes a run partial. */
const NEUTRAL = new Set(['suite', 'repeat', 'profile', 'outDir']);

async function bench(config: BenchConfig): Promise<void> {
  const suite = SUITES[config.suite];
  if (!suite) throw new Error(`--suite: ${config.suite} is not one of ${Object.keys(SUITES).join(', ')}`);
  setRunLabel(config.suite);
  rmSync(LOG_DIR, { recursive: true, force: true });
  if (config.profile) return profile(config);
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

/** Profiles the saturated fan-out of each peer with --cpu-prof and summarises where the time goes. */
async function profile(config: BenchConfig): Promise<void> {
  const dir = join(config.outDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  const sections: string[] = [];
  for (const id of (config.peers ?? ['pushlet-sse', 'sse', 'pushlet-ws', 'ws']).filter((id) => PEERS[id])) {
    const peer = PEERS[id]!;
    console.log(`profiling ${peer.label}`);
    const load = {
      peer,
      name: `profile-${id}`,
      dir,
      env: { HEARTBEAT_MS: '30000' },
      c: config,
      count: config.fanoutSubs,
      topic: { topic: 'fanout' },
      topics: ['fanout'],
    };
    const flood = (server: ServerHandle, pool: ClientPool, durationMs: number) =>
      floodPhase({ server, pool, topic: 'fanout', durationMs, window: config.floodWindow });
    const { phase, window, file } = await profiledLoad(load, flood, config.floodMs);
    sections.push(
      `_${peer.label}: ${phase.deliveriesPerSec.toLocaleString('en')} deliveries/s, ${phase.cpuUsPerDelivery} µs CPU per delivery while profiled (the profiler itself costs CPU)._`,
    );
    const title = `${peer.label}: ${config.fanoutSubs.toLocaleString('en')} subscribers at saturation, samples of the measured ${config.floodMs / 1000} s only (${file})`;
    sections.push(file ? profileMarkdown(title, summarizeProfile(join(dir, file), window)) : `### ${peer.label}\n\nNo profile was written.`);
  }
  const out = join(config.outDir, 'profile.md');
  writeFileSync(
    out,
    [
      '# CPU profiles of the fan-out write path',
      '',
      `\`npm run bench -- --profile\`, ${new Date().toISOString()}, commit \`${gitCommit()}\`.`,
      '',
      ...sections.flatMap((s) => [s, '']),
    ].join('\n'),
  );
  console.log(`Wrote ${out}`);
}

await bench(loadConfig());
