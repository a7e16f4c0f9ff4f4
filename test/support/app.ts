import 'reflect-metadata';
import type { INestApplication, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { PushletModule, PushletService, type PushletModuleOptions } from '../../src/index.js';

export interface TestApp {
  app: INestApplication;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string;
  pushlet: PushletService;
  close(): Promise<void>;
}

/** Starts a real Nest app on a free loopback port. Pass options, or a whole module metadata. */
export async function startApp(
  options: PushletModuleOptions | { metadata: ModuleMetadata } = {},
  configure?: (app: INestApplication) => void | Promise<void>,
): Promise<TestApp> {
  const metadata: ModuleMetadata =
    'metadata' in options ? options.metadata : { imports: [PushletModule.forRoot(options as PushletModuleOptions)] };
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await configure?.(app);
  await app.listen(0, '127.0.0.1');
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
