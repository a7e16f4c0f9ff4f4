import { Histogram } from './histogram.js';
import { nowUs, sampleProcess, type ProcSample } from './proc.js';
import type { ClientPool, ServerHandle } from './processes.js';
import { mean, median, round, sum } from './stats.js';

/** The measured phases of the load scenarios: warm-up, a steady rate, saturation; and merging slices. */

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

/** extraCpuMs: other processes whose CPU counts for the work (Redis, the publishing instance); spanUs: first publish to last receipt; wallUs: the phase. */
export type PhaseResult = Awaited<ReturnType<typeof finishPhase>> & {
  /** Merged phases: the median over the slices of each slice's p99 (robust to a burst of outside load in one slice). */
  p99SliceMedianMs?: number;
  /** Saturation only: how often the publisher waited for credit, and how busy its event loop was. */
  flow?: { stalls: number; eventLoopUtilization: number };
};

function cpuSnapshot(handles: Array<{ name: string; pid: number }>): Map<string, number> {
  return new Map(handles.map((h) => [h.name, sampleProcess(h.pid).cpuMs]));
}

/**
 * Publishes at a fixed rate on `topics` (round-robin) and measures until every connection has
 * every message or 10 s pass. `receiver` is the server whose CPU is charged per delivery;
 * `publisher` may be another instance (cross-instance scenario).
 */
export async function steadyPhase(options: {
  publisher: ServerHandle;
  receiver: ServerHandle;
  pool: ClientPool;
  topics: string[];
  rate: number;
  durationMs: number;
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
    { topics: options.topics, rate: options.rate, durationMs: options.durationMs },
    options.durationMs + 60_000,
  );
  const totals = Object.fromEntries(options.topics.map((topic, i) => [topic, published.totals[i]!]));
  await pool.expect(totals);
  const drained = await pool.waitFor((p) => p.pending === 0, 10_000);
  return finishPhase({
    receiver,
    pool,
    totals,
    before,
    startedUs,
    publishedStartUs: published.startUs,
    sent: published.sent,
    drained,
    extra,
    extraBefore,
    publishErrors: published.publishErrors,
  });
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
  const result = await finishPhase({
    receiver: server,
    pool,
    totals,
    before,
    startedUs,
    publishedStartUs: published.startUs,
    sent: published.sent,
    drained,
    extra: [],
    extraBefore: new Map(),
    publishErrors: published.publishErrors,
  });
  return { ...result, flow: { stalls: published.stalls, eventLoopUtilization: round(published.eventLoopUtilization, 3) } };
}

/** The per-second and per-delivery figures of a phase, or of merged phases, from its sums. */
function rates(deliveries: number, serverCpuMs: number, spanUs: number, wallUs: number, clientCpuUs: number) {
  return {
    deliveriesPerSec: round((deliveries * 1e6) / Math.max(1, spanUs), 0),
    serverCpuPct: round((serverCpuMs * 1000 * 100) / Math.max(1, wallUs), 1),
    cpuUsPerDelivery: round((serverCpuMs * 1000) / Math.max(1, deliveries), 2),
    clientCpuPct: round((clientCpuUs * 100) / Math.max(1, wallUs), 1),
  };
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
}) {
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
    latency: collected.latency,
    serverCpuMs: round(serverCpuMs, 0),
    ...rates(deliveries, serverCpuMs, spanUs, wallUs, collected.cpuUs),
    extraCpuMs: Object.fromEntries([...extraAfter].map(([name, ms]) => [name, round(ms - (o.extraBefore.get(name) ?? ms), 0)])),
    clientMaxProcessCpuPct: round(collected.maxProcessCpuPct, 1),
    drained: o.drained,
    spanUs,
    wallUs,
    clientCpuUs: collected.cpuUs,
    collected,
    publishErrors: o.publishErrors,
  };
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
    latency: histogram.summary(),
    serverCpuMs,
    ...rates(deliveries, serverCpuMs, spanUs, wallUs, clientCpuUs),
    extraCpuMs,
    clientMaxProcessCpuPct: Math.max(...phases.map((p) => p.clientMaxProcessCpuPct)),
    drained: phases.every((p) => p.drained),
    spanUs,
    wallUs,
    clientCpuUs,
    // Integrity and error counters are cumulative per connection: the last phase holds them all.
    collected: { ...last.collected, histogram: histogram.toJSON(), latency: histogram.summary(), negativeLatencies: histogram.negative },
    publishErrors: Math.max(...phases.map((p) => p.publishErrors)),
    p99SliceMedianMs: median(phases.map((p) => p.latency.p99Ms)),
    flow: last.flow && {
      stalls: sum(phases.map((p) => p.flow?.stalls ?? 0)),
      eventLoopUtilization: round(mean(phases.map((p) => p.flow?.eventLoopUtilization ?? 0)), 3),
    },
  };
}
