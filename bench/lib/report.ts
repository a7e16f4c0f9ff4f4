import { execFileSync } from 'node:child_process';
import type { Column, Row, ScenarioResult } from '../scenarios.js';

export interface RunMeta {
  startedAt: string;
  finishedAt: string;
  durationS: number;
  commit: string;
  node: string;
  cpus: string;
  cores: number;
  loadAverageStart: number[];
  loadAverageEnd: number[];
  quick: boolean;
  repeat: number;
  command: string;
}

/** The commit measured, `+changes` when the code under test differs from it. */
export function gitCommit(): string {
  try {
    const hash = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'sample', 'bench', ':!bench/results'], { encoding: 'utf8' }).trim();
    return dirty ? `${hash}+changes` : hash;
  } catch {
    return 'unknown';
  }
}

export interface TargetResult {
  id: string;
  target: string;
  pushlet: number | undefined;
  reference: number | undefined;
  referenceLabel: string;
  ratio: number | undefined;
  limit: number;
  /** `max`: the ratio must not exceed the limit; `min`: it must reach it; `all`: a pass/fail check. */
  kind: 'max' | 'min' | 'all';
  met: boolean | undefined;
  note: string;
}

function rowOf(results: ScenarioResult[], scenario: string, peer: string): Row | undefined {
  const row = results.find((r) => r.id === scenario)?.rows.find((r) => r.peer === peer);
  return row?.status === 'ok' ? row : undefined;
}

function ratioTarget(
  results: ScenarioResult[],
  spec: { id: string; target: string; scenario: string; metric: string; pushlet: string; reference: string; refScenario?: string; limit: number; kind: 'max' | 'min' },
): TargetResult {
  const p = rowOf(results, spec.scenario, spec.pushlet);
  const r = rowOf(results, spec.refScenario ?? spec.scenario, spec.reference);
  const pv = p?.metrics[spec.metric];
  const rv = r?.metrics[spec.metric];
  const ratio = pv !== undefined && rv !== undefined && rv > 0 ? pv / rv : undefined;
  const met = ratio === undefined ? undefined : spec.kind === 'max' ? ratio <= spec.limit : ratio >= spec.limit;
  const scenario = results.find((s) => s.id === spec.scenario);
  const missing = !scenario
    ? 'scenario not run'
    : !p
      ? (scenario.rows.find((row) => row.peer === spec.pushlet)?.note ?? 'not run')
      : !r
        ? (results.find((s) => s.id === (spec.refScenario ?? spec.scenario))?.rows.find((row) => row.peer === spec.reference)?.note ?? 'reference not run')
        : '';
  return {
    id: spec.id,
    target: spec.target,
    pushlet: pv,
    reference: rv,
    referenceLabel: r?.label ?? spec.reference,
    ratio,
    limit: spec.limit,
    kind: spec.kind,
    met,
    note: missing,
  };
}

/** The issue's targets, each measured as a ratio within this one run. */
export function evaluateTargets(results: ScenarioResult[]): TargetResult[] {
  const targets: TargetResult[] = [
    ratioTarget(results, { id: 'ws-cpu', target: 'Server CPU per WS delivery, saturation (≤ 1.1× plain ws)', scenario: 'fanout-ws', metric: 'satCpuUs', pushlet: 'pushlet-ws', reference: 'ws', limit: 1.1, kind: 'max' }),
    ratioTarget(results, { id: 'ws-cpu-steady', target: 'Server CPU per WS delivery, 20 msg/s (≤ 1.1× plain ws)', scenario: 'fanout-ws', metric: 'steadyCpuUs', pushlet: 'pushlet-ws', reference: 'ws', limit: 1.1, kind: 'max' }),
    ratioTarget(results, { id: 'ws-throughput', target: 'WS deliveries/s at saturation (≥ 0.9× plain ws)', scenario: 'fanout-ws', metric: 'satDeliveriesPerSec', pushlet: 'pushlet-ws', reference: 'ws', limit: 0.9, kind: 'min' }),
    ratioTarget(results, { id: 'sse-cpu', target: 'Server CPU per SSE delivery, saturation (≤ 1.1× node:http SSE)', scenario: 'fanout-sse', metric: 'satCpuUs', pushlet: 'pushlet-sse', reference: 'sse', limit: 1.1, kind: 'max' }),
    ratioTarget(results, { id: 'sse-cpu-steady', target: 'Server CPU per SSE delivery, 20 msg/s (≤ 1.1× node:http SSE)', scenario: 'fanout-sse', metric: 'steadyCpuUs', pushlet: 'pushlet-sse', reference: 'sse', limit: 1.1, kind: 'max' }),
    ratioTarget(results, { id: 'sse-throughput', target: 'SSE deliveries/s at saturation (≥ 0.9× node:http SSE)', scenario: 'fanout-sse', metric: 'satDeliveriesPerSec', pushlet: 'pushlet-sse', reference: 'sse', limit: 0.9, kind: 'min' }),
    ratioTarget(results, { id: 'ws-p99', target: 'WS p99 latency, fan-out at 20 msg/s, median slice (≤ 1.25× plain ws)', scenario: 'fanout-ws', metric: 'steadyP99SliceMs', pushlet: 'pushlet-ws', reference: 'ws', limit: 1.25, kind: 'max' }),
    ratioTarget(results, { id: 'ws-p99-all', target: 'WS p99 latency, fan-out at 20 msg/s, all deliveries (≤ 1.25× plain ws)', scenario: 'fanout-ws', metric: 'steadyP99Ms', pushlet: 'pushlet-ws', reference: 'ws', limit: 1.25, kind: 'max' }),
    ratioTarget(results, { id: 'sse-p99', target: 'SSE p99 latency, fan-out at 20 msg/s, median slice (≤ 1.25× node:http SSE)', scenario: 'fanout-sse', metric: 'steadyP99SliceMs', pushlet: 'pushlet-sse', reference: 'sse', limit: 1.25, kind: 'max' }),
    ratioTarget(results, { id: 'sse-p99-all', target: 'SSE p99 latency, fan-out at 20 msg/s, all deliveries (≤ 1.25× node:http SSE)', scenario: 'fanout-sse', metric: 'steadyP99Ms', pushlet: 'pushlet-sse', reference: 'sse', limit: 1.25, kind: 'max' }),
    ratioTarget(results, { id: 'ws-memory', target: 'Memory per idle WS (≤ 1.2× plain ws)', scenario: 'idle-ws', metric: 'rssPerConnKB', pushlet: 'pushlet-ws', reference: 'ws', limit: 1.2, kind: 'max' }),
    ratioTarget(results, {
      id: 'sse-memory',
      target: 'Memory per idle SSE, vs Pushlet per idle WS (≤ 1×)',
      scenario: 'idle-sse',
      metric: 'rssPerConnKB',
      pushlet: 'pushlet-sse',
      refScenario: 'idle-ws',
      reference: 'pushlet-ws',
      limit: 1.0,
      kind: 'max',
    }),
  ];
  const maxConn = results.find((r) => r.id === 'max-conn');
  for (const peer of ['pushlet-ws', 'pushlet-sse']) {
    const row = maxConn?.rows.find((r) => r.peer === peer);
    const wantedCount = Number(maxConn?.params.connections ?? 0);
    const ok = row?.status === 'ok' ? row.metrics.openAtEnd === wantedCount && row.metrics.errors === 0 : undefined;
    targets.push({
      id: `max-conn-${peer}`,
      target: `${peer === 'pushlet-ws' ? 'WS' : 'SSE'}: ${wantedCount.toLocaleString('en')} connections in one process, heartbeats, no errors`,
      pushlet: row?.status === 'ok' ? row.metrics.openAtEnd : undefined,
      reference: wantedCount || undefined,
      referenceLabel: 'wanted',
      ratio: row?.status === 'ok' && wantedCount ? row.metrics.openAtEnd! / wantedCount : undefined,
      limit: 1,
      kind: 'all',
      met: ok,
      note: !maxConn ? 'scenario not run' : row?.status === 'ok' ? (row.metrics.errors ? `${row.metrics.errors} errors` : '') : (row?.note ?? 'not run'),
    });
  }
  for (const peer of ['pushlet-ws+redis', 'pushlet-sse+redis']) {
    for (const [metric, what] of [
      ['p99SliceMs', 'median slice'],
      ['p99Ms', 'all deliveries'],
    ] as const) {
      targets.push(
        ratioTarget(results, {
          id: `cluster-${metric}-${peer}`,
          target: `Cross-instance p99 through Redis, ${peer.startsWith('pushlet-ws') ? 'WS' : 'SSE'}, ${what} (≤ Socket.IO Redis adapter)`,
          scenario: 'cluster',
          metric,
          pushlet: peer,
          reference: 'socketio+redis',
          limit: 1.0,
          kind: 'max',
        }),
      );
    }
  }
  targets.push(
    ratioTarget(results, { id: 'publish-redis-cpu', target: 'Redis CPU per message published with history (≤ bare PUBLISH)', scenario: 'publish', metric: 'redisCpuUs', pushlet: 'pushlet', reference: 'bare-publish', limit: 1.0, kind: 'max' }),
    ratioTarget(results, { id: 'publish-rate', target: 'Messages/s published by one instance with history (≥ bare PUBLISH)', scenario: 'publish', metric: 'perSecond', pushlet: 'pushlet', reference: 'bare-publish', limit: 1.0, kind: 'min' }),
    ratioTarget(results, {
      id: 'publish-cluster-scaling',
      target: 'Publish throughput, three-master Cluster vs one master (≥ 2.2×)',
      scenario: 'publish',
      metric: 'perSecond',
      pushlet: 'pushlet-cluster-3',
      reference: 'pushlet-cluster-1',
      limit: 2.2,
      kind: 'min',
    }),
  );
  const storm = results.find((r) => r.id === 'storm');
  const stormRow = storm?.rows.find((r) => r.peer === 'pushlet-storm');
  const caughtUpS = stormRow?.status === 'ok' ? stormRow.metrics.allCaughtUpS : undefined;
  const clean = stormRow?.status === 'ok' && stormRow.metrics.met === 1;
  targets.push({
    id: 'storm',
    target: `Reconnect storm, ${Number(storm?.params.clients ?? 0).toLocaleString('en')} clients: all caught up (< 10 s, every message once, no reset)`,
    pushlet: caughtUpS,
    reference: 10,
    referenceLabel: 's, target',
    ratio: caughtUpS !== undefined && Number.isFinite(caughtUpS) ? caughtUpS / 10 : undefined,
    limit: 1,
    kind: 'max',
    met: stormRow?.status === 'ok' ? clean : undefined,
    note: !storm ? 'scenario not run' : stormRow?.status !== 'ok' ? (stormRow?.note ?? 'not run') : clean ? '' : Number.isFinite(caughtUpS) ? 'messages lost, twice or reset' : 'not all caught up within the timeout',
  });
  return targets;
}

// ---- Markdown ---------------------------------------------------------------------------------

function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || Number.isNaN(value)) return '–';
  if (!Number.isFinite(value)) return String(value);
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratioText(ratio: number | undefined): string {
  return ratio === undefined || !Number.isFinite(ratio) ? '–' : `${ratio.toFixed(2)}×`;
}

function family(peer: string): 'sse' | 'ws' {
  return peer.includes('sse') ? 'sse' : 'ws';
}

/** The non-Pushlet rows a Pushlet row is compared with: same transport family, or all of them. */
function referencesFor(row: Row, rows: Row[]): Row[] {
  const others = rows.filter((r) => !r.pushlet && r.status === 'ok');
  const same = others.filter((r) => family(r.peer) === family(row.peer));
  return same.length ? same : others;
}

export function scenarioTable(result: ScenarioResult): string {
  const columns = result.columns;
  const header = `| Peer | ${columns.map((c) => c.label).join(' | ')} |`;
  const rule = `|---|${columns.map(() => '---:').join('|')}|`;
  const lines = [header, rule];
  const ok = result.rows.filter((r) => r.status === 'ok');
  for (const row of ok) {
    const name = row.pushlet ? `**${row.label}**` : row.label;
    lines.push(`| ${name} | ${columns.map((c) => fmt(row.metrics[c.key], c.digits ?? 0)).join(' | ')} |`);
  }
  for (const pushlet of ok.filter((r) => r.pushlet)) {
    for (const reference of referencesFor(pushlet, result.rows)) {
      const cells = columns.map((c: Column) => {
        if (!c.better) return '';
        const p = pushlet.metrics[c.key];
        const r = reference.metrics[c.key];
        return p !== undefined && r !== undefined && r > 0 ? ratioText(p / r) : '–';
      });
      lines.push(`| *${pushlet.label} ÷ ${reference.label}* | ${cells.join(' | ')} |`);
    }
  }
  const notes = result.rows.filter((r) => r.status !== 'ok').map((r) => `- ${r.label}: ${r.status} – ${r.note ?? ''}`);
  return [lines.join('\n'), ...(notes.length ? ['', ...notes] : [])].join('\n');
}

export function targetsTable(targets: TargetResult[]): string {
  const lines = ['| Target | Pushlet | Reference | Ratio | Limit | Result |', '|---|---:|---:|---:|---:|---|'];
  for (const t of targets) {
    const result = t.met === undefined ? `not measured${t.note ? `: ${t.note}` : ''}` : t.met ? '**met**' : `**missed**${t.note ? ` (${t.note})` : ''}`;
    const limit = t.kind === 'all' ? 'all open, 0 errors' : `${t.kind === 'max' ? '≤' : '≥'} ${t.limit}×`;
    const digits = t.kind === 'all' ? 0 : 2;
    lines.push(
      `| ${t.target} | ${fmt(t.pushlet, digits)} | ${fmt(t.reference, digits)} (${t.referenceLabel}) | ${ratioText(t.ratio)} | ${limit} | ${result} |`,
    );
  }
  return lines.join('\n');
}

export function markdownReport(meta: RunMeta, targets: TargetResult[], results: ScenarioResult[]): string {
  const parts = [
    '# Pushlet benchmark results',
    '',
    `Run ${meta.startedAt} (${Math.round(meta.durationS)} s), commit \`${meta.commit}\`, Node ${meta.node}, ${meta.cores} × ${meta.cpus}. ` +
      `Load average ${meta.loadAverageStart.map((l) => l.toFixed(2)).join(' / ')} at start, ${meta.loadAverageEnd.map((l) => l.toFixed(2)).join(' / ')} at the end` +
      `${meta.quick ? '; **quick smoke run (BENCH_QUICK=1): figures are indicative only**' : ''}${meta.repeat > 1 ? `; median of ${meta.repeat} runs` : ''}.`,
    '',
    `Command: \`${meta.command}\`. Each server runs in its own process; load clients in separate processes. ` +
      'CPU is the server process\'s utime+stime from /proc/<pid>/stat; latency is from the publish call to receipt, on the machine\'s monotonic clock. ' +
      'Other work shares this machine, so compare ratios within this run rather than absolute figures.',
    '',
    '## Targets',
    '',
    targetsTable(targets),
    '',
  ];
  for (const result of results) {
    parts.push(`## ${result.title}`, '', result.description, '', scenarioTable(result), '');
  }
  return parts.join('\n');
}

// ---- SVG --------------------------------------------------------------------------------------

const COLORS: Record<string, string> = {
  ws: '#7f8c8d',
  socketio: '#e67e22',
  sse: '#95a5a6',
  'pushlet-ws': '#2471a3',
  'pushlet-sse': '#5dade2',
};

/** A target's text without its limit (the tick shows it) and with shorter words, for the chart. */
function shortTarget(text: string): string {
  return text
    .replace(/\s*\((?:≤|≥)[^)]*\)\s*$/, '')
    .replace('Server CPU per ', 'CPU/')
    .replace('Cross-instance p99 through Redis', 'Redis p99')
    .replace('fan-out at 20 msg/s', '20 msg/s')
    .replace('deliveries/s at saturation', 'deliveries/s, saturation');
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Bar {
  label: string;
  value: number | undefined;
  color: string;
  text?: string;
  /** A vertical tick at this value (the target limit). */
  marker?: number;
}

const WIDTH = 960;
const LABEL_W = 380;
const BAR_H = 18;
const GAP = 6;

function panel(y: number, title: string, bars: Bar[], options: { scaleMax?: number; unitLine?: number } = {}): { svg: string; height: number } {
  const plotW = WIDTH - LABEL_W - 90;
  const values = bars.flatMap((b) => [b.value ?? 0, b.marker ?? 0]);
  const max = options.scaleMax ?? Math.max(...values, 1e-9) * 1.1;
  const x = (v: number) => LABEL_W + Math.min(plotW, (v / max) * plotW);
  const out = [`<text x="10" y="${y + 16}" font-size="15" font-weight="bold">${escapeXml(title)}</text>`];
  let cy = y + 28;
  for (const bar of bars) {
    out.push(`<text x="${LABEL_W - 8}" y="${cy + 13}" font-size="12" text-anchor="end">${escapeXml(bar.label)}</text>`);
    if (bar.value !== undefined && Number.isFinite(bar.value)) {
      out.push(`<rect x="${LABEL_W}" y="${cy}" width="${Math.max(1, x(bar.value) - LABEL_W).toFixed(1)}" height="${BAR_H}" fill="${bar.color}"/>`);
      out.push(`<text x="${(x(bar.value) + 4).toFixed(1)}" y="${cy + 13}" font-size="12">${escapeXml(bar.text ?? String(bar.value))}</text>`);
    } else {
      out.push(`<text x="${LABEL_W + 4}" y="${cy + 13}" font-size="12" fill="#888">${escapeXml(bar.text ?? 'not measured')}</text>`);
    }
    if (bar.marker !== undefined) {
      out.push(`<line x1="${x(bar.marker).toFixed(1)}" x2="${x(bar.marker).toFixed(1)}" y1="${cy - 2}" y2="${cy + BAR_H + 2}" stroke="#000" stroke-width="2"/>`);
    }
    cy += BAR_H + GAP;
  }
  if (options.unitLine !== undefined) {
    const lx = x(options.unitLine).toFixed(1);
    out.push(`<line x1="${lx}" x2="${lx}" y1="${y + 24}" y2="${cy}" stroke="#555" stroke-dasharray="4 3"/>`);
  }
  return { svg: out.join('\n'), height: cy - y + 14 };
}

export function svgChart(meta: RunMeta, targets: TargetResult[], results: ScenarioResult[]): string {
  const panels: Array<(y: number) => { svg: string; height: number }> = [];
  const ratioBars: Bar[] = targets
    .filter((t) => t.kind !== 'all')
    .map((t) => ({
      label: shortTarget(t.target),
      value: t.ratio,
      color: t.met === undefined ? '#bbb' : t.met ? '#27ae60' : '#c0392b',
      text: t.ratio === undefined ? `not measured` : `${t.ratio.toFixed(2)}×`,
      marker: t.limit,
    }));
  panels.push((y) => panel(y, 'Targets: Pushlet ÷ reference (black tick = limit; green met, red missed)', ratioBars, { scaleMax: Math.max(2, ...ratioBars.map((b) => (b.value ?? 0) * 1.1)), unitLine: 1 }));

  const metricBars = (scenarioIds: string[], key: string, unit: string, digits: number): Bar[] =>
    scenarioIds.flatMap((id) =>
      (results.find((r) => r.id === id)?.rows ?? [])
        .filter((r) => r.status === 'ok')
        .map((r) => ({
          label: `${r.label} (${id})`,
          value: r.metrics[key],
          color: COLORS[r.peer.replace('+redis', '')] ?? '#999',
          text: `${(r.metrics[key] ?? NaN).toFixed(digits)} ${unit}`,
        })),
    );
  const sections: Array<[string, string[], string, string, number]> = [
    ['Server CPU per delivery at saturation, fan-out', ['fanout-ws', 'fanout-sse'], 'satCpuUs', 'µs', 2],
    ['Deliveries per second at saturation, fan-out', ['fanout-ws', 'fanout-sse'], 'satDeliveriesPerSec', '/s', 0],
    ['p99 latency at 20 msg/s, fan-out (median slice)', ['fanout-ws', 'fanout-sse'], 'steadyP99SliceMs', 'ms', 2],
    ['Server RSS per idle connection', ['idle-ws', 'idle-sse'], 'rssPerConnKB', 'KB', 1],
    ['Cross-instance p99 latency through Redis (median slice)', ['cluster'], 'p99SliceMs', 'ms', 2],
  ];
  for (const [title, ids, key, unit, digits] of sections) {
    const bars = metricBars(ids, key, unit, digits);
    if (bars.length) panels.push((y) => panel(y, title, bars));
  }
  let y = 52;
  const body: string[] = [];
  for (const make of panels) {
    const { svg, height } = make(y);
    body.push(svg);
    y += height;
  }
  const subtitle = `${meta.startedAt}, commit ${meta.commit}, Node ${meta.node}, ${meta.cores} × ${meta.cpus}${meta.quick ? ' (quick run)' : ''}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y + 10}" viewBox="0 0 ${WIDTH} ${y + 10}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="18" font-weight="bold">Pushlet for NestJS vs plain ws, Socket.IO and node:http SSE</text>`,
    `<text x="10" y="40" font-size="11" fill="#555">${escapeXml(subtitle)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
