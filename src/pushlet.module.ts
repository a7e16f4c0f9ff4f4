import { Module } from '@nestjs/common';
import { PushletPublishInterceptor } from './decorators/pushlet-publish.interceptor.js';
import { PushletHub } from './pushlet.hub.js';
import { PushletConfigurableModule } from './pushlet.module-definition.js';
import { brokerProvider, optionsProvider } from './pushlet.providers.js';
import { PushletRoutes } from './pushlet.routes.js';
import { PushletService } from './pushlet.service.js';
import { SseTransport } from './sse/sse.transport.js';
import { WsTransport } from './ws/ws.transport.js';

/**
 * `PushletModule.forRoot(options)` or `forRootAsync({ imports, inject, useFactory | useClass |
 * useExisting })` in the app module; then inject `PushletService` anywhere (global by default,
 * `isGlobal: false` to opt out).
 */
@Module({
  providers: [optionsProvider, brokerProvider, PushletHub, PushletRoutes, PushletService, SseTransport, WsTransport, PushletPublishInterceptor],
  exports: [PushletService, PushletPublishInterceptor],
})
export class PushletModule extends PushletConfigurableModule {}
