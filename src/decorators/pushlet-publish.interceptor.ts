import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { mergeMap, type Observable } from 'rxjs';
import { PUSHLET_PUBLISH_METADATA } from '../pushlet.constants.js';
import { PushletService, toHttpException } from '../pushlet.service.js';
import type { PushletPublishMetadata } from './pushlet-publish.decorator.js';

/** Applied by `@PushletPublish`: publishes each value the handler returns. */
@Injectable()
export class PushletPublishInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly pushlet: PushletService,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const metadata = this.reflector.getAllAndOverride<PushletPublishMetadata | undefined>(PUSHLET_PUBLISH_METADATA, [context.getHandler(), context.getClass()]);
    if (!metadata) return next.handle();
    const request = context.switchToHttp().getRequest();
    return next.handle().pipe(
      mergeMap(async (result: unknown) => {
        try {
          const topic = typeof metadata.topic === 'function' ? metadata.topic(result, request) : metadata.topic;
          await this.pushlet.publish(topic, metadata.event, result ?? null);
        } catch (error) {
          throw toHttpException(error);
        }
        return result;
      }),
    );
  }
}
