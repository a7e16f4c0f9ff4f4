import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { afterEach, describe, it } from 'node:test';
import { Controller, Query, Req, Sse } from '@nestjs/common';
import {
  PushletModule,
  PushletService,
  PushletValidationError,
  type PushletAuthorizeContext,
  type PushletClientPublishContext,
  type PushletIdentity,
  type PushletModuleOptions,
} from '../src/index.js';
import type { TestApp } from './support/app.js';
import { perTestApps } from './support/app.js';
import { WsClient } from './support/ws-client.js';
import { until, within } from './support/wait.js';

/**
 * The test's `authenticate`: the token (a `refresh` command's, else `?token=`) says who it is.
 * `u:<id>` or `u:<id>:<ms to expiry>` is an identity; `throw` throws; `invalid` returns an object
 * without an id; anything else (or none) is a no. Every identity handed out is recorded.
 */
function tokenAuth(issued: PushletIdentity[] = []): NonNullable<PushletModuleOptions['authenticate']> {
  return async (request, { token }) => {
    const value = token ?? new URL(request.url ?? '/', 'http://x').searchParams.get('token') ?? '';
    if (value === 'throw') throw new Error('the token service is down');
    if (value === 'invalid') return { name: 'no id' } as unknown as PushletIdentity;
    const match = /^u:([a-z]+)(?::(\d+))?$/.exec(value);
    if (!match) return false;
    const identity: PushletIdentity = match[2] ? { id: match[1]!, expiresAt: Date.now() + Number(match[2]) } : { id: match[1]! };
    issued.push(identity);
    return identity;
  };
}

/** A WebSocket upgrade sent by hand: what the server answered, status, headers and body, when it did not upgrade. */
function rawUpgrade(url: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const request = http.get(url, {
        headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Version': '13' },
      });
      request.on('upgrade', (_response, socket) => {
        socket.destroy();
        reject(new Error('the server upgraded the connection'));
      });
      request.on('response', (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      });
      request.on('error', reject);
    }),
    5_000,
    `the answer to an upgrade of ${url}`,
  );
}

@Controller('app')
class FeedController {
  constructor(private readonly pushlet: PushletService) {}

  /** The app's own SSE route: its guard (here: `?user=`) found who it is. */
  @Sse('feed')
  feed(@Query('topic') topic: string, @Query('user') user: string, @Req() request: IncomingMessage) {
    return this.pushlet.stream(topic, { request, identity: { id: user, role: 'reader' } });
  }
}

describe('identity: authenticate, expiry and refresh, per-user limit, disconnect, client publishing', () => {
  const { app, open } = perTestApps();
  const sockets: WsClient[] = [];
  const ws = async (t: TestApp, path: string): Promise<WsClient> => {
    const client = await WsClient.open(t.wsUrl + path);
    sockets.push(client);
    return client;
  };
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.close();
  });

  describe('authenticate', () => {
    it('answers 401 with a JSON {statusCode, message} before any SSE header, for a no, a throw and an invalid identity', async () => {
      const t = await app({ authenticate: tokenAuth() });
      for (const token of ['', 'nope', 'throw', 'invalid', '<script>alert(1)</script>']) {
        const stream = await open(t, `/events?topic=a&token=${encodeURIComponent(token)}`);
        assert.equal(stream.status, 401, `token ${JSON.stringify(token)}`);
        assert.match(String(stream.headers['content-type']), /^application\/json/);
        const body = JSON.parse(stream.body) as { statusCode: number; message: string };
        assert.deepEqual(body, { statusCode: 401, message: 'authentication required or refused' });
      }
      assert.equal(t.pushlet.stats().refused.unauthenticated, 5);
      assert.equal(t.pushlet.stats().connections.total, 0);
    });

    it('answers an HTTP 401 to a WebSocket upgrade: no socket is opened', async () => {
      const t = await app({ authenticate: tokenAuth() });
      for (const token of ['', 'throw', 'invalid']) {
        assert.equal(await WsClient.refusal(`${t.wsUrl}/ws?topic=a&token=${token}`), 401);
      }
      const answer = await rawUpgrade(`${t.url}/ws?token=%3Cscript%3E`);
      assert.equal(answer.status, 401);
      assert.match(String(answer.headers['content-type']), /^application\/json/);
      assert.deepEqual(JSON.parse(answer.body), { statusCode: 401, message: 'authentication required or refused' });
      assert.equal(t.pushlet.stats().refused.unauthenticated, 4);
      assert.equal(t.pushlet.stats().connections.total, 0);
    });

    it('refuses an identity that has already expired', async () => {
      const t = await app({ authenticate: () => ({ id: 'ann', expiresAt: Date.now() - 1 }) });
      const stream = await open(t, '/events?topic=a');
      assert.equal(stream.status, 401);
      assert.match(JSON.parse(stream.body).message, /expired/);
      assert.equal(await WsClient.refusal(`${t.wsUrl}/ws`), 401);
    });

    it('tells authorize who is asking, on both transports; without the option connections are anonymous', async () => {
      const asked: PushletAuthorizeContext[] = [];
      const t = await app({ authenticate: tokenAuth(), authorize: (context) => (asked.push(context), context.topic !== 'secret') });
      const stream = await open(t, '/events?topic=a&token=u:ann');
      await stream.waitForEvents(1, 5_000, 'pushlet:connected');
      const socket = await ws(t, '/ws?topic=b&token=u:bob');
      await socket.waitForEvents('pushlet:connected');
      const refused = await socket.call({ action: 'subscribe', topic: 'secret', ref: 1 });
      assert.equal(refused.event, 'pushlet:error');
      assert.deepEqual(
        asked.map(({ topic, transport, identity }) => [topic, transport, identity]),
        [
          ['a', 'sse', { id: 'ann' }],
          ['b', 'ws', { id: 'bob' }],
          ['secret', 'ws', { id: 'bob' }],
        ],
      );

      const anonymous: PushletAuthorizeContext[] = [];
      const plain = await app({ authorize: (context) => (anonymous.push(context), true) });
      const free = await ws(plain, '/ws?topic=c&token=u:ann');
      await free.waitForEvents('pushlet:connected');
      assert.equal(anonymous[0]!.identity, null);
    });
  });

  describe('expiry and refresh', () => {
    it('WebSocket: an identity that expires gets pushlet:expired, then close 4001', async () => {
      const t = await app({ authenticate: tokenAuth() });
      const socket = await ws(t, '/ws?topic=a&token=u:ann:300');
      await socket.waitForEvents('pushlet:connected');
      const closed = await socket.waitForClose(5_000);
      assert.equal(closed.code, 4001);
      assert.deepEqual(
        socket.received.map((frame) => frame.event),
        ['pushlet:connected', 'pushlet:expired'],
      );
      await until(() => t.pushlet.stats().connections.total === 0, 5_000, 'the connection released');
    });

    it('SSE: an identity that expires gets pushlet:expired, then the stream ends cleanly', async () => {
      const t = await app({ authenticate: tokenAuth() });
      const stream = await open(t, '/events?topic=a&token=u:ann:300');
      assert.equal(stream.status, 200);
      await stream.waitForEvents(1, 5_000, 'pushlet:expired');
      await stream.waitForEnd(5_000);
      assert.deepEqual(
        stream.events.map((e) => e.event),
        ['pushlet:connected', 'pushlet:expired'],
      );
      await until(() => t.pushlet.stats().connections.total === 0, 5_000, 'the stream released');
    });

    it('SSE: an identity that expires while its topics are checked is told once the stream has started', async () => {
      const errors: string[] = [];
      const logger = { log: () => undefined, warn: () => undefined, error: (message: unknown) => errors.push(String(message)) };
      const t = await app({
        logger,
        authenticate: tokenAuth(),
        authorize: () => new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 300)),
      });
      const stream = await open(t, '/events?topic=a&token=u:ann:50');
      assert.equal(stream.status, 200);
      await stream.waitForEvents(1, 5_000, 'pushlet:expired');
      await stream.waitForEnd();
      assert.deepEqual(
        stream.events.map((e) => e.event),
        ['pushlet:connected', 'pushlet:expired'],
      );
      assert.deepEqual(errors, []);
    });

    it('a refresh before expiry re-arms the timer with the new identity; a refused one changes nothing', async () => {
      const issued: PushletIdentity[] = [];
      const t = await app({ authenticate: tokenAuth(issued) });
      const socket = await ws(t, '/ws?topic=a&token=u:ann:400');
      await socket.waitForEvents('pushlet:connected');
      const refused = await socket.call({ action: 'refresh', token: 'nope', ref: 'r0' });
      assert.equal(refused.event, 'pushlet:error');
      const otherUser = await socket.call({ action: 'refresh', token: 'u:bob:5000', ref: 'r1' });
      assert.equal(otherUser.event, 'pushlet:error');
      assert.match(String(otherUser.data), /same user/);

      const reply = await socket.call({ action: 'refresh', token: 'u:ann:1500', ref: 'r2' });
      assert.equal(reply.event, 'pushlet:refreshed');
      const renewed = issued.at(-1)!;
      assert.deepEqual(JSON.parse(String(reply.data)), { expiresAt: renewed.expiresAt });
      const first = issued[0]!.expiresAt!;
      const closed = await socket.waitForClose(5_000);
      assert.equal(closed.code, 4001);
      // Closed by the new expiry, not the first one (which would have come about a second earlier).
      assert.ok(Date.now() >= renewed.expiresAt!, 'not before the renewed expiry');
      assert.ok(renewed.expiresAt! - first >= 1_000);
    });

    it('a refresh to an identity without expiresAt stops the timer; refresh needs the authenticate option', async () => {
      const issued: PushletIdentity[] = [];
      const t = await app({ authenticate: tokenAuth(issued) });
      const socket = await ws(t, '/ws?topic=a&token=u:ann:300');
      await socket.waitForEvents('pushlet:connected');
      const reply = await socket.call({ action: 'refresh', token: 'u:ann', ref: 1 });
      assert.deepEqual(JSON.parse(String(reply.data)), { expiresAt: null });
      // Nothing happens when a timer is gone: only time can tell. Past the first expiry, a round trip.
      const firstExpiry = issued[0]!.expiresAt!;
      await until(() => Date.now() > firstExpiry + 200, 2_000, 'past the first expiry');
      assert.equal((await socket.call({ action: 'ping', ref: 'alive' })).event, 'pushlet:pong');
      const plain = await app();
      const anonymous = await ws(plain, '/ws');
      const unsupported = await anonymous.call({ action: 'refresh', token: 'x', ref: 2 });
      assert.equal(unsupported.event, 'pushlet:error');
      assert.match(String(unsupported.data), /authenticate/);
      assert.equal(socket.closed, undefined);
    });
  });

  describe('limits.maxConnectionsPerUser', () => {
    it('counts one user across both transports: 503 on SSE, close 1013 on WebSocket; other users unaffected', async () => {
      const t = await app({ authenticate: tokenAuth(), limits: { maxConnectionsPerUser: 2 } });
      const stream = await open(t, '/events?topic=a&token=u:ann');
      await stream.waitForEvents(1, 5_000, 'pushlet:connected');
      const socket = await ws(t, '/ws?topic=a&token=u:ann');
      await socket.waitForEvents('pushlet:connected');

      const third = await open(t, '/events?topic=a&token=u:ann');
      assert.equal(third.status, 503);
      assert.match(JSON.parse(third.body).message, /too many connections of this user/);
      const fourth = await ws(t, '/ws?topic=a&token=u:ann');
      assert.equal((await fourth.waitForClose()).code, 1013);
      const bob = await ws(t, '/ws?topic=a&token=u:bob');
      await bob.waitForEvents('pushlet:connected');
      assert.equal(t.pushlet.stats().refused.user_limit, 2);

      // A slot is released when a connection ends.
      socket.close();
      await until(() => t.pushlet.stats().connections.ws === 1, 5_000, "ann's WebSocket released");
      const again = await ws(t, '/ws?topic=a&token=u:ann');
      await again.waitForEvents('pushlet:connected');
    });
  });

  describe('disconnect(userId)', () => {
    it('closes every connection of that user: SSE gets pushlet:disconnected and ends, WebSocket closes with 4002 and the reason', async () => {
      const t = await app({ authenticate: tokenAuth() });
      const stream = await open(t, '/events?topic=a&token=u:ann');
      await stream.waitForEvents(1, 5_000, 'pushlet:connected');
      const socket = await ws(t, '/ws?topic=a&token=u:ann');
      await socket.waitForEvents('pushlet:connected');
      const bob = await ws(t, '/ws?topic=a&token=u:bob');
      await bob.waitForEvents('pushlet:connected');

      assert.equal(await t.pushlet.disconnect('ann', 'account suspended'), 2);
      const [notice] = await stream.waitForEvents(1, 5_000, 'pushlet:disconnected');
      assert.equal(notice!.data, 'account suspended');
      await stream.waitForEnd();
      assert.deepEqual(await socket.waitForClose(), { code: 4002, reason: 'account suspended' });
      assert.equal(socket.events('pushlet:disconnected')[0]!.data, 'account suspended');

      assert.equal((await bob.call({ action: 'ping', ref: 'still' })).event, 'pushlet:pong');
      assert.equal(await t.pushlet.disconnect('ann'), 0, 'nobody left to close');
      assert.equal(await t.pushlet.disconnect('nobody'), 0);
    });

    it('an SSE request still being admitted is cut without a response, and nothing fails', async () => {
      const errors: string[] = [];
      const logger = { log: () => undefined, warn: () => undefined, error: (message: unknown) => errors.push(String(message)) };
      let admitted!: () => void;
      let release!: (allowed: boolean) => void;
      const asked = new Promise<void>((resolve) => (admitted = resolve));
      const held = new Promise<boolean>((resolve) => (release = resolve));
      const t = await app({ logger, authenticate: tokenAuth(), authorize: () => (admitted(), held) });
      const opening = open(t, '/events?topic=a&token=u:ann');
      await within(asked, 5_000, 'authorize asked');
      assert.equal(await t.pushlet.disconnect('ann', 'not now'), 1);
      release(true);
      await assert.rejects(opening, /socket hang up|ECONNRESET/);
      await until(() => t.pushlet.stats().connections.total === 0, 5_000, 'the slot released');
      assert.deepEqual(errors, []);
    });

    it('cuts a long reason to 123 bytes of UTF-8 (a whole character) and rejects a bad user id', async () => {
      const t = await app({ authenticate: tokenAuth() });
      const socket = await ws(t, '/ws?token=u:ann');
      await socket.waitForEvents('pushlet:connected');
      assert.equal(await t.pushlet.disconnect('ann', 'ü'.repeat(200)), 1);
      const closed = await socket.waitForClose();
      assert.equal(closed.code, 4002);
      assert.equal(closed.reason, 'ü'.repeat(61), '61 two-byte characters fit in 123 bytes');
      await assert.rejects(t.pushlet.disconnect(''), PushletValidationError);
      await assert.rejects(t.pushlet.disconnect(42 as unknown as string), PushletValidationError);
      await assert.rejects(t.pushlet.disconnect('x'.repeat(2_000)), PushletValidationError);
      await assert.rejects(t.pushlet.disconnect('ann', { evil: true } as unknown as string), PushletValidationError);
    });
  });

  describe('stream({ identity })', () => {
    it('tells authorize the identity, counts it against the per-user limit and closes it on disconnect', async () => {
      const asked: PushletAuthorizeContext[] = [];
      const options: PushletModuleOptions = {
        heartbeatInterval: 60_000,
        authorize: (context) => (asked.push(context), true),
        limits: { maxConnectionsPerUser: 1 },
      };
      const t = await app({ metadata: { imports: [PushletModule.forRoot(options)], controllers: [FeedController] } } as never);
      const stream = await open(t, '/app/feed?topic=news&user=ann');
      await stream.waitForEvents(1, 5_000, 'pushlet:connected');
      assert.deepEqual(asked[0]!.identity, { id: 'ann', role: 'reader' });
      const second = await open(t, '/app/feed?topic=news&user=ann');
      assert.equal(second.status, 503);

      assert.equal(await t.pushlet.disconnect('ann', 'bye'), 1);
      const [notice] = await stream.waitForEvents(1, 5_000, 'pushlet:disconnected');
      assert.equal(notice!.data, 'bye');
      await stream.waitForEnd();
    });
  });

  describe('clients that publish', () => {
    it('refuses every client publication by default', async () => {
      const t = await app({ authenticate: tokenAuth() });
      const socket = await ws(t, '/ws?token=u:ann');
      const reply = await socket.call({ action: 'publish', topic: 'room/1', event: 'chat', data: 'hi', ref: 'p' });
      assert.deepEqual([reply.event, reply.topic, reply.data], ['pushlet:error', 'room/1', 'not allowed to publish to "room/1"']);
      assert.equal(t.pushlet.stats().publishedBy.client, 0);
    });

    it('publishes where authorizePublish says yes, answering pushlet:published with the id subscribers see', async () => {
      const contexts: PushletClientPublishContext[] = [];
      const t = await app({
        authenticate: tokenAuth(),
        authorizePublish: (context) => (contexts.push(context), context.identity?.id === 'ann' && context.topic.startsWith('room/')),
      });
      const bob = await ws(t, '/ws?topic=room/1&token=u:bob');
      await bob.waitForEvents('pushlet:connected');
      const ann = await ws(t, '/ws?token=u:ann');
      const reply = await ann.call({ action: 'publish', topic: 'room/1', event: 'chat', data: { text: 'hi' }, ref: 'p1' });
      assert.equal(reply.event, 'pushlet:published');
      assert.equal(typeof reply.id, 'string');
      const [message] = await bob.waitForMessages(1);
      assert.deepEqual([message!.id, message!.topic, message!.event, message!.data], [reply.id, 'room/1', 'chat', '{"text":"hi"}']);
      assert.equal(contexts[0]!.data, '{"text":"hi"}');
      assert.equal(contexts[0]!.request.url?.startsWith('/ws'), true);

      const refused = await bob.call({ action: 'publish', topic: 'room/1', data: 'me too', ref: 'p2' });
      assert.equal(refused.event, 'pushlet:error');
      const outside = await ann.call({ action: 'publish', topic: 'news', data: 'x', ref: 'p3' });
      assert.equal(outside.event, 'pushlet:error');
      assert.equal(t.pushlet.stats().publishedBy.client, 1);
    });

    it('lets onClientPublish change or refuse a message; a hook that throws refuses it and keeps the connection', async () => {
      const t = await app({
        authenticate: tokenAuth(),
        authorizePublish: () => true,
        onClientPublish: ({ event, data, identity }) => {
          if (event === 'boom') throw new Error('hook failed');
          if (event === 'blocked') return false;
          if (event === 'chat') return { data: { text: data, from: identity?.id } };
          return undefined;
        },
      });
      const bob = await ws(t, '/ws?topic=room&token=u:bob');
      await bob.waitForEvents('pushlet:connected');
      const ann = await ws(t, '/ws?token=u:ann');
      assert.equal((await ann.call({ action: 'publish', topic: 'room', event: 'chat', data: 'hi', ref: 1 })).event, 'pushlet:published');
      assert.equal((await ann.call({ action: 'publish', topic: 'room', event: 'blocked', data: 'x', ref: 2 })).event, 'pushlet:error');
      assert.equal((await ann.call({ action: 'publish', topic: 'room', event: 'boom', data: 'x', ref: 3 })).event, 'pushlet:error');
      assert.equal((await ann.call({ action: 'publish', topic: 'room', event: 'plain', data: 'as is', ref: 4 })).event, 'pushlet:published');
      const messages = await bob.waitForMessages(2);
      assert.deepEqual(
        messages.map((m) => [m.event, m.data]),
        [
          ['chat', '{"text":"hi","from":"ann"}'],
          ['plain', 'as is'],
        ],
      );
      assert.equal(ann.closed, undefined);
    });

    it('applies the same validation and size limit as server-side publishing', async () => {
      const t = await app({
        authenticate: tokenAuth(),
        authorizePublish: () => true,
        onClientPublish: ({ event }) => (event === 'rename' ? { event: 'pushlet:forged' } : undefined),
        limits: { maxMessageBytes: 1024 },
      });
      const ann = await ws(t, '/ws?token=u:ann');
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ topic: 'room', event: 'pushlet:join', data: 'x' }, /pushlet:/],
        [{ topic: 'room/*', data: 'x' }, /./],
        [{ topic: '', data: 'x' }, /./],
        [{ topic: 'room', event: 'a\nb', data: 'x' }, /./],
        [{ topic: 'room', data: 'x'.repeat(2_000) }, /too large|bytes/],
        [{ topic: 'room', event: 'rename', data: 'x' }, /pushlet:/],
      ];
      for (const [index, [fields, reason]] of cases.entries()) {
        const reply = await ann.call({ action: 'publish', ...fields, ref: index });
        assert.equal(reply.event, 'pushlet:error', JSON.stringify(fields).slice(0, 80));
        assert.match(String(reply.data), reason);
      }
      assert.equal(t.pushlet.stats().publishedBy.client, 0);
      assert.equal(ann.closed, undefined);
    });

    it('counts publications against the command rate limit: a flood closes with 1008', async () => {
      const t = await app({ authenticate: tokenAuth(), authorizePublish: () => true, ws: { commandsPerSecond: 5 } });
      const ann = await ws(t, '/ws?token=u:ann');
      await ann.waitForEvents('pushlet:connected');
      for (let i = 0; i < 30; i += 1) ann.send({ action: 'publish', topic: 'room', data: `m${i}`, ref: i });
      assert.equal((await ann.waitForClose()).code, 1008);
      assert.ok(t.pushlet.stats().publishedBy.client <= 5);
    });
  });
});
