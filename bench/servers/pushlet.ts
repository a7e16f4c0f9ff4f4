/**
 * This module as an application runs it: the sample app (`createSampleApp`, PushletModule with
 * its defaults) on Nest's Express platform. REDIS_URL, NATS_URL and HEARTBEAT_MS as for `npm run sample`.
 * Messages are published through `PushletService.publish`, the module's public API. `restart`
 * closes the app and starts a new one on the same port: a restart less Node's own start-up.
 *
 * PUSHLET_METRICS=1 mounts the sample's Prometheus metrics (off otherwise, as in every other
 * scenario) and scrapes them every BENCH_SCRAPE_MS (default 1000) in the process, as a
 * Prometheus server would, only far more often than its usual 15 s.
 */
import type { AddressInfo } from 'node:net';
import { createSampleApp } from '../../sample/app.js';
import { MemoryBroker, PUSHLET_BROKER, PushletService } from '../../src/index.js';
import { RedisBroker } from '../../src/cluster/index.js';
import { positionsMany, readMany, type RecoveryCore } from '../../src/core/recovery-core.js';
import { PushletHub } from '../../src/pushlet.hub.js';
import { PushletMetrics } from '../../src/metrics/index.js';
import { nowUs } from '../lib/proc.js';
import { heartbeatMs, serve } from './harness.js';

/** How instance B serves resume reads and start positions (BENCH_READS; reconnect-storm bench only). */
type ReadMode = 'per-turn' | 'per-connection' | 'coalesced';

interface CoreReads {
  reads: { call(requests: unknown): Promise<unknown> };
  positionReads: { call(topics: unknown): Promise<unknown> };
}

/**
 * The broker's two read batchers swapped for another way of reading, to measure it in a storm:
 * - `per-turn`: as on main (`PerTurn`, one read for the calls of one event-loop turn);
 * - `per-connection`: one read per call, as before commit 4f2d30d (exactly what that commit changed);
 * - `coalesced`: a proposal: calls are queued while a read is in flight and the next read serves
 *   them all, so that reconnections spread over time (a client's backoff jitter) still share reads.
 * This reaches into the recovery core's private fields: a bench-only emulation, not a way to configure it.
 */
function swapReads(core: RecoveryCore, mode: ReadMode): boolean {
  if (mode === 'per-turn') return true;
  const broker = core.broker;
  if (!(broker instanceof RedisBroker)) return false;
  const internals = core as unknown as CoreReads;
  if (mode === 'per-connection') {
    internals.reads = { call: (requests) => broker.read(requests as never) };
    internals.positionReads = { call: (topics) => broker.positions(topics as never) };
  } else {
    internals.reads = new Coalescing((readers) => readMany(broker, readers as never));
    internals.positionReads = new Coalescing((lists) => positionsMany(broker, lists as never));
  }
  return true;
}

/** Serves calls in batches: one run at a time; calls made meanwhile wait for the next run. */
class Coalescing {
  private queue: Array<{ request: unknown; resolve: (result: unknown) => void; reject: (error: unknown) => void }> = [];
  private busy = false;

  constructor(private readonly run: (requests: unknown[]) => Promise<unknown[]>) {}

  call(request: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      if (!this.busy) {
        this.busy = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const calls = this.queue;
    this.queue = [];
    if (calls.length === 0) {
      this.busy = false;
      return;
    }
    Promise.resolve()
      .then(() => this.run(calls.map((c) => c.request)))
      .then(
        (results) => calls.forEach((c, i) => c.resolve(results[i])),
        (error: unknown) => calls.forEach((c) => c.reject(error)),
      )
      .finally(() => setImmediate(() => this.flush()));
  }
}

await serve(async () => {
  const redisUrl = process.env.REDIS_URL || undefined;
  // NATS_URL (and NATS_STREAM, NATS_SUBJECT_PREFIX): NATS JetStream instead, as for `npm run sample`.
  const nats = {
    natsUrl: process.env.NATS_URL || undefined,
    natsStream: process.env.NATS_STREAM || undefined,
    natsSubjectPrefix: process.env.NATS_SUBJECT_PREFIX || undefined,
  };
  const metrics = process.env.PUSHLET_METRICS === '1';
  const readMode = (process.env.BENCH_READS ?? 'per-turn') as ReadMode;
  let reads = '';
  const start = async (port: number) => {
    const app = await createSampleApp({ redisUrl, ...nats, heartbeatMs: heartbeatMs(), metrics });
    // BENCH_BACKLOG: the listen queue (Node's default is 511; the kernel caps it at net.core.somaxconn).
    // Nest hands the extra arguments to http.Server.listen(port, host, backlog); its typing omits the backlog.
    const listen = app.listen.bind(app) as unknown as (port: number, host: string, ...backlog: number[]) => Promise<unknown>;
    await listen(port, '127.0.0.1', ...(process.env.BENCH_BACKLOG ? [Number(process.env.BENCH_BACKLOG)] : []));
    reads = swapReads(app.get(PushletHub).core, readMode) ? readMode : 'unchanged';
    return app;
  };
  let app = await start(0);
  let pushlet = app.get(PushletService);
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const broker: unknown = app.get(PUSHLET_BROKER);
  let scraper: NodeJS.Timeout | undefined;
  if (metrics) {
    const registry = app.get(PushletMetrics);
    scraper = setInterval(() => void registry.metrics(), Number(process.env.BENCH_SCRAPE_MS ?? 1_000));
  }
  return {
    port,
    // Whether the WebSocket endpoint exists is probed over the wire by the orchestrator.
    features: { sse: true, distributed: !(broker instanceof MemoryBroker), [`reads:${reads}`]: true, metrics },
    publish: (topic, event, data) => pushlet.publish(topic, event, data),
    connections: () => pushlet.stats().connections.total,
    async restart() {
      const startUs = nowUs();
      await app.close(); // WebSocket clients get 1001, SSE streams end
      const closedUs = nowUs();
      app = await start(port);
      pushlet = app.get(PushletService);
      return { startUs, closedUs, listeningUs: nowUs() };
    },
    close: () => {
      clearInterval(scraper);
      return app.close();
    },
  };
});
