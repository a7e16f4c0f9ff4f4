import type { IncomingMessage } from 'node:http';
import { HttpException, Injectable, type CanActivate, type ContextType, type ExecutionContext, type LoggerService, type Type } from '@nestjs/common';
import { ApplicationConfig, ModuleRef } from '@nestjs/core';
import { isObservable, lastValueFrom } from 'rxjs';
import type { PushletGuard, ResolvedPushletOptions } from './interfaces/pushlet-options.interface.js';
import type { ConnectionGate } from './core/admission.js';
import type { PushletTransport } from './protocol/frames.js';
import { PushletRouteRefusal } from './core/errors.js';
import { PushletHub } from './pushlet.hub.js';
import { MESSAGES } from './pushlet.messages.js';

export { PushletRouteRefusal };

/**
 * What guards see as the class and handler of the built-in endpoints. They carry no metadata, so
 * a guard that lets through only routes marked public (a `@Public()` decorator) refuses them, as
 * it would any unmarked route.
 */
export class PushletEndpoints {
  events(): void {}
  ws(): void {}
}

/**
 * The built-in endpoints as Nest routes: their paths under the app's global prefix, and the app's
 * global guards plus the `routes.guards` option run on every SSE request and WebSocket upgrade
 * before anything is answered. Interceptors, pipes and exception filters do not apply: no
 * handler of the app runs there.
 */
@Injectable()
export class PushletRoutes {
  private resolved: CanActivate[] | undefined;
  private readonly options: ResolvedPushletOptions['routes'];
  /** Counts the requests the guards turn away. */
  private readonly gate: Pick<ConnectionGate, 'refused'>;
  private readonly logger: LoggerService;

  constructor(
    hub: PushletHub,
    private readonly config: ApplicationConfig,
    private readonly moduleRef: ModuleRef,
  ) {
    this.options = hub.options.routes;
    this.gate = hub.admission;
    this.logger = hub.logger;
  }

  /** `path` under the global prefix (unless `routes.useGlobalPrefix` is false). */
  path(path: string): string {
    const prefix = this.options.useGlobalPrefix ? (this.config?.getGlobalPrefix?.() ?? '') : '';
    const trimmed = prefix.replace(/^\/+|\/+$/g, '');
    return trimmed ? `/${trimmed}${path}` : path;
  }

  /**
   * Runs the guards on a request; resolves when every one lets it through, throws a
   * {@link PushletRouteRefusal} (403, or the status of the guard's `HttpException`) otherwise.
   */
  async check(transport: PushletTransport, request: IncomingMessage, response: unknown): Promise<void> {
    const guards = this.guards();
    if (guards.length === 0) return;
    try {
      await this.runGuards(guards, transport, request, response);
    } catch (error) {
      throw this.gate.refused(error);
    }
  }

  /** Whether any guard runs on the endpoints (the app's global guards or `routes.guards`). */
  hasGuards(): boolean {
    try {
      return this.guards().length > 0;
    } catch {
      return true; // an unknown guard class: the route that runs them answers for it
    }
  }

  /** Each guard in turn; the first that does not let the request through refuses it. */
  private async runGuards(guards: readonly CanActivate[], transport: PushletTransport, request: IncomingMessage, response: unknown): Promise<void> {
    const context = new EndpointContext(
      [request, response, undefined],
      transport === 'sse' ? PushletEndpoints.prototype.events : PushletEndpoints.prototype.ws,
    );
    for (const guard of guards) {
      let allowed: boolean;
      try {
        const result = guard.canActivate(context);
        allowed = (isObservable(result) ? await lastValueFrom(result) : await result) === true;
      } catch (error) {
        if (error instanceof HttpException) {
          const body = error.getResponse();
          throw new PushletRouteRefusal(
            error.getStatus(),
            typeof body === 'object' ? (body as Record<string, unknown>) : { statusCode: error.getStatus(), message: String(body) },
          );
        }
        this.logger.warn(`a guard of the ${transport} endpoint threw: ${String(error)}`);
        allowed = false;
      }
      if (!allowed) throw new PushletRouteRefusal(403, { statusCode: 403, message: MESSAGES.routeForbidden });
    }
  }

  private guards(): CanActivate[] {
    const routes = this.options;
    const global = routes.useGlobalGuards ? (this.config?.getGlobalGuards?.() ?? []) : [];
    this.resolved ??= routes.guards.map((guard) => this.resolve(guard));
    return [...global, ...this.resolved];
  }

  private resolve(guard: PushletGuard): CanActivate {
    if (typeof guard !== 'function') return guard;
    try {
      return this.moduleRef.get(guard as Type<CanActivate>, { strict: false });
    } catch {
      throw new Error(MESSAGES.routeGuardUnknown(guard.name));
    }
  }
}

/**
 * The `ExecutionContext` of an SSE request or WebSocket upgrade, for guards. Written here because
 * Nest exports no public one; it answers what a guard of an HTTP route asks.
 */
class EndpointContext implements ExecutionContext {
  constructor(
    private readonly args: unknown[],
    private readonly handler: () => void,
  ) {}

  getType<T extends string = ContextType>(): T {
    return 'http' as T;
  }
  getClass<T = unknown>(): Type<T> {
    return PushletEndpoints as unknown as Type<T>;
  }
  getHandler(): () => void {
    return this.handler;
  }
  getArgs<T extends unknown[] = unknown[]>(): T {
    return this.args as T;
  }
  getArgByIndex<T = unknown>(index: number): T {
    return this.args[index] as T;
  }
  switchToHttp() {
    const [request, response, next] = this.args;
    return {
      getRequest: <T = unknown>() => request as T,
      getResponse: <T = unknown>() => response as T,
      getNext: <T = unknown>() => next as T,
    };
  }
  switchToRpc(): never {
    throw new Error('the Pushlet endpoints are HTTP routes');
  }
  switchToWs(): never {
    throw new Error('the Pushlet endpoints are HTTP routes');
  }
}
