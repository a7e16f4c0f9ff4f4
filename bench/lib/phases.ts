import { Histogram } from './stats.js';
import { nowUs, sampleProcess } from './proc.js';
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
export type PhaseResult = Awaited<ReturnType<typeof measured>> & {
  /** Merged phases: the median over the slices of each slice's p99 (robust to a burst of outside load in one slice). */
  p99SliceMedianMs?: number;
  /** Saturation only: how often the publisher waited for credit, and how busy its event loop was. */
  flow?: { stalls: number; eventLoopUtilization: number };
};

type Extra = Array<{ name: string; pid: number }>;
const cpuOf = (extra: Extra) => new Map(extra.map((h) => [h.name, sampleProcess(h.pid).cpuMs]));

/** What a publisher answers for a phase: messages sent, the totals per topic so far, when it began. */
interface Published {
  sent: number;
  totals: Record<string, number>;
  startUs: number;
  publishErrors: number;
}

/**
 * Measures `publish` (a phase run by the publisher): `receiver`'s CPU (and `extra`'s), then waits
 * up to `drainMs` for every connection to have every message, and collects what the clients saw.
 * `slowWatch`: progress notices back to every 200 ms before the CPU is read.
 */
async function measured(
  o: { receiver: ServerHandle; pool: ClientPool; extra?: Extra; drainMs: number; slowWatch?: boolean },
  publish: () => Promise<Published>,
) {
  const extra = o.extra ?? [];
  const extraBefore = cpuOf(extra);
  const before = o.receiver.sample();
  const startedUs = nowUs();
  const published = await publish();
  await o.pool.expect(published.totals);
  const drained = await o.pool.waitFor((p) => p.pending === 0, o.drainMs);
  if (o.slowWatch) await o.pool.watch(200);
  const serverCpuMs = o.receiver.sample().cpuMs - before.cpuMs;
  const wallUs = Math.max(1, nowUs() - startedUs);
  const extraAfter = cpuOf(extra);
  const collected = await o.pool.collect(published.totals);
  const spanUs = Math.max(1, collected.lastReceivedUs - published.startUs);
  return {
    published: published.sent,
    deliveries: collected.received,
    latency: collected.latency,
    serverCpuMs: round(serverCpuMs, 0),
    ...rates(collected.received, serverCpuMs, spanUs, wallUs, collected.cpuUs),
    extraCpuMs: Object.fromEntries([...extraAfter].map(([name, ms]) => [name, round(ms - (extraBefore.get(name) ?? ms), 0)])),
    clientMaxProcessCpuPct: round(collected.maxProcessCpuPct, 1),
    drained,
    spanUs,
    wallUs,
    clientCpuUs: collected.cpuUs,
    collected,
    publishErrors: published.publishErrors,
  };
}

/**
 * Publishes at a fixed rate on `topics` (round-robin) and measures until every connection has
 * every message or 10 s pass. `receiver` is the server whose CPU is charged per delivery;
 * `publisher` may be another instance (cross-instance scenario).
 */
export async function steadyPhase(o: {
  publisher: ServerHandle;
  receiver: ServerHandle;
  pool: ClientPool;
  topics: string[];
  rate: number;
  durationMs: number;
  extra?: Extra;
}): Promise<PhaseResult> {
  await o.pool.watch(200);
  await o.pool.reset();
  return measured({ ...o, drainMs: 10_000 }, async () => {
    const args = { topics: o.topics, rate: o.rate, durationMs: o.durationMs };
    const published = await o.publisher.call<Published & { totals: number[] }>('steady', args, o.durationMs + 60_000);
    return { ...published, totals: Object.fromEntries(o.topics.map((topic, i) => [topic, published.totals[i]!])) };
  });
}

/**
 * Publishes on one topic as fast as the server can deliver, flow-controlled by the slowest
 * client (at most `window` messages ahead of it), for `durationMs`.
 */
export async function floodPhase(o: { server: ServerHandle; pool: ClientPool; topic: string; durationMs: number; window: number }): Promise<PhaseResult> {
  const { server, pool } = o;
  await pool.reset();
  let granted = -1;
  pool.onProgress((total) => {
    if (total.minLast < 0) return;
    const upTo = total.minLast + 1 + o.window;
    if (upTo > granted) {
      granted = upTo;
      server.tell('credit', { upTo });
    }
  });
  await pool.watch(20);
  let flow = { stalls: 0, eventLoopUtilization: 0 };
  // The flood watched progress every 20 ms (for credit); back to every 200 ms once it has drained.
  const result = await measured({ receiver: server, pool, drainMs: 15_000, slowWatch: true }, async () => {
    const args = { topic: o.topic, durationMs: o.durationMs, window: o.window };
    const published = await server.call<Published & { total: number; stalls: number; eventLoopUtilization: number }>('flood', args, o.durationMs + 60_000);
    pool.onProgress(undefined);
    flow = { stalls: published.stalls, eventLoopUtilization: round(published.eventLoopUtilization, 3) };
    return { ...published, totals: { [o.topic]: published.total } };
  });
  return { ...result, flow };
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
