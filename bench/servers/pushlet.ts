/**
 * This module as an application runs it: the sample app (`createSampleApp`, PushletModule with
 * its defaults) on Nest's Express platform. REDIS_URL and HEARTBEAT_MS as for `npm run sample`.
 * Messages are published through `PushletService.publish`, the module's public API.
 */
import type { AddressInfo } from 'node:net';
import { createSampleApp } from '../../sample/app.js';
import { MemoryBroker, PUSHLET_BROKER, PushletService, RedisBroker } from '../../src/index.js';
import { heartbeatMs, serve } from './harness.js';

/**
 * BENCH_UNBATCHED_READS=1 (reconnect-storm bench only): the Redis broker as it was before resume
 * reads and start positions were batched per event-loop turn (commit 4f2d30d): one history read
 * and one position read per call, i.e. per connection. Done by swapping the broker's two
 * per-turn batchers for direct calls, which is exactly what that commit changed.
 */
function unbatchReads(broker: unknown): boolean {
  if (!(broker instanceof RedisBroker)) return false;
  const internals = broker as unknown as {
    history: { read(requests: unknown): Promise<unknown>; positions(topics: unknown): Promise<unknown> };
    reads: { call(requests: unknown): Promise<unknown> };
    positionReads: { call(topics: unknown): Promise<unknown> };
  };
  internals.reads = { call: (requests) => internals.history.read(requests) };
  internals.positionReads = { call: (topics) => internals.history.positions(topics) };
  return true;
}

await serve(async () => {
  const redisUrl = process.env.REDIS_URL || undefined;
  const app = await createSampleApp({ redisUrl, heartbeatMs: heartbeatMs() });
  // BENCH_BACKLOG: the listen queue (Node's default is 511; the kernel caps it at net.core.somaxconn).
  // Nest hands the extra arguments to http.Server.listen(port, host, backlog); its typing omits the backlog.
  const listen = app.listen.bind(app) as unknown as (port: number, host: string, ...backlog: number[]) => Promise<unknown>;
  await listen(0, '127.0.0.1', ...(process.env.BENCH_BACKLOG ? [Number(process.env.BENCH_BACKLOG)] : []));
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const pushlet = app.get(PushletService);
  const broker: unknown = app.get(PUSHLET_BROKER);
  const unbatched = process.env.BENCH_UNBATCHED_READS === '1' && unbatchReads(broker);
  return {
    port,
    // Whether the WebSocket endpoint exists is probed over the wire by the orchestrator.
    features: { sse: true, distributed: !(broker instanceof MemoryBroker), unbatched },
    publish: (topic, event, data) => pushlet.publish(topic, event, data),
    connections: () => pushlet.stats().connections.total,
    close: () => app.close(),
  };
});
