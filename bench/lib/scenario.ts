import type { BenchConfig } from '../config.js';
import type { PhaseResult } from './phases.js';
import { ClientPool, PEERS, ServerHandle, type Collected, type Peer } from './processes.js';
import { median, sum } from './stats.js';

/**
 * Scenarios are data (bench/scenarios.ts): an id, the peers, the parameters and the measurement
 * functions; `runScenario` is the one runner that runs any of them.
 */
export interface Column {
  key: string;
  label: string;
  digits?: number;
  /** Which way is better; ratio rows are shown for these columns. */
  better?: 'lower' | 'higher';
}

/** A column: `col('p99Ms', 'p99 ms', 2, 'lower')`. */
export const col = (key: string, label: string, digits?: number, better?: Column['better']): Column => ({
  key,
  label,
  ...(digits !== undefined && { digits }),
  ...(better && { better }),
});

export interface Row {
  /** Peer id (`ws`, `socketio`, `pushlet-ws`, ...), with `+redis` in the cross-instance scenario. */
  peer: string;
  label: string;
  pushlet: boolean;
  status: 'ok' | 'skipped' | 'failed';
  note?: string;
  metrics: Record<string, number>;
  detail?: unknown;
}

export interface ScenarioResult {
  id: string;
  title: string;
  description: string;
  params: Record<string, unknown>;
  columns: Column[];
  rows: Row[];
  /** More Markdown after the table. */
  notes?: string[];
}

/** One row of a scenario: a peer (a server under test), maybe under another id and label. */
export interface Entry {
  peer: Peer;
  rowId: string;
  label: string;
  env?: NodeJS.ProcessEnv;
}

export interface Measured {
  metrics: Record<string, number>;
  detail?: unknown;
}

export type Cleanup = Array<() => Promise<void>>;

export interface Scenario<S = any, Shared = any> {
  id: string;
  /** Not in the default run (`--only=<id>` runs it). */
  optional?: boolean;
  title(c: BenchConfig): string;
  description(c: BenchConfig): string;
  params(c: BenchConfig): Record<string, unknown>;
  columns: Column[];
  /**
   * Peer rows: ids of PEERS, or entries. With `setup`, `phases` and `finish`, every peer is set up
   * first, then each phase runs in `--rounds` slices taken in turn (A B C A B C …), so that outside
   * load hits all alike; with `measure`, one peer after another, each alone on the machine.
   */
  peers?: string[] | ((c: BenchConfig) => Entry[]);
  /** Set up once for all peers (e.g. one redis-server), before the first. */
  shared?(c: BenchConfig, cleanup: Cleanup): Promise<Shared>;
  setup?(entry: Entry, c: BenchConfig, cleanup: Cleanup, shared: Shared): Promise<S>;
  phases?: Array<(state: S, c: BenchConfig) => Promise<void>>;
  finish?(state: S, c: BenchConfig): Promise<Measured>;
  /** Everything for one peer, alone on the machine. */
  measure?(entry: Entry, c: BenchConfig, cleanup: Cleanup, shared: Shared): Promise<Measured>;
  /** Scenarios that are not one row per peer measure their rows themselves. */
  rows?(c: BenchConfig): Promise<Row[]>;
  /** Figures across rows (ratios between them), after all are measured. */
  after?(rows: Row[], c: BenchConfig): void;
  notes?(result: ScenarioResult): string[];
}

const message = (error: unknown) => (error instanceof Error ? error.message.split('\n')[0]! : String(error));

/** Runs the cleanup steps, last first, and empties the list. */
export async function release(cleanup: Cleanup): Promise<void> {
  for (const step of cleanup.splice(0).reverse()) await step().catch((error: unknown) => console.log(`    cleanup: ${String(error)}`));
}

/** Runs `body` with a cleanup list, released (last step first) however it ends. */
export async function withCleanup<T>(body: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup: Cleanup = [];
  try {
    return await body(cleanup);
  } finally {
    await release(cleanup);
  }
}

function entriesOf(s: Scenario, c: BenchConfig): Entry[] {
  const entries = typeof s.peers === 'function' ? s.peers(c) : (s.peers ?? []).map((id) => ({ peer: PEERS[id]!, rowId: id, label: PEERS[id]!.label }));
  return entries.filter((e) => !c.peers || c.peers.includes(e.peer.id));
}

interface Contender extends Entry {
  cleanup: Cleanup;
  row: Row;
  state?: unknown;
}

/** Peers side by side: all set up, each phase in `rounds` slices taken in turn, then their figures. */
async function contest(s: Scenario, entries: Entry[], c: BenchConfig, shared: unknown, rounds: number): Promise<Row[]> {
  const contenders: Contender[] = entries.map((e) => ({
    ...e,
    cleanup: [],
    row: { peer: e.rowId, label: e.label, pushlet: e.peer.pushlet, status: 'ok', metrics: {} },
  }));
  const live = () => contenders.filter((x) => x.state !== undefined);
  const attempt = async (x: Contender, step: () => Promise<void>) => {
    try {
      await step();
    } catch (error) {
      x.row.status = 'failed';
      x.row.note = message(error);
      console.log(`  ${x.label.padEnd(28)} failed: ${x.row.note}`);
      x.state = undefined;
      await release(x.cleanup);
    }
  };
  const setup = s.measure ? (e: Entry, cl: Cleanup) => s.measure!(e, c, cl, shared) : (e: Entry, cl: Cleanup) => s.setup!(e, c, cl, shared);
  const finish = s.measure ? async (state: unknown) => state as Measured : (state: unknown) => s.finish!(state, c);
  try {
    for (const x of contenders) {
      const started = Date.now();
      await attempt(x, async () => {
        x.state = await setup(x, x.cleanup);
        console.log(`  ${x.label.padEnd(28)} ${s.measure ? 'done' : 'ready'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      });
    }
    for (const [index, phase] of (s.phases ?? []).entries()) {
      const started = Date.now();
      for (let round = 0; round < rounds; round += 1) for (const x of live()) await attempt(x, () => phase(x.state, c));
      console.log(`  phase ${index + 1} of ${s.phases!.length}: ${rounds} round(s) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    for (const x of live()) await attempt(x, async () => void Object.assign(x.row, await finish(x.state)));
  } finally {
    for (const x of contenders) await release(x.cleanup);
  }
  return contenders.map((x) => x.row);
}

/** Runs one scenario: its rows, or its peers interleaved or one after another. */
export async function runScenario(s: Scenario, c: BenchConfig): Promise<ScenarioResult> {
  let rows: Row[];
  if (s.rows) rows = await s.rows(c);
  else {
    const cleanup: Cleanup = [];
    try {
      const shared = await s.shared?.(c, cleanup);
      const entries = entriesOf(s, c);
      if (s.measure) {
        rows = [];
        for (const entry of entries) rows.push(...(await contest(s, [entry], c, shared, 1)));
      } else rows = await contest(s, entries, c, shared, c.rounds);
    } finally {
      await release(cleanup);
    }
  }
  s.after?.(rows, c);
  const result: ScenarioResult = { id: s.id, title: s.title(c), description: s.description(c), params: s.params(c), columns: s.columns, rows };
  return { ...result, notes: s.notes?.(result) };
}

/** Median of every figure over repeated runs (`--repeat`); integrity and error counts are summed instead. */
export function combineRuns(runs: ScenarioResult[]): ScenarioResult {
  if (runs.length === 1) return runs[0]!;
  const summed = new Set(['lost', 'duplicates', 'outOfOrder', 'errors', 'leaked']);
  const rows = runs[0]!.rows.map((row) => {
    const same = runs.map((r) => r.rows.find((x) => x.peer === row.peer)).filter((r): r is Row => r?.status === 'ok');
    if (same.length === 0) return row;
    const metrics = Object.fromEntries(
      Object.keys(same[0]!.metrics).map((key) => {
        const values = same.map((r) => r.metrics[key]!);
        return [key, summed.has(key) ? sum(values) : median(values)];
      }),
    );
    return { ...same[0]!, metrics, detail: { runs: same.map((r) => ({ metrics: r.metrics, detail: r.detail })) } };
  });
  return { ...runs[0]!, rows };
}

// ---- helpers of the load scenarios --------------------------------------------------------------

export const HOST = '127.0.0.1';

export function processesFor(c: BenchConfig, connections: number): number {
  return Math.max(2, Math.ceil(connections / c.connsPerProcess));
}

export async function startServer(peer: Peer, cleanup: Cleanup, env: NodeJS.ProcessEnv, name?: string, cpuProfileDir?: string): Promise<ServerHandle> {
  const server = await ServerHandle.start(peer, { env, name, cpuProfileDir });
  cleanup.push(() => server.stop());
  return server;
}

export async function startPool(processes: number, name: string, cleanup: Cleanup): Promise<ClientPool> {
  const pool = await ClientPool.start(processes, name);
  cleanup.push(() => pool.stop());
  return pool;
}

type TopicSpec = { topic?: string; topicPrefix?: string; topicModulo?: number };

/** Where load clients connect: `peer`'s protocol and path on `server`, each connection to a topic of `topic`. */
export const targetOf = (peer: Peer, server: ServerHandle, topic: TopicSpec) => ({
  protocol: peer.protocol,
  host: HOST,
  port: server.port,
  pathPrefix: peer.pathPrefix,
  ...topic,
});

/** `count` connections to `server`, every one of them open, or an error. */
export async function openAll(pool: ClientPool, peer: Peer, server: ServerHandle, count: number, c: BenchConfig, topic: TopicSpec) {
  const opened = await pool.open(targetOf(peer, server, topic), count, c.connectConcurrency);
  if (opened.failed > 0) throw new Error(`${opened.failed} of ${count} connections failed: ${opened.errors.join('; ')}`);
  return opened;
}

/** Everything that went wrong, summed: nothing here may be above zero in a clean run. */
export function errorCount(servers: ServerHandle[], collected: Collected, extra = 0): number {
  return sum(servers.map((s) => s.problems().count)) + collected.unexpectedCloses + collected.malformed + collected.negativeLatencies + extra;
}

export function integrity(collected: Collected) {
  const { lost, duplicates, outOfOrder } = collected.integrity;
  return { lost, duplicates, outOfOrder };
}

export function roundDetail(phase: PhaseResult) {
  return {
    deliveriesPerSec: phase.deliveriesPerSec,
    cpuUsPerDelivery: phase.cpuUsPerDelivery,
    serverCpuPct: phase.serverCpuPct,
    p99Ms: phase.latency.p99Ms,
    clientCpuPct: phase.clientCpuPct,
  };
}

export function phaseDetail(phase: PhaseResult) {
  const { collected, ...rest } = phase;
  return { ...rest, integrity: collected.integrity, heartbeats: collected.heartbeats, samples: collected.samples };
}

export const INTEGRITY_COLUMNS: Column[] = [col('lost', 'lost'), col('duplicates', 'dup'), col('outOfOrder', 'out of order'), col('errors', 'errors')];

/** Runs `body` for one row, turning a failure into the row's status instead of stopping the run. */
export async function measureRow(row: Omit<Row, 'status' | 'metrics'>, body: () => Promise<Measured>): Promise<Row> {
  const result: Row = { ...row, status: 'ok', metrics: {} };
  try {
    Object.assign(result, await body());
  } catch (error) {
    result.status = 'failed';
    result.note = message(error);
    console.log(`  ${row.label}: failed: ${result.note}`);
  }
  return result;
}
