import 'reflect-metadata';
import { afterEach } from 'node:test';
import type { INestApplication, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { PushletModule, PushletService, type PushletModuleOptions } from '../../src/index.js';
import { SseClient } from './sse-client.js';

export interface TestApp {
  app: INestApplication;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string;
  pushlet: PushletService;
  close(): Promise<void>;
}

/**
 * Starts a real Nest app on a free loopback port (or on `port`, to restart a server where its
 * clients expect it). Pass options, or a whole module metadata.
 */
export async function startApp(
  options: PushletModuleOptions | { metadata: ModuleMetadata } = {},
  configure?: (app: INestApplication) => void | Promise<void>,
  port = 0,
): Promise<TestApp> {
  const metadata: ModuleMetadata = 'metadata' in options ? options.metadata : { imports: [PushletModule.forRoot(options as PushletModuleOptions)] };
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await configure?.(app);
  await app.listen(port, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  let closed = false;
  return {
    app,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    pushlet: app.get(PushletService),
    close: async () => {
      if (closed) return;
      closed = true;
      await app.close();
    },
  };
}

/** Plain HTTP request helper: status and body text. */
export async function request(url: string, init: RequestInit = {}): Promise<{ status: number; body: string; headers: Headers }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

/**
 * Apps and SSE clients that a suite opens per test, all closed after each test. Call inside
 * `describe`: it registers the `afterEach`.
 */
export function perTestApps(defaults: PushletModuleOptions = { heartbeatInterval: 60_000 }) {
  const apps: TestApp[] = [];
  const clients: SseClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const t of apps.splice(0)) await t.close();
  });
  return {
    app: async (options: PushletModuleOptions = {}) => {
      const t = await startApp({ ...defaults, ...options });
      apps.push(t);
      return t;
    },
    open: async (t: TestApp, path: string, headers?: Record<string, string>) => {
      const client = await SseClient.open(t.url + path, headers);
      clients.push(client);
      return client;
    },
  };
}
