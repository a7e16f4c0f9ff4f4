/**
 * A load-client process: opens many raw connections to one server, counts and times every
 * measured message, and reports to the orchestrator. Several of these run at once, each with
 * its own source address (127.x.y.z), to spread connections over processes and port ranges.
 */
import { Histogram } from '../lib/histogram.js';
import { notify, serveCommands } from '../lib/ipc.js';
import { nowUs } from '../lib/proc.js';
import { Connection, type Protocol, type Sink } from './connection.js';

export interface Target {
  protocol: Protocol;
  host: string;
  port: number;
  /** Request path up to the topic, e.g. `/ws?topic=`. */
  pathPrefix: string;
  /** Connection i subscribes to `topic`, or to `topicPrefix + ((topicFirst + i) % topicModulo)`. */
  topic?: string;
  topicPrefix?: string;
  topicFirst?: number;
  topicModulo?: number;
  localAddress?: string;
  timeoutMs?: number;
}

export interface OpenResult {
  opened: number;
  failed: number;
  elapsedMs: number;
  errors: string[];
}

export interface CollectResult {
  open: number;
  received: number;
  lastReceivedUs: number;
  histogram: ReturnType<Histogram['toJSON']>;
  cpuUs: number;
  elapsedUs: number;
  heartbeats: number;
  unexpectedCloses: number;
  malformed: number;
  samples: string[];
  integrity: { expected: number; received: number; lost: number; duplicates: number; outOfOrder: number; extra: number };
}

export interface ChurnResult {
  cycles: number;
  failures: number;
  openLatency: ReturnType<Histogram['summary']>;
  cpuUs: number;
  elapsedUs: number;
  unexpectedCloses: number;
  samples: string[];
}

const connections: Connection[] = [];
const histogram = new Histogram();
let received = 0;
let lastReceivedUs = 0;
let heartbeats = 0;
let unexpectedCloses = 0;
let malformed = 0;
const samples: string[] = [];
let cpuAtReset = process.cpuUsage();
let resetAtUs = nowUs();
let expected: Record<string, number> | undefined;
let progressTimer: NodeJS.Timeout | undefined;

const sample = (text: string) => {
  if (samples.length < 10) samples.push(text.slice(0, 300));
};

const sink: Sink = {
  measured(_connection, _seq, publishedUs, receivedUs) {
    received += 1;
    if (receivedUs > lastReceivedUs) lastReceivedUs = receivedUs;
    histogram.record(receivedUs - publishedUs);
  },
  unexpectedClose(connection, reason) {
    unexpectedCloses += 1;
    sample(`unexpected close (${connection.topic}): ${reason}`);
  },
  heartbeat() {
    heartbeats += 1;
  },
  malformed(connection, why) {
    malformed += 1;
    sample(`malformed (${connection.topic}): ${why}`);
  },
};

function topicOf(target: Target, index: number): string {
  if (target.topicPrefix === undefined) return target.topic ?? 'default';
  const n = (target.topicFirst ?? 0) + index;
  return target.topicPrefix + (target.topicModulo ? n % target.topicModulo : n);
}

function cpuSinceReset(): number {
  const usage = process.cpuUsage(cpuAtReset);
  return usage.user + usage.system;
}

async function openMany(args: Target & { count: number; concurrency: number }): Promise<OpenResult> {
  const started = Date.now();
  let next = 0;
  let opened = 0;
  let failed = 0;
  const errors: string[] = [];
  const worker = async () => {
    while (next < args.count) {
      const index = next++;
      const topic = topicOf(args, index);
      const connection = new Connection(args.protocol, topic, sink);
      try {
        await connection.open(args.host, args.port, args.pathPrefix + encodeURIComponent(topic), args.localAddress, args.timeoutMs ?? 15_000);
        connections.push(connection);
        opened += 1;
      } catch (error) {
        failed += 1;
        if (errors.length < 5) errors.push(String(error instanceof Error ? error.message : error));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(args.concurrency, args.count)) }, worker));
  return { opened, failed, elapsedMs: Date.now() - started, errors };
}

function progress() {
  let warm = 0;
  let minLast = Infinity;
  let pending = 0;
  let open = 0;
  for (const connection of connections) {
    if (connection.closed) continue;
    open += 1;
    if (connection.warm) warm += 1;
    if (connection.last < minLast) minLast = connection.last;
    if (expected && connection.received < (expected[connection.topic] ?? 0)) pending += 1;
  }
  return { warm, open, minLast: minLast === Infinity ? -1 : minLast, pending, received, lastReceivedUs };
}

async function churn(args: Target & { durationMs: number; concurrency: number }): Promise<ChurnResult> {
  const openLatency = new Histogram();
  const deadline = Date.now() + args.durationMs;
  let cycles = 0;
  let failures = 0;
  let counter = 0;
  const cpuBefore = process.cpuUsage();
  const startUs = nowUs();
  const closesBefore = unexpectedCloses;
  const worker = async () => {
    while (Date.now() < deadline) {
      const topic = topicOf(args, counter++);
      const connection = new Connection(args.protocol, topic, sink);
      const t0 = nowUs();
      try {
        await connection.open(args.host, args.port, args.pathPrefix + encodeURIComponent(topic), args.localAddress, args.timeoutMs ?? 15_000);
        openLatency.record(nowUs() - t0);
        await connection.close();
        cycles += 1;
      } catch (error) {
        failures += 1;
        sample(`churn: ${String(error instanceof Error ? error.message : error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  const cpu = process.cpuUsage(cpuBefore);
  return {
    cycles,
    failures,
    openLatency: openLatency.summary(),
    cpuUs: cpu.user + cpu.system,
    elapsedUs: nowUs() - startUs,
    unexpectedCloses: unexpectedCloses - closesBefore,
    samples: samples.slice(),
  };
}

serveCommands({
  open: (args: Target & { count: number; concurrency: number }) => openMany(args),

  /** Starts progress notices every `intervalMs` (0 stops them). */
  watch: (args: { intervalMs: number }) => {
    if (progressTimer) clearInterval(progressTimer);
    progressTimer = undefined;
    if (args.intervalMs > 0) progressTimer = setInterval(() => notify('progress', progress()), args.intervalMs);
    return progress();
  },

  /** Published count per topic so far; `progress().pending` counts connections still short of it. */
  expect: (args: { totals: Record<string, number> }) => {
    expected = args.totals;
    return progress();
  },

  reset: () => {
    histogram.reset();
    received = 0;
    lastReceivedUs = 0;
    cpuAtReset = process.cpuUsage();
    resetAtUs = nowUs();
    return true;
  },

  collect: (args: { totals?: Record<string, number> }): CollectResult => {
    const totals = args.totals ?? expected ?? {};
    const integrity = { expected: 0, received: 0, lost: 0, duplicates: 0, outOfOrder: 0, extra: 0 };
    let open = 0;
    for (const connection of connections) {
      if (!connection.closed) open += 1;
      const want = totals[connection.topic] ?? 0;
      integrity.expected += want;
      integrity.received += connection.received;
      integrity.lost += Math.max(0, want - connection.received);
      integrity.extra += Math.max(0, connection.received - want);
      integrity.duplicates += connection.duplicates;
      integrity.outOfOrder += connection.outOfOrder;
    }
    return {
      open,
      received,
      lastReceivedUs,
      histogram: histogram.toJSON(),
      cpuUs: cpuSinceReset(),
      elapsedUs: nowUs() - resetAtUs,
      heartbeats,
      unexpectedCloses,
      malformed,
      samples: samples.slice(),
      integrity,
    };
  },

  churn: (args: Target & { durationMs: number; concurrency: number }) => churn(args),

  exit: () => {
    for (const connection of connections) {
      connection.closing = true;
      connection.socket?.destroy();
    }
    setImmediate(() => process.exit(0));
    return true;
  },
});
notify('ready', { pid: process.pid });
