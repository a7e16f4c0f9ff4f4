import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { PushletErrorFilter } from '../src/index.js';
import { AppModule, type SampleConfig } from './app.module.js';

/** Builds the sample app; `main.ts` runs it, tests start it on port 0. */
export async function createSampleApp(config: SampleConfig = {}, options: { logger?: false } = {}): Promise<INestApplication> {
  const app = await NestFactory.create(await AppModule.register(config), options.logger === false ? { logger: false } : {});
  // Behind a load balancer: the client's address from X-Forwarded-For, for SSE and WebSocket alike.
  if (config.trustProxy !== undefined) (app as NestExpressApplication).set('trust proxy', config.trustProxy);
  app.useGlobalFilters(new PushletErrorFilter(app.get(HttpAdapterHost)));
  app.enableShutdownHooks();
  return app;
}
