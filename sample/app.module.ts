import { Module, type DynamicModule } from '@nestjs/common';
import { PushletModule } from '../src/index.js';
import { DemoController } from './demo.controller.js';
import { SendController } from './send.controller.js';

export interface SampleConfig {
  /** `redis://host:port` switches on distributed mode. */
  redisUrl?: string;
  heartbeatMs?: number;
}

/** The sample app: the module used exactly as an application would use it. */
@Module({})
export class AppModule {
  static register(config: SampleConfig = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        PushletModule.forRoot({
          heartbeatInterval: config.heartbeatMs ?? 30_000,
          // Distributed mode: every sample instance on the same Redis shares topics and history.
          ...(config.redisUrl ? { redis: { url: config.redisUrl } } : {}),
        }),
      ],
      controllers: [DemoController, SendController],
    };
  }
}
