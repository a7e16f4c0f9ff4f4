import { readdirSync, readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export type ProfileSummary = ReturnType<typeof summarizeProfile>;

/** A profile's nodes by id, and each sample's node and time delta (ms) that falls inside `window` (all without one). */
function windowed(path: string, window?: { startUs: number; endUs: number }) {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const samples: Array<{ id: number; ms: number }> = [];
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (!window || (at >= window.startUs && at <= window.endUs)) samples.push({ id, ms: delta / 1000 });
  });
  return { root: profile.nodes[0]!, byId, samples };
}

/** The newest profile in `dir` of a process started with `--cpu-prof-name=<name>-…`. */
export function latestProfile(dir: string, name: string): string | undefined {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${name}-`) && f.endsWith('.cpuprofile'))
    .sort()
    .pop();
}

/** Where a frame's code lives, for a coarse breakdown. */
function areaOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : 'native';
  if (url.includes('/build/src/')) return 'pushlet (src/)';
  if (url.includes('/build/sample/')) return 'sample app';
  if (url.includes('/build/bench/')) return 'bench harness';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) {
    const mod = /^node:(?:internal\/)?([a-z_]+)/.exec(url);
    return `node:${mod?.[1] ?? 'core'}`;
  }
  return 'other';
}

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/(build|node_modules)\//, '$1/');
}

/**
 * Self and inclusive time per function. With `window` (µs on the monotonic clock, which V8's
 * profile timestamps share with `process.hrtime`), only samples inside it count: the measured
 * phase, not start-up and connection set-up.
 */
export function summarizeProfile(path: string, window?: { startUs: number; endUs: number }, topN = 25) {
  const { root, byId, samples } = windowed(path, window);
  const self = new Map<number, number>();
  for (const { id, ms } of samples) self.set(id, (self.get(id) ?? 0) + ms);
  const keyOf = (n: ProfileNode) =>
    `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url ? `${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : ''}`.trim();

  // Inclusive time per node, then per function key (outermost occurrence only).
  const total = new Map<number, number>();
  const visit = (id: number): number => {
    const node = byId.get(id)!;
    let t = self.get(id) ?? 0;
    for (const child of node.children ?? []) t += visit(child);
    total.set(id, t);
    return t;
  };
  visit(root.id);
  const selfByKey = new Map<string, { area: string; ms: number }>();
  const totalByKey = new Map<string, number>();
  const walk = (id: number, active: Set<string>) => {
    const node = byId.get(id)!;
    const key = keyOf(node);
    const entry = selfByKey.get(key) ?? { area: areaOf(node.callFrame.url, node.callFrame.functionName), ms: 0 };
    entry.ms += self.get(id) ?? 0;
    selfByKey.set(key, entry);
    const outermost = !active.has(key);
    if (outermost) totalByKey.set(key, (totalByKey.get(key) ?? 0) + (total.get(id) ?? 0));
    if (outermost) active.add(key);
    for (const child of node.children ?? []) walk(child, active);
    if (outermost) active.delete(key);
  };
  walk(root.id, new Set());

  const idleMs = selfByKey.get('(idle)')?.ms ?? 0;
  const busyMs = [...selfByKey.values()].reduce((a, e) => a + e.ms, 0) - idleMs;
  const pct = (ms: number) => Math.round((1000 * ms) / Math.max(1e-9, busyMs)) / 10;
  const entries = [...selfByKey.entries()]
    .filter(([key]) => key !== '(idle)' && key !== '(root)')
    .map(([name, e]) => ({
      name,
      area: e.area,
      selfMs: Math.round(e.ms),
      selfPct: pct(e.ms),
      totalMs: Math.round(totalByKey.get(name) ?? 0),
      totalPct: pct(totalByKey.get(name) ?? 0),
    }));
  const areas = new Map<string, number>();
  for (const e of entries) areas.set(e.area, (areas.get(e.area) ?? 0) + e.selfMs);
  return {
    busyMs: Math.round(busyMs),
    idleMs: Math.round(idleMs),
    byArea: [...areas.entries()].map(([area, ms]) => ({ area, selfMs: ms, selfPct: pct(ms) })).sort((a, b) => b.selfMs - a.selfMs),
    top: entries.sort((a, b) => b.selfMs - a.selfMs).slice(0, topN),
    /** This module's own functions (build/src), by inclusive time. */
    pushlet: entries
      .filter((e) => e.area === 'pushlet (src/)')
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, 15),
  };
}

export function profileMarkdown(title: string, summary: ProfileSummary): string {
  const lines = [
    `### ${title}`,
    '',
    `Busy ${summary.busyMs} ms (idle ${summary.idleMs} ms). Self time by area:`,
    '',
    '| Area | self ms | % of busy |',
    '|---|---:|---:|',
    ...summary.byArea.slice(0, 12).map((a) => `| ${a.area} | ${a.selfMs} | ${a.selfPct} |`),
    '',
    'Top functions by self time:',
    '',
    '| Function | area | self ms | self % | total % |',
    '|---|---|---:|---:|---:|',
    ...summary.top.map((e) => `| \`${e.name}\` | ${e.area} | ${e.selfMs} | ${e.selfPct} | ${e.totalPct} |`),
  ];
  if (summary.pushlet.length) {
    lines.push(
      '',
      "This module's functions by inclusive time:",
      '',
      '| Function | self % | total % |',
      '|---|---:|---:|',
      ...summary.pushlet.map((e) => `| \`${e.name}\` | ${e.selfPct} | ${e.totalPct} |`),
    );
  }
  return lines.join('\n');
}

/**
 * Samples in a profile's `window` that are busy (everything but idle), and of those the ones with
 * a frame whose url passes `test` on the stack. Samples are counted, not weighed by their time
 * deltas: on a loaded machine the profiler's thread is sometimes held up, and one late sample
 * would carry tens of milliseconds.
 */
export function samplesUnder(path: string, window: { startUs: number; endUs: number }, test: (url: string) => boolean): { busy: number; under: number } {
  const { root, byId, samples } = windowed(path, window);
  const marked = new Map<number, boolean>();
  const mark = (id: number, inherited: boolean) => {
    const node = byId.get(id)!;
    const flag = inherited || test(node.callFrame.url);
    marked.set(id, flag);
    for (const child of node.children ?? []) mark(child, flag);
  };
  mark(root.id, false);
  const busy = samples.filter(({ id }) => byId.get(id)!.callFrame.functionName !== '(idle)');
  return { busy: busy.length, under: busy.filter(({ id }) => marked.get(id)).length };
}
