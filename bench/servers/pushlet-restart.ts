/**
 * Instance B of the `client-reconnect` scenario: the sample app as `pushlet.ts` runs it (REDIS_URL,
 * HEARTBEAT_MS), with a `restart` command that closes the app (WebSocket clients get 1001, SSE
 * streams end) and starts a new one on the same port in this process: a restart less Node's own
 * start-up. It answers when the old app was closed and the new one listened, on the shared
 * monotonic clock. It publishes nothing; instance A does.
 */
import type { INestApplication } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { createSampleApp } from '../../sample/app.js';
import { PushletService } from '../../src/index.js';
import { notify, serveCommands } from '../lib/ipc.js';
import { nowUs } from '../lib/proc.js';
import { heartbeatMs } from './harness.js';

const redisUrl = process.env.REDIS_URL || undefined;

async function start(port: number): Promise<INestApplication> {
  const app = await createSampleApp({ redisUrl, heartbeatMs: heartbeatMs() });
  await app.listen(port, '127.0.0.1');
  return app;
}

let app = await start(0);
const port = (app.getHttpServer().address() as AddressInfo).port;

serveCommands({
  restart: async () => {
    const startUs = nowUs();
    await app.close();
    const closedUs = nowUs();
    app = await start(port);
    return { startUs, closedUs, listeningUs: nowUs() };
  },
  stats: () => ({ connections: app.get(PushletService).stats().connections.total }),
  exit: async () => {
    setTimeout(() => process.exit(0), 3_000).unref();
    try {
      await app.close();
    } finally {
      setImmediate(() => process.exit(0));
    }
    return true;
  },
});
notify('ready', { port, pid: process.pid, features: { sse: true, distributed: redisUrl !== undefined } });
