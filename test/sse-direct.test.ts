import assert from 'node:assert/strict';
import { IncomingMessage, type ServerResponse } from 'node:http';
import { afterEach, describe, it } from 'node:test';
import type { CanActivate } from '@nestjs/common';
import { request as get, startApp, type TestApp } from './support/app.js';
import { SseClient } from './support/sse-client.js';

/**
 * How `GET /events` reaches the SSE route: taken off the HTTP server before Express when the app
 * adds nothing to it (Express's per-request objects, kept alive by an open stream, are never
 * made), through Express's route when middleware or guards must run.
 */
describe('SSE route: served before Express unless the app adds to it', () => {
  const apps: TestApp[] = [];
  const clients: SseClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const app of apps.splice(0)) await app.close();
  });

  /** An app whose `authorize` records the request it is given; the stream opened on `path`. */
  const serve = async (configure?: Parameters<typeof startApp>[1], path = '/events?topic=t') => {
    const seen: IncomingMessage[] = [];
    const t = await startApp(
      {
        heartbeatInterval: 60_000,
        authorize: ({ request }) => {
          seen.push(request);
          return true;
        },
      },
      configure,
    );
    apps.push(t);
    const client = await SseClient.open(`${t.url}${path}`);
    clients.push(client);
    await client.waitForEvents(1, 5_000, 'pushlet:connected');
    await t.pushlet.publish('t', 'hello', 'there');
    const [message] = await client.waitForEvents(1, 5_000, 'hello');
    assert.equal(message!.data, 'there');
    return { t, request: seen[0]! };
  };

  it('gives Node’s own request to the route when the app has no middleware or guard of its own', async () => {
    const { t, request } = await serve();
    assert.equal(Object.getPrototypeOf(request), IncomingMessage.prototype, 'Express never saw the request');
    assert.equal((request as { res?: unknown }).res, undefined);
    // The app still serves everything else.
    assert.equal((await get(`${t.url}/nope`)).status, 404);
    const refused = await get(`${t.url}/events?format=nope`);
    assert.equal(refused.status, 400);
  });

  it('serves the path spelled another way through Express’s route', async () => {
    const { request } = await serve(undefined, '/events/?topic=t');
    assert.notEqual(Object.getPrototypeOf(request), IncomingMessage.prototype, 'served by Express');
  });

  it('goes through Express when the app has middleware, which sees the request', async () => {
    let ran = 0;
    const { request } = await serve((app) => {
      app.use((_req: IncomingMessage, _res: ServerResponse, next: () => void) => {
        ran += 1;
        next();
      });
    });
    assert.equal(ran, 1);
    assert.notEqual(Object.getPrototypeOf(request), IncomingMessage.prototype);
  });

  it('goes through Express when a global guard runs, with the guard before the stream', async () => {
    let asked = 0;
    const guard: CanActivate = {
      canActivate: () => {
        asked += 1;
        return true;
      },
    };
    await serve((app) => {
      app.useGlobalGuards(guard);
    });
    assert.equal(asked, 1);
  });

  it('serves under the global prefix', async () => {
    const { request } = await serve((app) => {
      app.setGlobalPrefix('api');
    }, '/api/events?topic=t');
    assert.equal(Object.getPrototypeOf(request), IncomingMessage.prototype);
  });
});
