/**
 * `npm run bench:client`: the client SDK's own scenarios alone (`client-size`, `client-reconnect`;
 * `--only=` picks one), with every knob of `npm run bench`. Writes bench/results/client.{md,json},
 * which the figures of docs/performance.md come from; `npm run bench` runs the same scenarios into latest.*.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { clientReconnect } from './client-reconnect.js';
import { clientSize } from './client-size.js';
import { loadConfig } from './config.js';
import { gitCommit, scenarioTable, type RunMeta } from './lib/report.js';
import { LOG_DIR, setRunLabel } from './lib/runner.js';
import type { ScenarioResult } from './scenarios.js';

const config = loadConfig();
setRunLabel('bench');
rmSync(LOG_DIR, { recursive: true, force: true });
const started = new Date();
const loadStart = loadavg();
const results: ScenarioResult[] = [];
for (const scenario of [clientSize, clientReconnect].filter((s) => !config.only || config.only.includes(s.id))) {
  console.log(`\n${scenario.id}`);
  results.push(await scenario.run(config));
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
  repeat: 1,
  command: `npm run bench:client${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}${config.quick ? ' (BENCH_QUICK=1)' : ''}`,
};
/** client-reconnect: when attempt k after the drop started, per row (the backoff as it played out). */
function attemptTable(result: ScenarioResult): string[] {
  const spreads = result.rows.map((row) => (row.detail as { attemptStartMsAfterDrop?: Array<{ attempt: number; count: number; minMs: number; p50Ms: number; maxMs: number }> } | undefined)?.attemptStartMsAfterDrop);
  const attempts = Math.max(0, ...spreads.map((s) => s?.length ?? 0));
  if (attempts === 0) return [];
  const ms = (v: number) => Math.round(v).toLocaleString('en');
  return [
    'Connection attempts after the drop: clients that made attempt k, and when it started (ms after that client\'s drop, min / p50 / max).',
    '',
    `| Peer | ${Array.from({ length: attempts }, (_, k) => `attempt ${k}`).join(' | ')} |`,
    `|---|${Array.from({ length: attempts }, () => '---:').join('|')}|`,
    ...result.rows.map((row, i) => {
      const cells = Array.from({ length: attempts }, (_, k) => {
        const a = spreads[i]?.[k];
        return a ? `${a.count}: ${ms(a.minMs)} / ${ms(a.p50Ms)} / ${ms(a.maxMs)}` : '';
      });
      return `| ${row.label} | ${cells.join(' | ')} |`;
    }),
    '',
  ];
}

const markdown = [
  '# Client SDK benchmark results',
  '',
  `Run ${meta.startedAt} (${Math.round(meta.durationS)} s), commit \`${meta.commit}\`, Node ${meta.node}, ${meta.cores} × ${meta.cpus}. ` +
    `Load average ${meta.loadAverageStart.map((l) => l.toFixed(2)).join(' / ')} at start, ${meta.loadAverageEnd.map((l) => l.toFixed(2)).join(' / ')} at the end` +
    `${meta.quick ? '; **quick smoke run (BENCH_QUICK=1): figures are indicative only**' : ''}.`,
  '',
  `Command: \`${meta.command}\`. See bench/README.md.`,
  '',
  ...results.flatMap((r) => [`## ${r.title}`, '', r.description, '', scenarioTable(r), '', ...attemptTable(r)]),
].join('\n');
mkdirSync(config.outDir, { recursive: true });
// A quick or narrowed run must not overwrite the committed full results.
const base = join(config.outDir, config.quick || config.only !== undefined ? 'client-partial' : 'client');
writeFileSync(`${base}.md`, markdown);
writeFileSync(`${base}.json`, `${JSON.stringify({ meta, config, scenarios: results }, null, 2)}\n`);
console.log(`\n${results.map((r) => scenarioTable(r)).join('\n\n')}\n\nWrote ${base}.md and ${base}.json`);
