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
 * Publishes the handler's return value (what its promise resolves to, or each value of its
 * Observable) on a topic once the handler succeeds, then answers the request with it; the
 * response waits for the publication, so a client that reads the response can rely on it having
 * been published. Use it on handlers that do not publish by themselves, or every message goes
 * out twice.
 *
 * ```ts
 * @Post(':id/cancel')
 * @PushletPublish((order: Order) => `orders/${order.id}`, 'cancelled')
 * cancel(@Param('id') id: string): Order { return { id, status: 'cancelled' }; }
 * ```
 */
export function PushletPublish(topic: PushletTopicResolver, event?: string): MethodDecorator & ClassDecorator {
  const metadata: PushletPublishMetadata = { topic, event };
  return applyDecorators(SetMetadata(PUSHLET_PUBLISH_METADATA, metadata), UseInterceptors(PushletPublishInterceptor));
}
