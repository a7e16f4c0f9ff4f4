import { afterEach } from 'node:test';
import type { ModuleMetadata } from '@nestjs/common';
import type { PushletModuleOptions } from '../../src/index.js';
import { startApp, type TestApp } from './app.js';
import { RawSseStream } from './raw-sse.js';
import { WsClient } from './ws-client.js';

/**
 * Apps, raw SSE streams and WebSocket clients opened by a test, every one closed after it
 * (clients first). Call inside `describe`: it registers the `afterEach`.
 */
export function perTestConnections(defaults: PushletModuleOptions = { heartbeatInterval: 60_000 }) {
  const apps: TestApp[] = [];
  const clients: Array<{ close(): void }> = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const t of apps.splice(0)) await t.close();
  });
  return {
    /** An app with `defaults` and `options`, or with a whole module metadata. */
    app: async (options: PushletModuleOptions | { metadata: ModuleMetadata } = {}): Promise<TestApp> => {
      const t = await startApp('metadata' in options ? options : { ...defaults, ...options });
      apps.push(t);
      return t;
    },
    sse: (t: TestApp, path: string, headers?: Record<string, string>): Promise<RawSseStream> =>
      RawSseStream.open(t.url, path, headers, (stream) => clients.push(stream)),
    ws: async (t: TestApp, path: string): Promise<WsClient> => {
      const client = await WsClient.open(t.wsUrl + path);
      clients.push(client);
      return client;
    },
    /** Registers anything else with a `close()` for the clean-up. */
    track: <T extends { close(): void }>(client: T): T => {
      clients.push(client);
      return client;
    },
  };
}
