import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChurnResult, CollectResult, OpenResult, Target } from '../client/load-client.js';
import type { Protocol } from '../client/connection.js';
import { Histogram, round, type HistogramData } from './histogram.js';
import { Child } from './ipc.js';
import { nowUs, sampleProcess, type ProcSample } from './proc.js';

const BUILD_DIR = fileURLToPath(new URL('..', import.meta.url));
export const LOG_DIR = 'bench/results/logs';

/** A server implementation the bench can start, and how clients reach it. */
export interface Peer {
  id: string;
  label: string;
  script: string;
  protocol: Protocol;
  pathPrefix: string;
  /** This module (the figures every other peer is compared with). */
  pushlet: boolean;
  /** An absolute path to run instead of `script` (another build of the module, e.g. an older commit). */
  scriptPath?: string;
}

export const PEERS: Record<string, Peer> = {
  ws: { id: 'ws', label: 'plain ws', script: 'servers/plain-ws.js', protocol: 'ws', pathPrefix: '/ws?topic=', pushlet: false },
  socketio: {
    id: 'socketio',
    label: 'Socket.IO 4',
    script: 'servers/socketio.js',
    protocol: 'sio',
    pathPrefix: '/socket.io/?EIO=4&transport=websocket&topic=',
    pushlet: false,
  },
  'pushlet-ws': { id: 'pushlet-ws', label: 'Pushlet WS', script: 'servers/pushlet.js', protocol: 'ws', pathPrefix: '/ws?topic=', pushlet: true },
  sse: { id: 'sse', label: 'plain node:http SSE', script: 'servers/plain-sse.js', protocol: 'sse', pathPrefix: '/events?topic=', pushlet: false },
  'pushlet-sse': {
    id: 'pushlet-sse',
    label: 'Pushlet SSE',
    script: 'servers/pushlet.js',
    protocol: 'sse',
    pathPrefix: '/events?topic=',
    pushlet: true,
  },
};

let runLabel = 'run';
export function setRunLabel(label: string): void {
  runLabel = label;
}

export interface ServerStats {
  eventLoop: { idleMs: number; activeMs: number };
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  connections: number;
  publishErrors: number;
  lastPublishError: string;
}

/** A server under test in its own process. */
export class ServerHandle {
  private constructor(
    readonly peer: Peer,
    readonly child: Child,
    readonly port: number,
    readonly features: Record<string, boolean>,
  ) {}

  static async start(peer: Peer, options: { env?: NodeJS.ProcessEnv; name?: string; cpuProfileDir?: string } = {}): Promise<ServerHandle> {
    mkdirSync(LOG_DIR, { recursive: true });
    const name = options.name ?? peer.id;
    const execArgv = ['--expose-gc'];
    if (options.cpuProfileDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`);
    const child = Child.start(peer.scriptPath ?? join(BUILD_DIR, peer.script), {
      name,
      env: options.env,
      execArgv,
      logPath: join(LOG_DIR, `${runLabel}-${name}.log`),
    });
    const ready = await child.once<{ port: number; features: Record<string, boolean> }>('ready', 60_000);
    return new ServerHandle(peer, child, ready.port, ready.features);
  }

  get pid(): number {
    return this.child.pid;
  }

  sample(): ProcSample {
    return sampleProcess(this.pid);
  }

  stats(gc = false): Promise<ServerStats> {
    return this.child.call<ServerStats>('stats', { gc });
  }

  call<T>(cmd: string, args: unknown, timeoutMs?: number): Promise<T> {
    return this.child.call<T>(cmd, args, timeoutMs);
  }

  /** Lines the server printed to stderr, plus WARN/ERROR log lines. */
  problems(): { count: number; samples: string[] } {
    return { count: this.child.errorLines + this.child.warnLines + this.child.stderrLines, samples: this.child.problems.slice(0, 5) };
  }

  stop(): Promise<void> {
    return this.child.stop();
  }
}

let addressCounter = 0;
/** A fresh loopback source address per load-client process, so that ephemeral ports never run out. */
function nextSourceAddress(): string {
  addressCounter += 1;
  return `127.10.${Math.floor(addressCounter / 250) % 250}.${(addressCounter % 250) + 1}`;
}

export interface Progress {
  warm: number;
  open: number;
  minLast: number;
  pending: number;
  received: number;
  lastReceivedUs: number;
}

/** Load-client processes working together on one server. */
export class ClientPool {
  private readonly latest: Progress[];
  private waiters: Array<() => void> = [];
  private progressListener: ((total: Progress) => void) | undefined;

  private constructor(
    readonly children: Child[],
    readonly addresses: string[],
  ) {
    this.latest = children.map(() => ({ warm: 0, open: 0, minLast: -1, pending: 0, received: 0, lastReceivedUs: 0 }));
    children.forEach((child, index) =>
      child.on('progress', (progress: Progress) => {
        this.latest[index] = progress;
        const total = this.total();
        this.progressListener?.(total);
        for (const waiter of this.waiters.slice()) waiter();
      }),
    );
  }

  static async start(processes: number, name: string): Promise<ClientPool> {
    mkdirSync(LOG_DIR, { recursive: true });
    const children = Array.from({ length: processes }, (_, i) =>
      Child.start(join(BUILD_DIR, 'client/load-client.js'), {
        name: `${name}-client${i}`,
        logPath: join(LOG_DIR, `${runLabel}-${name}-client${i}.log`),
      }),
    );
    await Promise.all(children.map((child) => child.once('ready', 30_000)));
    return new ClientPool(
      children,
      children.map(() => nextSourceAddress()),
    );
  }

  /** Opens `count` connections spread evenly over the processes. */
  async open(target: Omit<Target, 'localAddress'>, count: number, concurrency: number): Promise<OpenResult & { perSecond: number }> {
    const n = this.children.length;
    const started = Date.now();
    let first = target.topicFirst ?? 0;
    const results = await Promise.all(
      this.children.map((child, i) => {
        const share = Math.floor(count / n) + (i < count % n ? 1 : 0);
        const args = { ...target, topicFirst: first, localAddress: this.addresses[i], count: share, concurrency };
        first += share;
        return child.call<OpenResult>('open', args, 600_000);
      }),
    );
    const elapsedMs = Date.now() - started;
    return {
      opened: sum(results.map((r) => r.opened)),
      failed: sum(results.map((r) => r.failed)),
      elapsedMs,
      errors: results.flatMap((r) => r.errors).slice(0, 5),
      perSecond: round((sum(results.map((r) => r.opened)) * 1000) / Math.max(1, elapsedMs), 0),
    };
  }

  total(): Progress {
    return {
      warm: sum(this.latest.map((p) => p.warm)),
      open: sum(this.latest.map((p) => p.open)),
      minLast: Math.min(...this.latest.map((p) => p.minLast)),
      pending: sum(this.latest.map((p) => p.pending)),
      received: sum(this.latest.map((p) => p.received)),
      lastReceivedUs: Math.max(...this.latest.map((p) => p.lastReceivedUs)),
    };
  }

  onProgress(listener: ((total: Progress) => void) | undefined): void {
    this.progressListener = listener;
  }

  async watch(intervalMs: number): Promise<void> {
    const now = await Promise.all(this.children.map((child) => child.call<Progress>('watch', { intervalMs })));
    now.forEach((p, i) => (this.latest[i] = p));
  }

  async expect(totals: Record<string, number>): Promise<void> {
    const now = await Promise.all(this.children.map((child) => child.call<Progress>('expect', { totals })));
    now.forEach((p, i) => (this.latest[i] = p));
  }

  /** Resolves true once `check(total progress)` holds, false after `timeoutMs`. */
  waitFor(check: (total: Progress) => boolean, timeoutMs: number): Promise<boolean> {
    if (check(this.total())) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = () => {
        if (!check(this.total())) return;
        finish(true);
      };
      const finish = (value: boolean) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(value);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async reset(): Promise<void> {
    await Promise.all(this.children.map((child) => child.call('reset')));
  }

  /** Merged results of every process. */
  async collect(totals?: Record<string, number>): Promise<Collected> {
    const parts = await Promise.all(this.children.map((child) => child.call<CollectResult>('collect', { totals }, 120_000)));
    const histogram = new Histogram();
    for (const part of parts) histogram.merge(part.histogram);
    const integrity = { expected: 0, received: 0, lost: 0, duplicates: 0, outOfOrder: 0, extra: 0 };
    for (const part of parts) for (const key of Object.keys(integrity) as Array<keyof typeof integrity>) integrity[key] += part.integrity[key];
    return {
      open: sum(parts.map((p) => p.open)),
      received: sum(parts.map((p) => p.received)),
      lastReceivedUs: Math.max(...parts.map((p) => p.lastReceivedUs)),
      latency: histogram.summary(),
      histogram: histogram.toJSON(),
      negativeLatencies: histogram.negative,
      cpuUs: sum(parts.map((p) => p.cpuUs)),
      maxProcessCpuPct: Math.max(...parts.map((p) => (100 * p.cpuUs) / Math.max(1, p.elapsedUs))),
      elapsedUs: Math.max(...parts.map((p) => p.elapsedUs)),
      heartbeats: sum(parts.map((p) => p.heartbeats)),
      unexpectedCloses: sum(parts.map((p) => p.unexpectedCloses)),
      malformed: sum(parts.map((p) => p.malformed)),
      samples: parts.flatMap((p) => p.samples).slice(0, 8),
      integrity,
    };
  }

  async churn(target: Omit<Target, 'localAddress'>, durationMs: number, concurrency: number): Promise<ChurnResult[]> {
    return Promise.all(
      this.children.map((child, i) =>
        child.call<ChurnResult>(
          'churn',
          { ...target, topicFirst: i * 1_000_000, localAddress: this.addresses[i], durationMs, concurrency },
          durationMs + 120_000,
        ),
      ),
    );
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.children.map((child) => child.call('closeAll', {}, 60_000).catch(() => undefined)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((child) => child.stop()));
  }
}

export interface Collected {
  open: number;
  received: number;
  lastReceivedUs: number;
  latency: ReturnType<Histogram['summary']>;
  histogram: HistogramData;
  negativeLatencies: number;
  cpuUs: number;
  maxProcessCpuPct: number;
  elapsedUs: number;
  heartbeats: number;
  unexpectedCloses: number;
  malformed: number;
  samples: string[];
  integrity: { expected: number; received: number; lost: number; duplicates: number; outOfOrder: number; extra: number };
}

export function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Publishes warm-up messages until every connection has seen one: proves each subscription is
 * live (on this instance, or through Redis) before anything is measured, whatever the protocol.
 */
export async function warmUp(publisher: ServerHandle, pool: ClientPool, topics: string[], connections: number, timeoutMs = 30_000): Promise<void> {
  await pool.watch(100);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await publisher.call('warmup', { topics });
    if (await pool.waitFor((p) => p.warm >= connections, 1_000)) return;
  }
  throw new Error(`only ${pool.total().warm} of ${connections} connections saw a warm-up message within ${timeoutMs} ms`);
}

export interface PhaseResult {
  published: number;
  deliveries: number;
  deliveriesPerSec: number;
  latency: Collected['latency'];
  serverCpuMs: number;
  serverCpuPct: number;
  cpuUsPerDelivery: number;
  /** Other processes whose CPU counts for the work (the Redis server, the publishing instance). */
  extraCpuMs: Record<string, number>;
  clientCpuPct: number;
  clientMaxProcessCpuPct: number;
  drained: boolean;
  /** From the first publish to the last receipt, and from the start of the phase to its end. */
  spanUs: number;
  wallUs: number;
  clientCpuUs: number;
  collected: Collected;
  publishErrors: number;
  /** Merged phases: the median over the slices of each slice's p99 (robust to a burst of outside load in one slice). */
  p99SliceMedianMs?: number;
  /** Saturation only: how often the publisher waited for credit, and how busy its event loop was. */
  flow?: { stalls: number; eventLoopUtilization: number };
}

function cpuSnapshot(handles: Array<{ name: string; pid: number }>): Map<string, number> {
  return new Map(handles.map((h) => [h.name, sampleProcess(h.pid).cpuMs]));
}

/**
 * Publishes at a fixed rate on `topics` (round-robin) and measures until every connection has
 * every message or `drainMs` passes. `receiver` is the server whose CPU is charged per delivery;
 * `publisher` may be another instance (cross-instance scenario).
 */
export async function steadyPhase(options: {
  publisher: ServerHandle;
  receiver: ServerHandle;
  pool: ClientPool;
  topics: string[];
  rate: number;
  durationMs: number;
  /** Messages published back to back in one event-loop turn. */
  burst?: number;
  drainMs?: number;
  extra?: Array<{ name: string; pid: number }>;
}): Promise<PhaseResult> {
  const { publisher, receiver, pool } = options;
  await pool.watch(200);
  await pool.reset();
  const extra = options.extra ?? [];
  const extraBefore = cpuSnapshot(extra);
  const before = receiver.sample();
  const startedUs = nowUs();
  const published = await publisher.call<{ sent: number; totals: number[]; startUs: number; publishErrors: number }>(
    'steady',
    { topics: options.topics, rate: options.rate, durationMs: options.durationMs, burst: options.burst },
    options.durationMs + 60_000,
  );
  const totals = Object.fromEntries(options.topics.map((topic, i) => [topic, published.totals[i]!]));
  await pool.expect(totals);
  const drained = await pool.waitFor((p) => p.pending === 0, options.drainMs ?? 10_000);
  return finishPhase({ receiver, pool, totals, before, startedUs, publishedStartUs: published.startUs, sent: published.sent, drained, extra, extraBefore, publishErrors: published.publishErrors });
}

/**
 * Publishes on one topic as fast as the server can deliver, flow-controlled by the slowest
 * client (at most `window` messages ahead of it), for `durationMs`.
 */
export async function floodPhase(options: { server: ServerHandle; pool: ClientPool; topic: string; durationMs: number; window: number }): Promise<PhaseResult> {
  const { server, pool } = options;
  await pool.reset();
  let granted = -1;
  pool.onProgress((total) => {
    if (total.minLast < 0) return;
    const upTo = total.minLast + 1 + options.window;
    if (upTo > granted) {
      granted = upTo;
      server.child.tell('credit', { upTo });
    }
  });
  await pool.watch(20);
  const before = server.sample();
  const startedUs = nowUs();
  const published = await server.call<{ sent: number; total: number; startUs: number; publishErrors: number; stalls: number; eventLoopUtilization: number }>(
    'flood',
    { topic: options.topic, durationMs: options.durationMs, window: options.window },
    options.durationMs + 60_000,
  );
  pool.onProgress(undefined);
  const totals = { [options.topic]: published.total };
  await pool.expect(totals);
  const drained = await pool.waitFor((p) => p.pending === 0, 15_000);
  await pool.watch(200);
  const result = await finishPhase({ receiver: server, pool, totals, before, startedUs, publishedStartUs: published.startUs, sent: published.sent, drained, extra: [], extraBefore: new Map(), publishErrors: published.publishErrors });
  return { ...result, flow: { stalls: published.stalls, eventLoopUtilization: round(published.eventLoopUtilization, 3) } };
}

async function finishPhase(o: {
  receiver: ServerHandle;
  pool: ClientPool;
  totals: Record<string, number>;
  before: ProcSample;
  startedUs: number;
  publishedStartUs: number;
  sent: number;
  drained: boolean;
  extra: Array<{ name: string; pid: number }>;
  extraBefore: Map<string, number>;
  publishErrors: number;
}): Promise<PhaseResult> {
  const after = o.receiver.sample();
  const endedUs = nowUs();
  const extraAfter = cpuSnapshot(o.extra);
  const collected = await o.pool.collect(o.totals);
  const serverCpuMs = after.cpuMs - o.before.cpuMs;
  const deliveries = collected.received;
  const spanUs = Math.max(1, collected.lastReceivedUs - o.publishedStartUs);
  const wallUs = Math.max(1, endedUs - o.startedUs);
  return {
    published: o.sent,
    deliveries,
    deliveriesPerSec: round((deliveries * 1e6) / spanUs, 0),
    latency: collected.latency,
    serverCpuMs: round(serverCpuMs, 0),
    serverCpuPct: round((serverCpuMs * 1000 * 100) / wallUs, 1),
    cpuUsPerDelivery: round((serverCpuMs * 1000) / Math.max(1, deliveries), 2),
    extraCpuMs: Object.fromEntries([...extraAfter].map(([name, ms]) => [name, round(ms - (o.extraBefore.get(name) ?? ms), 0)])),
    clientCpuPct: round((collected.cpuUs * 100) / wallUs, 1),
    clientMaxProcessCpuPct: round(collected.maxProcessCpuPct, 1),
    drained: o.drained,
    spanUs,
    wallUs,
    clientCpuUs: collected.cpuUs,
    collected,
    publishErrors: o.publishErrors,
  };
}

/** Whether `server` accepts a WebSocket upgrade at `path` (the module's WS transport may not be merged yet). */
export async function probeWebSocket(port: number, path = '/ws?topic=probe'): Promise<boolean> {
  const { Connection } = await import('../client/connection.js');
  const sink = { measured() {}, unexpectedClose() {}, heartbeat() {}, malformed() {} };
  const connection = new Connection('ws', 'probe', sink);
  try {
    await connection.open('127.0.0.1', port, path, undefined, 5_000);
    await connection.close();
    return true;
  } catch {
    return false;
  }
}

/** Several phases of the same kind (interleaved rounds) as one: sums, and latencies from the merged histograms. */
export function mergePhases(phases: PhaseResult[]): PhaseResult {
  if (phases.length === 1) return { ...phases[0]!, p99SliceMedianMs: phases[0]!.latency.p99Ms };
  const last = phases[phases.length - 1]!;
  const histogram = new Histogram();
  for (const phase of phases) histogram.merge(phase.collected.histogram);
  const deliveries = sum(phases.map((p) => p.deliveries));
  const serverCpuMs = sum(phases.map((p) => p.serverCpuMs));
  const spanUs = sum(phases.map((p) => p.spanUs));
  const wallUs = sum(phases.map((p) => p.wallUs));
  const clientCpuUs = sum(phases.map((p) => p.clientCpuUs));
  const extraCpuMs: Record<string, number> = {};
  for (const phase of phases) for (const [k, v] of Object.entries(phase.extraCpuMs)) extraCpuMs[k] = (extraCpuMs[k] ?? 0) + v;
  return {
    published: sum(phases.map((p) => p.published)),
    deliveries,
    deliveriesPerSec: round((deliveries * 1e6) / Math.max(1, spanUs), 0),
    latency: histogram.summary(),
    serverCpuMs,
    serverCpuPct: round((serverCpuMs * 1000 * 100) / Math.max(1, wallUs), 1),
    cpuUsPerDelivery: round((serverCpuMs * 1000) / Math.max(1, deliveries), 2),
    extraCpuMs,
    clientCpuPct: round((clientCpuUs * 100) / Math.max(1, wallUs), 1),
    clientMaxProcessCpuPct: Math.max(...phases.map((p) => p.clientMaxProcessCpuPct)),
    drained: phases.every((p) => p.drained),
    spanUs,
    wallUs,
    clientCpuUs,
    // Integrity and error counters are cumulative per connection: the last phase holds them all.
    collected: { ...last.collected, histogram: histogram.toJSON(), latency: histogram.summary(), negativeLatencies: histogram.negative },
    publishErrors: Math.max(...phases.map((p) => p.publishErrors)),
    p99SliceMedianMs: medianOf(phases.map((p) => p.latency.p99Ms)),
    flow: last.flow
      ? {
          stalls: sum(phases.map((p) => p.flow?.stalls ?? 0)),
          eventLoopUtilization: round(sum(phases.map((p) => p.flow?.eventLoopUtilization ?? 0)) / phases.length, 3),
        }
      : undefined,
  };
}

export function medianOf(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
