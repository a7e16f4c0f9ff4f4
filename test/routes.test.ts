import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import { Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { WebSocket } from 'ws';
import { PushletEndpoints, PushletModule, type PushletModuleOptions } from '../src/index.js';
import { request, startApp, type TestApp } from './support/app.js';
import { SseClient } from './support/sse-client.js';

/** Refuses everything, as a deny-by-default global guard does. */
@Injectable()
class DenyAll implements CanActivate {
  canActivate(): boolean {
    return false;
  }
}

/** Lets through requests with `x-token: ok` (header or query), with the request's context. */
@Injectable()
class TokenGuard implements CanActivate {
  static seen: Array<{ type: string; cls: unknown; handler: string }> = [];
  canActivate(context: ExecutionContext): boolean {
    TokenGuard.seen.push({ type: context.getType(), cls: context.getClass(), handler: context.getHandler().name });
    const req = context.switchToHttp().getRequest<{ headers: Record<string, string | undefined>; url?: string }>();
    const fromQuery = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
    if (req.headers['x-token'] === 'ok' || fromQuery === 'ok') return true;
    throw new UnauthorizedException('a token is needed');
  }
}

/** The HTTP answer to a WebSocket upgrade that is refused (or 101). */
async function upgradeStatus(url: string): Promise<{ status: number; body: string }> {
  const socket = new WebSocket(url);
  try {
    const [, response] = (await Promise.race([once(socket, 'unexpected-response'), once(socket, 'open').then(() => [undefined, { statusCode: 101 }])])) as [
      unknown,
      { statusCode: number; on?: (event: string, fn: (chunk: Buffer) => void) => void } & NodeJS.EventEmitter,
    ];
    if (response.statusCode === 101) return { status: 101, body: '' };
    let body = '';
    response.on!('data', (chunk: Buffer) => (body += chunk.toString()));
    await once(response, 'end');
    return { status: response.statusCode, body };
  } finally {
    socket.terminate();
  }
}

describe('the built-in endpoints as Nest routes (global prefix, global guards, start-up log)', () => {
  const apps: TestApp[] = [];
  const clients: SseClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const app of apps.splice(0)) await app.close();
  });

  async function start(options: PushletModuleOptions, providers: unknown[] = [], prefix?: string) {
    const lines: string[] = [];
    const logger = { log: (m: unknown) => lines.push(String(m)), warn: (m: unknown) => lines.push(String(m)), error: (m: unknown) => lines.push(String(m)) };
    const t = await startApp(
      { metadata: { imports: [PushletModule.forRoot({ heartbeatInterval: 60_000, logger, ...options })], providers: providers as never[] } },
      (app) => {
        if (prefix) app.setGlobalPrefix(prefix);
      },
    );
    apps.push(t);
    return { t, lines };
  }

  it('honours the global prefix, and names both endpoints and the broker in the start-up log', async () => {
    const { t, lines } = await start({}, [], 'api');
    const sse = await SseClient.open(`${t.url}/api/events?topic=a`);
    clients.push(sse);
    assert.equal(sse.status, 200);
    assert.equal((await request(`${t.url}/events?topic=a`)).status, 404);
    assert.equal((await upgradeStatus(`${t.wsUrl}/api/ws`)).status, 101);
    assert.ok(lines.includes('Mapped {/api/events, GET} route (Pushlet Server-Sent Events)'), lines.join('\n'));
    assert.ok(
      lines.some((l) => l.startsWith('Mapped {/api/ws} WebSocket endpoint')),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => l.startsWith('broker: in memory')),
      lines.join('\n'),
    );
  });

  it('keeps its own paths with routes.useGlobalPrefix false', async () => {
    const { t } = await start({ routes: { useGlobalPrefix: false } }, [], 'api');
    const sse = await SseClient.open(`${t.url}/events?topic=a`);
    clients.push(sse);
    assert.equal(sse.status, 200);
    assert.equal((await upgradeStatus(`${t.wsUrl}/ws`)).status, 101);
  });

  it('is protected by a deny-all APP_GUARD like every other route: 403 before any stream or upgrade', async () => {
    const { t } = await start({}, [{ provide: APP_GUARD, useClass: DenyAll }]);
    const refused = await request(`${t.url}/events?topic=a`);
    assert.equal(refused.status, 403);
    assert.deepEqual(JSON.parse(refused.body), { statusCode: 403, message: 'Forbidden resource' });
    assert.notEqual(refused.headers.get('content-type'), 'text/event-stream');
    const upgrade = await upgradeStatus(`${t.wsUrl}/ws`);
    assert.equal(upgrade.status, 403);
    assert.equal(JSON.parse(upgrade.body).statusCode, 403);
    assert.equal(t.pushlet.stats().connections.total, 0);
  });

  it('runs the global guards with the request, answering their HttpException; routes.useGlobalGuards false turns them off', async () => {
    TokenGuard.seen = [];
    const { t } = await start({}, [{ provide: APP_GUARD, useClass: TokenGuard }]);
    const refused = await request(`${t.url}/events?topic=a`);
    assert.equal(refused.status, 401);
    assert.equal(JSON.parse(refused.body).message, 'a token is needed');
    const allowed = await SseClient.open(`${t.url}/events?topic=a`, { 'x-token': 'ok' });
    clients.push(allowed);
    assert.equal(allowed.status, 200);
    assert.equal((await upgradeStatus(`${t.wsUrl}/ws`)).status, 401);
    assert.equal((await upgradeStatus(`${t.wsUrl}/ws?token=ok`)).status, 101);
    assert.deepEqual(TokenGuard.seen[0], { type: 'http', cls: PushletEndpoints, handler: 'events' });
    assert.ok(TokenGuard.seen.some((s) => s.handler === 'ws'));

    const { t: open } = await start({ routes: { useGlobalGuards: false } }, [{ provide: APP_GUARD, useClass: DenyAll }]);
    const sse = await SseClient.open(`${open.url}/events?topic=a`);
    clients.push(sse);
    assert.equal(sse.status, 200);
  });

  it('runs the guards named in routes.guards (a provider class or an instance) on the built-in endpoints only', async () => {
    const { t } = await start({ routes: { guards: [TokenGuard] } }, [TokenGuard]);
    assert.equal((await request(`${t.url}/events?topic=a`)).status, 401);
    assert.equal((await upgradeStatus(`${t.wsUrl}/ws?token=ok`)).status, 101);
    const { t: second } = await start({ routes: { guards: [new DenyAll()] } });
    assert.equal((await request(`${second.url}/events?topic=a`)).status, 403);
  });
});
