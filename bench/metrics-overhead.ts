/**
 * Issue 15, what the metrics cost, measured under `node --cpu-prof` (the end-to-end comparison is
 * the optional `metrics-*` scenarios of `npm run bench`: `--only=metrics-fanout-ws,…`). Each
 * server, metrics off then on, under the `fanout-*` (saturation) and `topics-*` loads, profiled;
 * the share of its busy samples with a frame of `src/metrics/` or prom-client on the stack (with
 * metrics off that is the fan-out count behind stats(), unless V8 inlined it into its caller; on,
 * also the two histograms and the scrapes), less sensitive to a shared machine than /proc CPU.
 *
 * Run: npm run build:all && node build/bench/metrics-overhead.js [--only=fanout-ws,topics-sse] [BENCH_QUICK=1].
 * Writes bench/results/metrics-profile.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from './config.js';
import { samplesUnder } from './lib/cpuprofile.js';
import { floodPhase, steadyPhase } from './lib/phases.js';
import { PEERS, setRunLabel, type ClientPool, type ServerHandle } from './lib/processes.js';
import { profiledLoad } from './lib/scenario.js';

const config = loadConfig();
setRunLabel('metrics');
const dir = join(config.outDir, 'profiles');
mkdirSync(dir, { recursive: true });
const rows: string[] = [];
for (const load of ['fanout-ws', 'fanout-sse', 'topics-ws', 'topics-sse'].filter((id) => !config.only || config.only.includes(id))) {
  const [kind, transport] = load.split('-') as ['fanout' | 'topics', 'ws' | 'sse'];
  const topics = kind === 'fanout' ? ['fanout'] : Array.from({ length: config.topics }, (_, i) => `t${i}`);
  for (const metrics of ['off', 'on']) {
    console.log(`profiling ${load}, metrics ${metrics}`);
    const name = `${load}-${metrics}`;
    const env = { HEARTBEAT_MS: '30000', BENCH_PAYLOAD: String(config.payloadBytes), PUSHLET_METRICS: metrics === 'on' ? '1' : '0', BENCH_SCRAPE_MS: '1000' };
    const count = kind === 'fanout' ? config.fanoutSubs : config.topics;
    const run = (server: ServerHandle, pool: ClientPool, durationMs: number) =>
      kind === 'fanout'
        ? floodPhase({ server, pool, topic: 'fanout', durationMs, window: config.floodWindow })
        : steadyPhase({ publisher: server, receiver: server, pool, topics, rate: config.topicsRate, durationMs });
    const spec = {
      peer: PEERS[`pushlet-${transport}`]!,
      name,
      dir,
      env,
      c: config,
      count,
      topic: kind === 'fanout' ? { topic: 'fanout' } : { topicPrefix: 't' },
      topics,
    };
    const { phase, window, file } = await profiledLoad(spec, run, kind === 'fanout' ? config.floodMs : config.topicsMs);
    if (!file) throw new Error(`no profile written for ${name}`);
    const share = samplesUnder(join(dir, file), window, (url) => url.includes('/build/src/metrics/') || url.includes('/node_modules/prom-client/'));
    const fraction = share.under / Math.max(1, share.busy);
    rows.push(
      `| ${load} | ${metrics} | ${phase.deliveries.toLocaleString('en')} | ${phase.cpuUsPerDelivery.toFixed(2)} | ${share.busy} | ${share.under} | ${(100 * fraction).toFixed(2)} % | ${(fraction * phase.cpuUsPerDelivery).toFixed(3)} |`,
    );
  }
}
const report = [
  '# Metrics overhead, profiled (issue 15)',
  '',
  `\`node build/bench/metrics-overhead.js\`, ${new Date().toISOString()}, Node ${process.version}. Samples of \`node --cpu-prof\` (every 1 ms) during the measured phase. Busy: every sample but idle. Under metrics: a frame of \`src/metrics/\` or prom-client on the stack. The last column is that share of the CPU per delivery measured from \`/proc\` during the same phase.`,
  '',
  '| load | metrics | deliveries | CPU µs/delivery (/proc, while profiled) | busy samples | under metrics | share | µs/delivery under metrics |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows,
  '',
].join('\n');
writeFileSync(join(config.outDir, config.quick || config.only ? 'metrics-profile.partial.md' : 'metrics-profile.md'), report);
console.log(`\n${report}`);
