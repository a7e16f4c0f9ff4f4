import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { perTestApps, request } from './support/app.js';
import { until } from './support/wait.js';

describe('SSE hardening: slow consumers, authorisation, limits', () => {
  const { app, open } = perTestApps();

  it('disconnects a client that stops reading, keeps everyone else whole, and lets it resume the rest', async () => {
    const bufferBytes = 256 * 1024;
    const t = await app({ limits: { bufferBytes }, history: { maxCount: 10_000 } });
    const slow = await open(t, '/events?topic=fast');
    const others = await Promise.all([1, 2, 3].map(() => open(t, '/events?topic=fast')));
    await Promise.all([slow, ...others].map((c) => c.waitForEvents(1)));
    slow.pause();
    const payload = 'p'.repeat(16 * 1024);
    const total = 2_000;
    for (let i = 0; i < total; i++) {
      await t.pushlet.publish('fast', 'message', `${i}:${payload}`);
      // The readers share this process: give them a turn, as a steady publisher would.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => t.pushlet.stats().slowConsumersDisconnected === 1, 5_000, 'the slow client is disconnected');
    for (const client of others) {
      const messages = await client.waitForEvents(total, 10_000, 'message');
      assert.deepEqual(
        messages.map((m) => Number(m.data.split(':')[0])),
        Array.from({ length: total }, (_, i) => i),
      );
    }
    // The slow client reads what reached it, then resumes from its last id and gets the rest, once.
    slow.resume();
    await slow.waitForEnd(5_000);
    const got = slow.messages.map((m) => Number(m.data.split(':')[0]));
    assert.ok(got.length < total, 'the slow client was cut off before the end');
    const resumed = await open(t, '/events?topic=fast', { 'last-event-id': slow.lastEventId });
    const rest = await resumed.waitForEvents(total - got.length, 10_000, 'message');
    assert.deepEqual(
      [...got, ...rest.map((m) => Number(m.data.split(':')[0]))],
      Array.from({ length: total }, (_, i) => i),
    );
    assert.equal(t.pushlet.stats().connections.sse, 4);
  });

  it('asks authorize for every topic; a no is a 403 and the client gets nothing of that topic', async () => {
    const asked: string[] = [];
    const t = await app({
      authorize: async ({ topic, transport, request }: { topic: string; transport: string; request: import('node:http').IncomingMessage }) => {
        asked.push(`${transport}:${topic}`);
        await new Promise((resolve) => setImmediate(resolve));
        return !topic.startsWith('private/') || request.headers['x-token'] === 'letmein';
      },
    });
    const denied = await request(`${t.url}/events?topic=public&topic=private/1`);
    assert.equal(denied.status, 403);
    assert.deepEqual(JSON.parse(denied.body), { statusCode: 403, message: 'not allowed to subscribe to "private/1"' });
    assert.deepEqual(asked, ['sse:public', 'sse:private/1']);
    assert.equal(t.pushlet.stats().connections.sse, 0);
    assert.equal(t.pushlet.stats().topics, 0);

    const allowed = await open(t, '/events?topic=private/1', { 'x-token': 'letmein' });
    assert.equal(allowed.status, 200);
    await t.pushlet.publish('private/1', 'message', 'secret');
    await allowed.waitForEvents(1, 5_000, 'message');
  });

  it('treats an authorize that throws as a no', async () => {
    const t = await app({
      authorize: () => {
        throw new Error('auth backend down');
      },
    });
    const response = await request(`${t.url}/events?topic=x`);
    assert.equal(response.status, 403);
  });

  it('limits connections in total and per client address with 503', async () => {
    const t = await app({ limits: { maxConnections: 2 } });
    await open(t, '/events?topic=a');
    await open(t, '/events?topic=b');
    const refused = await request(`${t.url}/events?topic=c`);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(JSON.parse(refused.body).message, /too many connections/);

    const perAddress = await app({ limits: { maxConnectionsPerAddress: 1 } });
    const first = await open(perAddress, '/events?topic=a');
    assert.equal((await request(`${perAddress.url}/events?topic=a`)).status, 503);
    first.close();
    await until(() => perAddress.pushlet.stats().connections.sse === 0, 5_000, 'the slot is released');
    const again = await open(perAddress, '/events?topic=a');
    assert.equal(again.status, 200);
  });

  it('answers thousands of topic parameters with a 400 and keeps serving', async () => {
    const t = await app();
    // 1,000 parameters fit Node's 16 KiB header limit; a longer URL gets Node's own 431.
    const query = Array.from({ length: 1_000 }, (_, i) => `topic=t${i}`).join('&');
    const response = await request(`${t.url}/events?${query}`);
    assert.equal(response.status, 400);
    const tooLong = await request(`${t.url}/events?${query}&${query}`);
    assert.equal(tooLong.status, 431);
    const client = await open(t, '/events?topic=ok');
    assert.equal(client.status, 200);
  });
});
