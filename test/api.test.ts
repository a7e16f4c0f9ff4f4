import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import { Body, Controller, Get, Headers, Injectable, Param, Post, Query, Req, Sse, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { firstValueFrom, take, toArray } from 'rxjs';
import { PushletModule, PushletPublish, PushletService, type PushletMessage } from '../src/index.js';
import { SseClient } from './support/sse-client.js';
import { PushletHub } from '../src/pushlet.hub.js';
import { request, startApp, type TestApp } from './support/app.js';
import { eventually, until, within } from './support/wait.js';

/** An async guard that decides only after the test lets it (the Nest issue where SSE headers go out first). */
@Injectable()
class SlowTokenGuard implements CanActivate {
  static entered = false;
  static release: () => void = () => undefined;
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<IncomingMessage>();
    if (req.headers['x-slow'] === '1') {
      await new Promise<void>((resolve) => {
        SlowTokenGuard.release = resolve;
        SlowTokenGuard.entered = true;
      });
    }
    return req.headers['authorization'] === 'Bearer ok';
  }
}

@Controller('orders')
class OrdersController {
  constructor(private readonly pushlet: PushletService) {}

  @Post(':id/ship')
  @PushletPublish((_result, req) => `orders/${req.params.id}`, 'shipped')
  ship(@Param('id') id: string, @Body() body: { note?: string }) {
    return { id, note: body?.note ?? null };
  }

  @Post('bulk')
  @PushletPublish('orders/bulk')
  bulk() {
    return 'bulk done';
  }

  @Post('bad')
  @PushletPublish(() => 'bad topic with spaces')
  bad() {
    return 'never published';
  }

  @Sse('feed')
  @UseGuards(SlowTokenGuard)
  feed(@Query('topic') topic: string | string[], @Headers('last-event-id') lastEventId: string | undefined, @Req() req: IncomingMessage) {
    return this.pushlet.stream(topic, { lastEventId, request: req });
  }

  @Get('open-feed')
  @Sse()
  openFeed(@Query('topic') topic: string) {
    return this.pushlet.stream(topic);
  }
}

describe('public API: stream() in a user route, @PushletPublish, subscribe()', () => {
  let t: TestApp;
  const clients: SseClient[] = [];
  const open = async (path: string, headers?: Record<string, string>) => {
    const client = await SseClient.open(t.url + path, headers);
    clients.push(client);
    return client;
  };

  before(async () => {
    t = await startApp({
      metadata: { imports: [PushletModule.forRoot({ heartbeatInterval: 60_000 })], controllers: [OrdersController], providers: [SlowTokenGuard] },
    });
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(async () => {
    await t.close();
  });

  it('@PushletPublish publishes the handler result on a topic computed from the request', async () => {
    const client = await open('/events?topic=orders/42');
    await client.waitForEvents(1);
    const response = await request(`${t.url}/orders/42/ship`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ note: 'fragile' }),
    });
    assert.equal(response.status, 201);
    assert.deepEqual(JSON.parse(response.body), { id: '42', note: 'fragile' });
    const [shipped] = await client.waitForEvents(1, 5_000, 'shipped');
    assert.deepEqual(JSON.parse(shipped!.data), { id: '42', note: 'fragile' });
  });

  it('@PushletPublish with a fixed topic and the default event; a bad computed topic is a 400', async () => {
    const client = await open('/events?topic=orders/bulk');
    await client.waitForEvents(1);
    assert.equal((await request(`${t.url}/orders/bulk`, { method: 'POST' })).status, 201);
    const [message] = await client.waitForEvents(1, 5_000, 'message');
    assert.equal(message!.data, 'bulk done');
    const bad = await request(`${t.url}/orders/bad`, { method: 'POST' });
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.body).message, /whitespace/);
  });

  it('stream() serves a user @Sse route behind a guard; no header goes out before the async guard decides', async () => {
    const denied = await request(`${t.url}/orders/feed?topic=a`);
    assert.equal(denied.status, 403);

    const pending = SseClient.open(`${t.url}/orders/feed?topic=guarded`, { authorization: 'Bearer ok', 'x-slow': '1' });
    let responded = false;
    void pending.then(
      () => (responded = true),
      () => undefined,
    );
    // The guard holds the request: wait until the server is inside it, then check nothing was sent.
    await until(() => SlowTokenGuard.entered || responded, 5_000, 'the guard to be entered');
    assert.equal(responded, false, 'headers were sent before the guard decided');
    SlowTokenGuard.release();
    const client = await pending;
    clients.push(client);
    assert.equal(client.status, 200);
    assert.equal(client.headers['content-type'], 'text/event-stream');
    const [connected] = await client.waitForEvents(1, 5_000, 'pushlet:connected');
    assert.deepEqual(JSON.parse(connected!.data).topics, ['guarded']);
    const published = await t.pushlet.publish('guarded', 'note', 'line1\nline2');
    const [note] = await client.waitForEvents(1, 5_000, 'note');
    assert.equal(note!.id, published.id);
    assert.equal(note!.data, 'line1\nline2');
    assert.equal(t.pushlet.stats().connections.sse, 1, 'stream() with request counts the connection');
  });

  it('stream() resumes from Last-Event-ID in a user route', async () => {
    const first = await t.pushlet.publish('resumable', 'message', 'one');
    await t.pushlet.publish('resumable', 'message', 'two');
    await t.pushlet.publish('resumable', 'message', 'three');
    const client = await open('/orders/feed?topic=resumable', { authorization: 'Bearer ok', 'last-event-id': first.id });
    const messages = await client.waitForEvents(2, 5_000, 'message');
    assert.deepEqual(
      messages.map((m) => m.data),
      ['two', 'three'],
    );
  });

  it('stream() names the reset of a resume that cannot continue in pushlet:connected, then sends the reset frame (issue 21)', async () => {
    await t.pushlet.publish('unresumable', 'message', 'one');
    const client = await open('/orders/feed?topic=unresumable', { authorization: 'Bearer ok', 'last-event-id': 'not-an-id' });
    const [connected] = await client.waitForEvents(1, 5_000, 'pushlet:connected');
    const [reset] = await client.waitForEvents(1, 5_000, 'pushlet:reset');
    const named = JSON.parse(connected!.data).reset;
    assert.deepEqual(named, JSON.parse(reset!.data));
    assert.deepEqual(named.topics, ['unresumable']);
    assert.ok(connected!.id, 'with its new id');
  });

  it('stream() answers 400 for a bad topic in a user route', async () => {
    const response = await request(`${t.url}/orders/open-feed?topic=bad%20topic`);
    assert.equal(response.status, 400);
  });

  it('subscribe() gives server-side consumers the messages of their topics, and releases them', async () => {
    const received = firstValueFrom(t.pushlet.subscribe(['jobs/a', 'jobs/b']).pipe(take(2), toArray()));
    await until(() => t.pushlet.stats().topics >= 2, 5_000, 'subscription');
    await t.pushlet.publishToAll('message', 'not for server-side consumers by default');
    await t.pushlet.publish('jobs/a', 'done', 1);
    await t.pushlet.publish('jobs/c', 'done', 'other');
    await t.pushlet.publish('jobs/b', 'done', 2);
    const messages: PushletMessage[] = await within(received, 5_000, 'two messages');
    assert.deepEqual(
      messages.map((m) => [m.topic, m.data]),
      [
        ['jobs/a', '1'],
        ['jobs/b', '2'],
      ],
    );
    await until(() => t.pushlet.stats().topics === 0, 5_000, 'topics released');
  });

  it('keeps one Subject per topic with subscribers and none without: 10,000 subscribe/unsubscribe cycles leave the registry empty', async () => {
    const before = t.pushlet.stats();
    for (let i = 0; i < 10_000; i++) {
      const subscription = t.pushlet.subscribe([`churn/${i % 100}`, 'churn/shared']).subscribe();
      subscription.unsubscribe();
    }
    const held = Array.from({ length: 50 }, () => t.pushlet.subscribe('churn/held').subscribe());
    // A subscription reads the broker's position before it joins the topic's Subject.
    await eventually(async () => t.pushlet.stats().subscribers === before.subscribers + 50, 5_000, 'the fifty subscriptions');
    assert.equal(t.pushlet.stats().topics, before.topics + 1, 'fifty subscribers of one topic share one Subject');
    for (const subscription of held) subscription.unsubscribe();
    const after = t.pushlet.stats();
    assert.equal(after.topics, before.topics);
    assert.equal(after.subscribers, before.subscribers);
  });
});

describe('shutdown', () => {
  it('once shutdown has begun, a stream() route answers 503 and subscribe() errors: no session is left that nothing ends', async () => {
    const t = await startApp({
      metadata: { imports: [PushletModule.forRoot({ heartbeatInterval: 60_000 })], controllers: [OrdersController], providers: [SlowTokenGuard] },
    });
    try {
      const hub = t.app.get(PushletHub);
      await hub.beforeApplicationShutdown();
      const response = await within(request(`${t.url}/orders/open-feed?topic=a`), 5_000, 'the answer to a stream request during shutdown');
      assert.equal(response.status, 503);
      assert.match(response.body, /server shutting down/);
      const failure = await new Promise<unknown>((resolve) => t.pushlet.subscribe('a').subscribe({ error: resolve, complete: () => resolve('completed') }));
      assert.match(String(failure), /server shutting down/);
      assert.equal(hub.sessions.size, 0);
    } finally {
      await within(t.close(), 5_000, 'app.close()');
    }
  });

  it('app.close() ends every open SSE stream promptly and returns', async () => {
    const t = await startApp({ heartbeatInterval: 60_000 });
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => SseClient.open(`${t.url}/events?topic=s${i % 3}`)));
    await Promise.all(clients.map((c) => c.waitForEvents(1)));
    // One client stops reading with data queued: shutdown must not wait for it.
    clients[0]!.pause();
    for (let i = 0; i < 20; i++) await t.pushlet.publish('s0', 'message', 'y'.repeat(32 * 1024));
    const started = Date.now();
    await within(t.close(), 5_000, 'app.close()');
    clients[0]!.resume();
    await Promise.all(clients.map((c) => c.waitForEnd(5_000)));
    assert.ok(Date.now() - started < 5_000);
    for (const client of clients) client.close();
  });
});
