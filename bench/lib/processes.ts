import { fork, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChurnResult, CollectResult, OpenResult, Target } from '../client/load-client.js';
import type { Protocol } from '../client/connection.js';
import type { Notice, Reply, Request } from './ipc.js';
import { sampleProcess, type ProcSample } from './proc.js';
import { Histogram, round, sum, sumFields } from './stats.js';

/** The bench's child processes: servers under test (one process each) and pools of load clients, every one a {@link Child}. */

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
/** Log files are `<LOG_DIR>/<label>-<child name>.log`. */
export function setRunLabel(label: string): void {
  runLabel = label;
}

/**
 * One forked child (a script of build/bench, or an absolute path) and its command channel
 * (lib/ipc.ts on the other side). Its stdout and stderr go to its log file; stderr lines and
 * stdout lines with WARN or ERROR count as problems.
 */
export class Child {
  private readonly process: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited = false;
  readonly exit: Promise<number | null>;
  /** The child's `ready` notice; rejects if it exits first or does not come within `readyMs`. */
  readonly ready: Promise<any>;
  onProgress: (data: any) => void = () => undefined;
  problemCount = 0;
  /** The first 20 problem lines. */
  readonly problemLines: string[] = [];

  constructor(
    readonly name: string,
    script: string,
    options: { env?: NodeJS.ProcessEnv; execArgv?: string[]; readyMs: number },
  ) {
    mkdirSync(LOG_DIR, { recursive: true });
    const log = createWriteStream(join(LOG_DIR, `${runLabel}-${name}.log`));
    const child = fork(script.startsWith('/') ? script : join(BUILD_DIR, script), [], {
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      execArgv: options.execArgv ?? [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.process = child;
    this.exit = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.exited = true;
        for (const { reject } of this.pending.values()) reject(new Error(`${name} exited (code ${code})`));
        this.pending.clear();
        log.end();
        resolve(code);
      }),
    );
    let onReady: (data: unknown) => void = () => undefined;
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: not ready within ${options.readyMs} ms`)), options.readyMs);
      onReady = (data) => {
        clearTimeout(timer);
        resolve(data);
      };
      void this.exit.then(() => {
        clearTimeout(timer);
        reject(new Error(`${name} exited before "ready"`));
      });
    });
    this.ready.catch(() => undefined);
    child.on('message', (message: Reply | Notice) => {
      if ('event' in message) return message.event === 'ready' ? onReady(message.data) : this.onProgress(message.data);
      const waiter = this.pending.get(message.reqId);
      this.pending.delete(message.reqId);
      if (message.ok) waiter?.resolve(message.result);
      else waiter?.reject(new Error(`${name}: ${message.error}`));
    });
    const problem = (kind: string, line: string) => {
      this.problemCount += 1;
      if (this.problemLines.length < 20) this.problemLines.push(`${kind}: ${line.slice(0, 300)}`);
    };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.write(`${line}\n`);
      if (/\bERROR\b/.test(line)) problem('error', line);
      else if (/\bWARN\b/.test(line)) problem('warn', line);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      log.write(`[stderr] ${line}\n`);
      problem('stderr', line);
    });
  }

  get pid(): number {
    return this.process.pid!;
  }

  call<T>(cmd: string, args: unknown = {}, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const reqId = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        reject(new Error(`${this.name}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = (f: () => void) => {
        clearTimeout(timer);
        f();
      };
      this.pending.set(reqId, { resolve: (v) => settle(() => resolve(v as T)), reject: (e) => settle(() => reject(e)) });
      this.process.send({ reqId, cmd, args } satisfies Request);
    });
  }

  /** Sends a command whose answer nobody waits for (flow-control credit). */
  tell(cmd: string, args: unknown): void {
    if (!this.exited) this.process.send({ reqId: 0, cmd, args } satisfies Request);
  }

  /** CPU time, RSS and open descriptors now. */
  sample(): ProcSample {
    return sampleProcess(this.pid);
  }

  /** Problem lines (stderr, WARN, ERROR): how many, and the first five. */
  problems(): { count: number; samples: string[] } {
    return { count: this.problemCount, samples: this.problemLines.slice(0, 5) };
  }

  /** Asks the child to exit; kills it (this child only, by its pid) if it does not within `ms`. */
  async stop(ms = 10_000): Promise<void> {
    if (this.exited) return;
    this.call('exit', {}, ms).catch(() => undefined);
    const timer = setTimeout(() => this.exited || this.process.kill('SIGKILL'), ms);
    await this.exit;
    clearTimeout(timer);
  }
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

/** A server under test in its own process (servers/harness.ts), once it listens. */
export class ServerHandle extends Child {
  port = 0;
  features: Record<string, boolean> = {};

  static async start(peer: Peer, options: { env?: NodeJS.ProcessEnv; name?: string; cpuProfileDir?: string } = {}): Promise<ServerHandle> {
    const name = options.name ?? peer.id;
    const execArgv = ['--expose-gc'];
    if (options.cpuProfileDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`);
    const server = new ServerHandle(name, peer.scriptPath ?? peer.script, { env: options.env, execArgv, readyMs: 60_000 });
    const { port, features } = (await server.ready) as { port: number; features: Record<string, boolean> };
    server.port = port;
    server.features = features;
    return server;
  }

  stats(gc = false): Promise<ServerStats> {
    return this.call<ServerStats>('stats', { gc });
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
    children.forEach(
      (child, index) =>
        (child.onProgress = (progress: P) => {
          this.latest[index] = progress;
          this.progressListener?.(this.total());
          for (const waiter of this.waiters.slice()) waiter();
        }),
    );
  }

  /** Forks `processes` children of `script` (relative to build/bench) and waits until each is ready. */
  static async spawn(script: string, processes: number, name: string, nice = 0): Promise<Child[]> {
    const children = Array.from({ length: processes }, (_, i) => new Child(`${name}-client${i}`, script, { readyMs: 30_000 }));
    try {
      await Promise.all(children.map((child) => child.ready));
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
  private readonly addresses: string[];

  constructor(children: Child[]) {
    super(children, () => ({ ...NO_PROGRESS }), combineProgress);
    this.addresses = children.map(nextSourceAddress);
  }

  static async start(processes: number, name: string): Promise<ClientPool> {
    return new ClientPool(await ProcessPool.spawn('client/load-client.js', processes, name));
  }

  /** Opens `count` connections spread evenly over the processes. */
  async open(target: Omit<Target, 'localAddress'>, count: number, concurrency: number): Promise<OpenResult & { perSecond: number }> {
    const n = this.children.length;
    const started = Date.now();
    const share = (i: number) => Math.floor(count / n) + (i < count % n ? 1 : 0);
    const firstOf = (i: number) => (target.topicFirst ?? 0) + sum(Array.from({ length: i }, (_, k) => share(k)));
    const args = (i: number) => ({ ...target, topicFirst: firstOf(i), localAddress: this.addresses[i], count: share(i), concurrency });
    const results = await this.callAll<OpenResult>('open', args, 600_000);
    const elapsedMs = Date.now() - started;
    const opened = sum(results.map((r) => r.opened));
    const errors = results.flatMap((r) => r.errors).slice(0, 5);
    return { opened, failed: sum(results.map((r) => r.failed)), elapsedMs, errors, perSecond: round((opened * 1000) / Math.max(1, elapsedMs), 0) };
  }

  async reset(): Promise<void> {
    await this.callAll('reset');
  }

  /** Merged results of every process. */
  async collect(totals?: Record<string, number>) {
    const parts = await this.callAll<CollectResult>('collect', { totals }, 120_000);
    const histogram = new Histogram();
    for (const part of parts) histogram.merge(part.histogram);
    const { open, received, cpuUs, heartbeats, unexpectedCloses, malformed } = sumFields(parts);
    return {
      open,
      received,
      lastReceivedUs: Math.max(...parts.map((p) => p.lastReceivedUs)),
      latency: histogram.summary(),
      histogram: histogram.toJSON(),
      negativeLatencies: histogram.negative,
      cpuUs,
      maxProcessCpuPct: Math.max(...parts.map((p) => (100 * p.cpuUs) / Math.max(1, p.elapsedUs))),
      elapsedUs: Math.max(...parts.map((p) => p.elapsedUs)),
      heartbeats,
      unexpectedCloses,
      malformed,
      samples: parts.flatMap((p) => p.samples).slice(0, 8),
      integrity: sumFields(parts.map((p) => p.integrity)),
    };
  }

  churn(target: Omit<Target, 'localAddress'>, durationMs: number, concurrency: number): Promise<ChurnResult[]> {
    const args = (i: number) => ({ ...target, topicFirst: i * 1_000_000, localAddress: this.addresses[i], durationMs, concurrency });
    return this.callAll<ChurnResult>('churn', args, durationMs + 120_000);
  }
}

export type Collected = Awaited<ReturnType<ClientPool['collect']>>;
