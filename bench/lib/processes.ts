import { mkdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChurnResult, CollectResult, OpenResult, Target } from '../client/load-client.js';
import type { Protocol } from '../client/connection.js';
import { Histogram } from './histogram.js';
import { Child } from './ipc.js';
import { sampleProcess, type ProcSample } from './proc.js';
import { round, sum, sumFields } from './stats.js';

/** The bench's child processes: servers under test (one process each) and pools of load clients. */

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

const peer = (id: string, label: string, script: string, protocol: Protocol, pathPrefix: string): Peer => ({
  id,
  label,
  script: `servers/${script}.js`,
  protocol,
  pathPrefix,
  pushlet: id.startsWith('pushlet'),
});

export const PEERS: Record<string, Peer> = Object.fromEntries(
  [
    peer('ws', 'plain ws', 'plain-ws', 'ws', '/ws?topic='),
    peer('socketio', 'Socket.IO 4', 'socketio', 'sio', '/socket.io/?EIO=4&transport=websocket&topic='),
    peer('pushlet-ws', 'Pushlet WS', 'pushlet', 'ws', '/ws?topic='),
    peer('sse', 'plain node:http SSE', 'plain-sse', 'sse', '/events?topic='),
    peer('pushlet-sse', 'Pushlet SSE', 'pushlet', 'sse', '/events?topic='),
  ].map((p) => [p.id, p]),
);

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

/**
 * Child processes working together (load clients of any kind), each pushing `progress` notices;
 * their sum (or `combine`) is the pool's progress, which `waitFor` watches.
 */
export class ProcessPool<P extends object> {
  protected readonly latest: P[];
  private waiters: Array<() => void> = [];
  private progressListener: ((total: P) => void) | undefined;

  constructor(
    readonly children: Child[],
    initial: () => P,
    private readonly combine: (parts: P[]) => P = sumFields,
  ) {
    this.latest = children.map(initial);
    children.forEach((child, index) =>
      child.on('progress', (progress: P) => {
        this.latest[index] = progress;
        this.progressListener?.(this.total());
        for (const waiter of this.waiters.slice()) waiter();
      }),
    );
  }

  /** Forks `processes` children of `script` (relative to build/bench) and waits until each is ready. */
  static async spawn(script: string, processes: number, name: string, nice = 0): Promise<Child[]> {
    mkdirSync(LOG_DIR, { recursive: true });
    const children = Array.from({ length: processes }, (_, i) =>
      Child.start(join(BUILD_DIR, script), { name: `${name}-client${i}`, logPath: join(LOG_DIR, `${runLabel}-${name}-client${i}.log`) }),
    );
    try {
      await Promise.all(children.map((child) => child.once('ready', 30_000)));
      if (nice !== 0) for (const child of children) setPriority(child.pid, nice);
    } catch (error) {
      await Promise.all(children.map((child) => child.stop()));
      throw error;
    }
    return children;
  }

  total(): P {
    return this.combine(this.latest);
  }

  onProgress(listener: ((total: P) => void) | undefined): void {
    this.progressListener = listener;
  }

  /** The same command to every child (`args` per child when a function), all answers. */
  callAll<T>(cmd: string, args: unknown | ((i: number) => unknown) = {}, timeoutMs?: number): Promise<T[]> {
    return Promise.all(this.children.map((child, i) => child.call<T>(cmd, typeof args === 'function' ? (args as (i: number) => unknown)(i) : args, timeoutMs)));
  }

  /** Progress notices every `intervalMs` from now on. */
  async watch(intervalMs: number): Promise<void> {
    (await this.callAll<P>('watch', { intervalMs })).forEach((p, i) => (this.latest[i] = p));
  }

  /** The published totals per topic, against which `pending` is counted. */
  async expect(totals: Record<string, number>): Promise<void> {
    (await this.callAll<P>('expect', { totals })).forEach((p, i) => (this.latest[i] = p));
  }

  /** Resolves true once `check(total progress)` holds, false after `timeoutMs`. */
  waitFor(check: (total: P) => boolean, timeoutMs: number): Promise<boolean> {
    if (check(this.total())) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = () => check(this.total()) && finish(true);
      const finish = (value: boolean) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(value);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((child) => child.stop()));
  }
}

const NO_PROGRESS = { warm: 0, open: 0, minLast: -1, pending: 0, received: 0, lastReceivedUs: 0 };
export type Progress = typeof NO_PROGRESS;

function combineProgress(parts: Progress[]): Progress {
  return { ...sumFields(parts), minLast: Math.min(...parts.map((p) => p.minLast)), lastReceivedUs: Math.max(...parts.map((p) => p.lastReceivedUs)) };
}

/** Raw-protocol load clients (bench/client/load-client.ts) working together on one server. */
export class ClientPool extends ProcessPool<Progress> {
  private constructor(
    children: Child[],
    readonly addresses: string[],
  ) {
    super(children, () => ({ ...NO_PROGRESS }), combineProgress);
  }

  static async start(processes: number, name: string): Promise<ClientPool> {
    const children = await ProcessPool.spawn('client/load-client.js', processes, name);
    return new ClientPool(children, children.map(nextSourceAddress));
  }

  /** Opens `count` connections spread evenly over the processes. */
  async open(target: Omit<Target, 'localAddress'>, count: number, concurrency: number): Promise<OpenResult & { perSecond: number }> {
    const n = this.children.length;
    const started = Date.now();
    const share = (i: number) => Math.floor(count / n) + (i < count % n ? 1 : 0);
    const firstOf = (i: number) => (target.topicFirst ?? 0) + sum(Array.from({ length: i }, (_, k) => share(k)));
    const results = await this.callAll<OpenResult>(
      'open',
      (i: number) => ({ ...target, topicFirst: firstOf(i), localAddress: this.addresses[i], count: share(i), concurrency }),
      600_000,
    );
    const elapsedMs = Date.now() - started;
    const opened = sum(results.map((r) => r.opened));
    return {
      opened,
      failed: sum(results.map((r) => r.failed)),
      elapsedMs,
      errors: results.flatMap((r) => r.errors).slice(0, 5),
      perSecond: round((opened * 1000) / Math.max(1, elapsedMs), 0),
    };
  }

  async reset(): Promise<void> {
    await this.callAll('reset');
  }

  /** Merged results of every process. */
  async collect(totals?: Record<string, number>) {
    const parts = await this.callAll<CollectResult>('collect', { totals }, 120_000);
    const histogram = new Histogram();
    for (const part of parts) histogram.merge(part.histogram);
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
      integrity: sumFields(parts.map((p) => p.integrity)),
    };
  }

  churn(target: Omit<Target, 'localAddress'>, durationMs: number, concurrency: number): Promise<ChurnResult[]> {
    return this.callAll<ChurnResult>(
      'churn',
      (i: number) => ({ ...target, topicFirst: i * 1_000_000, localAddress: this.addresses[i], durationMs, concurrency }),
      durationMs + 120_000,
    );
  }
}

export type Collected = Awaited<ReturnType<ClientPool['collect']>>;
