import { applyDecorators, SetMetadata, UseInterceptors } from '@nestjs/common';
import { PUSHLET_PUBLISH_METADATA } from '../pushlet.constants.js';
import { PushletPublishInterceptor } from './pushlet-publish.interceptor.js';

/** A fixed topic, or one computed from the handler's result and the request. */
export type PushletTopicResolver = string | ((result: any, request: any) => string);

export interface PushletPublishMetadata {
  readonly topic: PushletTopicResolver;
  readonly event?: string;
}

/**
 * Publishes the handler's return value on a topic once the handler succeeds; the response waits
 * for the publication, so a client that reads the response can rely on it having been published.
 *
 * ```ts
 * @Post(':id/ship')
 * @PushletPublish((order, req) => `orders/${req.params.id}`, 'shipped')
 * ship(@Param('id') id: string) { return this.orders.ship(id); }
 * ```
 */
export function PushletPublish(topic: PushletTopicResolver, event?: string): MethodDecorator & ClassDecorator {
  const metadata: PushletPublishMetadata = { topic, event };
  return applyDecorators(SetMetadata(PUSHLET_PUBLISH_METADATA, metadata), UseInterceptors(PushletPublishInterceptor));
}
