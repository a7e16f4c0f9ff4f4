/**
 * This module as an application runs it: the sample app (`createSampleApp`, PushletModule with
 * its defaults) on Nest's Express platform. REDIS_URL and HEARTBEAT_MS as for `npm run sample`.
 * Messages are published through `PushletService.publish`, the module's public API.
 *
 * PUSHLET_METRICS=1 mounts the sample's Prometheus metrics (off otherwise, as in every other
 * scenario) and scrapes them every BENCH_SCRAPE_MS (default 1000) in the process, as a
 * Prometheus server would, only far more often than its usual 15 s.
 */
import type { AddressInfo } from 'node:net';
import { createSampleApp } from '../../sample/app.js';
import { MemoryBroker, PUSHLET_BROKER, PushletService } from '../../src/index.js';
import { PushletMetrics } from '../../src/metrics/index.js';
import { heartbeatMs, serve } from './harness.js';

await serve(async () => {
  const redisUrl = process.env.REDIS_URL || undefined;
  const metrics = process.env.PUSHLET_METRICS === '1';
  const app = await createSampleApp({ redisUrl, heartbeatMs: heartbeatMs(), metrics });
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const pushlet = app.get(PushletService);
  const broker: unknown = app.get(PUSHLET_BROKER);
  let scraper: NodeJS.Timeout | undefined;
  if (metrics) {
    const registry = app.get(PushletMetrics);
    scraper = setInterval(() => void registry.metrics(), Number(process.env.BENCH_SCRAPE_MS ?? 1_000));
  }
  return {
    port,
    // Whether the WebSocket endpoint exists is probed over the wire by the orchestrator.
    features: { sse: true, distributed: !(broker instanceof MemoryBroker), metrics },
    publish: (topic, event, data) => pushlet.publish(topic, event, data),
    connections: () => pushlet.stats().connections.total,
    close: () => {
      clearInterval(scraper);
      return app.close();
    },
  };
});
