import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import {
  PushletClient,
  PushletClientError,
  PushletCommandError,
  PushletConnectionError,
  type ClientMessage,
  type PushletClientOptions,
} from '../src/client/index.js';
import { CLIENT_TEXTS } from '../src/client/client-errors.js';
import type { PushletIdentity, PushletModuleOptions } from '../src/index.js';
import { PushletHub } from '../src/pushlet.hub.js';
import { startApp, type TestApp } from './support/app.js';
import { until, within } from './support/wait.js';

const FAST: PushletClientOptions = { minReconnectDelayMs: 20, maxReconnectDelayMs: 200 };
const TRANSPORTS = ['websocket', 'sse'] as const;

/**
 * The server's `authenticate`: the token (a `refresh` command's, `?token=` on WebSocket, the
 * `Authorization: Bearer` header on SSE) is `u:<id>` or `u:<id>:<ms to expiry>`; anything else is
 * a no. `calls` counts connections and refreshes it was asked about.
 */
function tokenAuth() {
  const state = { calls: 0 };
  const authenticate: NonNullable<PushletModuleOptions['authenticate']> = (request, { token }) => {
    state.calls += 1;
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    const value = token ?? bearer ?? new URL(request.url ?? '/', 'http://x').searchParams.get('token') ?? '';
    const match = /^u:([a-z]+)(?::(\d+))?$/.exec(value);
    if (!match) return false;
    const identity: PushletIdentity = match[2] ? { id: match[1]!, expiresAt: Date.now() + Number(match[2]) } : { id: match[1]! };
    return identity;
  };
  return { state, authenticate };
}

/** A token function that hands out `tokens` in turn (the last one from then on), counting calls. */
function tokens(...list: string[]) {
  const fn = Object.assign(() => list[Math.min(fn.calls++, list.length - 1)]!, { calls: 0 });
  return fn;
}

describe('client SDK: publish, presence, refresh, expiry, server disconnect, 401', () => {
  const apps: TestApp[] = [];
  const clients: PushletClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const app of apps.splice(0)) await app.close();
  });

  async function app(options: PushletModuleOptions = {}): Promise<TestApp> {
    const t = await startApp({ heartbeatInterval: 60_000, ...options });
    apps.push(t);
    return t;
  }

  function client(t: TestApp, options: PushletClientOptions): PushletClient {
    const c = new PushletClient(t.url, { WebSocket, ...FAST, ...options });
    clients.push(c);
    return c;
  }

  /** Resolves with the next `error` event the client emits that satisfies `predicate`. */
  function nextError(c: PushletClient, predicate: (error: PushletClientError) => boolean = () => true): Promise<PushletClientError> {
    return within(
      new Promise<PushletClientError>((resolve) => {
        const stop = c.on('error', (error) => {
          if (!predicate(error)) return;
          stop();
          resolve(error);
        });
      }),
      5_000,
      'an error event',
    );
  }

  function connected(c: PushletClient): Promise<void> {
    return until(() => c.state === 'connected', 5_000, 'state connected');
  }

  it('publish() resolves with the id subscribers see; a refusal rejects with PushletCommandError', async () => {
    const { authenticate } = tokenAuth();
    const t = await app({ authenticate, authorizePublish: ({ identity, topic }) => identity?.id === 'ann' && topic !== 'closed' });
    const reader = client(t, { transport: 'sse', token: 'u:bob' });
    const seen: ClientMessage[] = [];
    await within(reader.subscribe('room', (m) => seen.push(m)).ready, 5_000, 'reader ready');
    const ann = client(t, { transport: 'websocket', token: 'u:ann' });
    ann.connect();
    await connected(ann);

    const { id } = await within(ann.publish('room', 'chat', { text: 'hi' }), 5_000, 'publish');
    await until(() => seen.length === 1, 5_000, 'the message on the other client');
    assert.deepEqual([seen[0]!.event, seen[0]!.data, seen[0]!.id], ['chat', '{"text":"hi"}', id]);

    const refused = await ann.publish('closed', 'chat', 'x').then(
      () => assert.fail('published'),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof PushletCommandError);
    assert.equal(refused.action, 'publish');
    assert.equal(refused.reason, 'not allowed to publish to "closed"');
    const invalid = await ann.publish('room', 'pushlet:join', 'x').catch((error: unknown) => error);
    assert.ok(invalid instanceof PushletCommandError);
    // Replies are matched by ref: two at once each get their own.
    const [first, second] = await Promise.all([ann.publish('room', 'm', '1'), ann.publish('room', 'm', '2')]);
    assert.notEqual(first.id, second.id);
    assert.equal(ann.state, 'connected');
  });

  it('publish(), presence() and refresh() need a connected WebSocket: PushletClientError otherwise', async () => {
    const { authenticate } = tokenAuth();
    const t = await app({ authenticate, authorizePublish: () => true });
    const idle = client(t, { transport: 'websocket', token: 'u:ann' });
    for (const call of [() => idle.publish('room', 'm', 'x'), () => idle.presence('room'), () => idle.refresh('u:ann')]) {
      await assert.rejects(
        call(),
        (error: unknown) => error instanceof PushletClientError && !(error instanceof PushletCommandError) && error.message === CLIENT_TEXTS.notWebSocket,
      );
    }
    const overSse = client(t, { transport: 'sse', token: 'u:ann' });
    await within(overSse.subscribe('room', () => undefined).ready, 5_000, 'ready');
    await assert.rejects(overSse.publish('room', 'm', 'x'), { message: CLIENT_TEXTS.notWebSocket });
    overSse.close();
    await assert.rejects(overSse.publish('room', 'm', 'x'), { message: CLIENT_TEXTS.closed });
  });

  it('presence() answers {count, members} for a presence topic and rejects for another', async () => {
    const { authenticate } = tokenAuth();
    const t = await app({ authenticate, presence: { topics: ['room/'] } });
    const c = client(t, { transport: 'websocket', token: 'u:ann' });
    c.connect();
    await connected(c);
    const answer = await within(c.presence('room/1'), 5_000, 'presence');
    assert.equal(typeof answer.count, 'number');
    assert.ok(Array.isArray(answer.members));
    assert.equal(answer.count, answer.members.length);
    const refused = await c.presence('news').catch((error: unknown) => error);
    assert.ok(refused instanceof PushletCommandError);
    assert.match(refused.reason, /not a presence topic/);
  });

  it('refresh() asks the token function again (or takes a token) and rejects a refused token', async () => {
    const auth = tokenAuth();
    const t = await app({ authenticate: auth.authenticate });
    const token = tokens('u:ann:60000', 'u:ann:90000', 'nope');
    const c = client(t, { transport: 'websocket', token });
    c.connect();
    await connected(c);
    await within(c.refresh(), 5_000, 'refresh with the token function');
    assert.equal(token.calls, 2);
    await within(c.refresh('u:ann:120000'), 5_000, 'refresh with a token');
    assert.equal(token.calls, 2, 'a token given is used as is');
    const refused = await c.refresh().catch((error: unknown) => error);
    assert.ok(refused instanceof PushletCommandError);
    assert.equal(refused.action, 'refresh');
    assert.equal(c.state, 'connected', 'a refused refresh leaves the connection as it was');

    const without = client(t, { transport: 'websocket', token: () => '' });
    without.connect();
    await assert.rejects(without.refresh(), { message: CLIENT_TEXTS.noToken });
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: an expired identity reconnects with a new token from the token function and resumes`, async () => {
      const auth = tokenAuth();
      const t = await app({ authenticate: auth.authenticate });
      const token = tokens('u:ann:300', 'u:ann');
      const c = client(t, { transport, token });
      const seen: string[] = [];
      await within(c.subscribe('news', (m) => seen.push(m.data)).ready, 5_000, 'ready');
      await t.pushlet.publish('news', 'message', 'before');
      const expired = await nextError(c);
      assert.ok(expired instanceof PushletConnectionError);
      if (transport === 'websocket') assert.equal(expired.code, 4001);
      await t.pushlet.publish('news', 'message', 'while away');
      await connected(c);
      assert.equal(token.calls, 2, 'the token function was asked again');
      await t.pushlet.publish('news', 'message', 'after');
      await until(() => seen.length === 3, 5_000, 'three messages');
      assert.deepEqual(seen, ['before', 'while away', 'after']);
    });

    it(`${transport}: disconnected by the server, the client stays disconnected until connect(); a pending command fails`, async () => {
      const auth = tokenAuth();
      let release!: (allowed: boolean) => void;
      const held = new Promise<boolean>((resolve) => (release = resolve));
      const t = await app({ authenticate: auth.authenticate, authorizePublish: () => held });
      const c = client(t, { transport, token: 'u:ann' });
      const states: string[] = [];
      c.on('state', (state) => states.push(state));
      await within(c.subscribe('news', () => undefined).ready, 5_000, 'ready');
      const pending = transport === 'websocket' ? c.publish('news', 'm', 'x').catch((error: unknown) => error) : undefined;
      const disconnectedError = nextError(c);
      try {
        assert.equal(await t.pushlet.disconnect('ann', 'account closed'), 1);
        const error = await disconnectedError;
        assert.ok(error instanceof PushletConnectionError);
        assert.equal(error.code, 4002);
        assert.match(error.message, /account closed/);
        assert.equal(c.state, 'disconnected');
        if (pending) {
          const failed = await within(pending, 5_000, 'the pending publish');
          assert.ok(failed instanceof PushletClientError && !(failed instanceof PushletCommandError));
          assert.equal(failed.message, CLIENT_TEXTS.dropped);
        }
      } finally {
        release(false);
      }
      // Nothing to await for "no reconnect": reconnects here come within 200 ms; give them twice that.
      const calls = auth.state.calls;
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(auth.state.calls, calls, 'no reconnect attempt');
      assert.equal(c.state, 'disconnected');
      assert.deepEqual(states, ['connecting', 'connected', 'disconnected']);

      c.connect();
      await connected(c);
      assert.equal(t.pushlet.stats().connections.total, 1);
    });

    it(`${transport}: subscriptions receive pushlet:join and pushlet:leave as messages of the topic`, async () => {
      const t = await app();
      const c = client(t, { transport });
      const seen: ClientMessage[] = [];
      await within(c.subscribe('room/1', (m) => seen.push(m)).ready, 5_000, 'ready');
      const hub = t.app.get(PushletHub);
      const member = JSON.stringify({ clientId: 'c1', identity: { id: 'ann' }, transport: 'ws', since: new Date(0).toISOString() });
      const join = await hub.publisher.publish('room/1', 'pushlet:join', member, 'server');
      await hub.publisher.publish('room/1', 'pushlet:leave', member, 'server');
      await until(() => seen.length === 2, 5_000, 'join and leave');
      assert.deepEqual(
        seen.map((m) => [m.topic, m.event, m.data]),
        [
          ['room/1', 'pushlet:join', member],
          ['room/1', 'pushlet:leave', member],
        ],
      );
      assert.equal(seen[0]!.id, join.id);
    });
  }

  it('a 401 on connect is an error event with the status; the client retries with a new token', async () => {
    const auth = tokenAuth();
    const t = await app({ authenticate: auth.authenticate });
    const token = tokens('nope', 'u:ann');
    const c = client(t, { transport: 'sse', token });
    const refused = nextError(c);
    const subscription = c.subscribe('news', () => undefined);
    const error = await refused;
    assert.ok(error instanceof PushletConnectionError);
    assert.equal(error.status, 401);
    await within(subscription.ready, 5_000, 'ready after the retry');
    assert.equal(token.calls, 2);
  });

  it('auto: a refused WebSocket upgrade then an SSE 401 tries WebSocket again with the next token', async () => {
    const auth = tokenAuth();
    const t = await app({ authenticate: auth.authenticate });
    const token = tokens('nope', 'nope', 'u:ann');
    const c = client(t, { transport: 'auto', token });
    await within(c.subscribe('news', () => undefined).ready, 5_000, 'ready');
    assert.equal(c.transportKind, 'websocket');
    assert.equal(token.calls, 3);
  });
});
