import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import type { PushletMessage } from '../src/index.js';
import { comparePositions, parsePosition } from '../src/protocol/ids.js';
import { startApp, type TestApp } from './support/app.js';
import { brokerOf, dataOf, Instances } from './support/distributed.js';
import { freePort, RedisServer } from './support/redis.js';
import { TRANSPORTS, type TestSubscriber } from './support/subscribers.js';
import { eventually } from './support/wait.js';

/** Publishes on the given instances in turn without waiting, keeping each publication's promise. */
function publishMany(apps: readonly TestApp[], label: string, count: number, into: Array<Promise<PushletMessage>>): void {
  for (let i = 0; i < count; i += 1) {
    const from = into.length % apps.length;
    into.push(apps[from]!.pushlet.publish('feed', 'message', `${label} ${i} from ${from}`));
  }
}

describe('distributed mode under Redis faults', () => {
  const instances = new Instances();
  const servers: RedisServer[] = [];

  afterEach(async () => {
    await instances.closeAll();
    for (const server of servers.splice(0)) await server.stop();
  });
  after(async () => {
    for (const server of servers.splice(0)) await server.stop();
  });

  for (const transport of TRANSPORTS) {
    it(`${transport.name}: a Redis kill and restart mid-stream: publications wait for Redis, then every client gets each once, in id order`, async (t) => {
      const server = await RedisServer.start();
      servers.push(server);
      const logs: string[][] = [[], []];
      const logger = (i: number) => ({
        log: (message: unknown) => logs[i]!.push(`log ${String(message)}`),
        warn: (message: unknown) => logs[i]!.push(`warn ${String(message)}`),
        error: (message: unknown) => logs[i]!.push(`error ${String(message)}`),
      });
      const apps = [
        ...(await instances.start(1, { url: server.url, commandTimeoutMs: 2_000, keyPrefix: 'faults:' }, { logger: logger(0) })),
        ...(await instances.start(1, { url: server.url, commandTimeoutMs: 2_000, keyPrefix: 'faults:' }, { logger: logger(1) })),
      ];
      const clients: TestSubscriber[] = [];
      for (const app of apps) clients.push(instances.track(await transport.open(app, ['feed'])));
      const before: Array<Promise<PushletMessage>> = [];
      publishMany(apps, 'before', 30, before);
      await Promise.all(before);

      await server.kill();
      await eventually(async () => apps.every((app) => brokerOf(app).stats().state === 'down'), 5_000, 'both instances to notice');
      const during: Array<Promise<PushletMessage>> = [];
      publishMany(apps, 'during', 30, during);
      await eventually(async () => apps.reduce((sum, app) => sum + brokerOf(app).stats().queued, 0) === 30, 5_000, 'the publications to wait');
      // Nothing Redis has not ordered is delivered: no client has any of them yet.
      for (const client of clients)
        assert.deepEqual(
          dataOf(client.messages).filter((d) => d.startsWith('during')),
          [],
        );

      await server.restart();
      const duringIds = await Promise.all(during);
      await eventually(async () => apps.every((app) => brokerOf(app).stats().state === 'ready'), 10_000, 'both instances to recover');
      const afterwards: Array<Promise<PushletMessage>> = [];
      publishMany(apps, 'after', 20, afterwards);
      const last = (await Promise.all(afterwards)).at(-1)!;
      for (const client of clients) await client.waitForMessage((m) => m.data === last.data, 5_000, 'the last message');

      const expected = [...duringIds, ...(await Promise.all(afterwards))]
        .sort((x, y) => comparePositions(parsePosition(x.id)!, parsePosition(y.id)!))
        .map((m) => m.data);
      const beforeData = (await Promise.all(before)).map((m) => m.data);
      for (const [i, client] of clients.entries()) {
        const seen = client.messages;
        const data = dataOf(seen);
        t.diagnostic(`client on instance ${i}: received ${seen.length} of ${beforeData.length + expected.length}, resets ${client.resets}`);
        assert.equal(new Set(data).size, data.length, 'no message twice');
        // Delivered in the order Redis gave the ids, on both instances.
        const ids = seen.map((m) => parsePosition(m.id)!);
        for (let k = 1; k < ids.length; k += 1)
          assert.ok(comparePositions(ids[k - 1]!, ids[k]!) < 0, `in id order at ${k}: ${seen[k - 1]!.id} then ${seen[k]!.id}`);
        // Everything published while Redis was away, and after, arrives; in the order of the ids.
        assert.deepEqual(
          data.filter((d) => !d.startsWith('before')),
          expected,
        );
        // A message Redis had just published when it died may be lost with it: then a reset says so.
        const missing = beforeData.filter((d) => !data.includes(d));
        if (missing.length > 0) assert.ok(client.resets > 0, `missed ${missing.join(', ')} without a pushlet:reset`);
        // Redis came back empty: the history was truly lost, and the client is told.
        assert.ok(client.resets > 0, 'a pushlet:reset after Redis lost its data');
      }
      // State changes are logged once each, never once per message.
      for (const lines of logs) {
        assert.equal(lines.filter((l) => l.startsWith('warn lost the connection')).length, 1, lines.join('\n'));
        assert.equal(lines.filter((l) => /^log connected to Redis at .* again/.test(l)).length, 1, lines.join('\n'));
        assert.ok(lines.filter((l) => l.includes('Redis')).length <= 3, lines.join('\n'));
      }
    });
  }

  it('fails to start with a clear error naming the address when Redis is down', async () => {
    const port = await freePort();
    await assert.rejects(startApp({ redis: { url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 2_000 } }), (error: Error) => {
      assert.equal(error.name, 'PushletRedisUnavailableError');
      assert.match(error.message, new RegExp(`cannot connect to Redis at 127\\.0\\.0\\.1:${port}`));
      assert.match(error.message, /ECONNREFUSED/);
      assert.match(error.message, /startWithoutRedis/);
      return true;
    });
  });

  it('starts without Redis with startWithoutRedis: publications wait, and are delivered once Redis has them', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const [lonely] = await instances.start(1, { url, startWithoutRedis: true });
    assert.equal(brokerOf(lonely!).stats().state, 'down');
    const local = instances.track(await TRANSPORTS[0]!.open(lonely!, ['solo']));
    const offline = lonely!.pushlet.publish('solo', 'message', 'while alone');
    await eventually(async () => brokerOf(lonely!).stats().queued === 1, 5_000, 'the publication to wait');

    servers.push(await RedisServer.start({ port }));
    const recorded = await offline;
    await eventually(async () => brokerOf(lonely!).stats().state === 'ready', 10_000, 'the instance to join');
    const [other] = await instances.start(1, { url, keyPrefix: brokerOf(lonely!).keys.prefix });
    const remote = instances.track(await TRANSPORTS[0]!.open(other!, ['solo'], { lastEventId: recorded.id }));
    await other!.pushlet.publish('solo', 'message', 'from the other');
    await lonely!.pushlet.publish('solo', 'message', 'from the lonely one');
    await local.waitForMessage((m) => m.data === 'from the lonely one');
    await remote.waitForMessage((m) => m.data === 'from the lonely one');
    assert.deepEqual(dataOf(local.messages), ['while alone', 'from the other', 'from the lonely one']);
    // The offline publication got its id from Redis: resuming after it is exact.
    assert.deepEqual(dataOf(remote.messages), ['from the other', 'from the lonely one']);
    assert.equal(remote.resets, 0);
  });
});
