/**
 * This module as an application runs it: the sample app (`createSampleApp`, PushletModule with
 * its defaults) on Nest's Express platform. REDIS_URL and HEARTBEAT_MS as for `npm run sample`.
 * Messages are published through `PushletService.publish`, the module's public API.
 */
import type { AddressInfo } from 'node:net';
import { createSampleApp } from '../../sample/app.js';
import { MemoryBroker, PUSHLET_BROKER, PushletService } from '../../src/index.js';
import { heartbeatMs, serve } from './harness.js';

await serve(async () => {
  const redisUrl = process.env.REDIS_URL || undefined;
  const app = await createSampleApp({ redisUrl, heartbeatMs: heartbeatMs() });
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const pushlet = app.get(PushletService);
  const broker: unknown = app.get(PUSHLET_BROKER);
  return {
    port,
    // Whether the WebSocket endpoint exists is probed over the wire by the orchestrator.
    features: { sse: true, distributed: !(broker instanceof MemoryBroker) },
    publish: (topic, event, data) => pushlet.publish(topic, event, data),
    connections: () => pushlet.stats().connections.total,
    close: () => app.close(),
  };
});
