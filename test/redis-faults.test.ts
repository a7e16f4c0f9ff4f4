import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import type { PushletMessage } from '../src/index.js';
import { startApp, type TestApp } from './support/app.js';
import { brokerOf, dataOf, Instances } from './support/distributed.js';
import { freePort, RedisServer } from './support/redis.js';
import { TRANSPORTS, type TestSubscriber } from './support/subscribers.js';
import { eventually } from './support/wait.js';

/** Publishes on the given instances in turn until stopped, recording what each publish resolved to. */
class Publisher {
  readonly sent: Array<{ from: number; message: PushletMessage; ms: number }> = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly apps: readonly TestApp[],
    private readonly topic: string,
    private readonly gapMs: number,
  ) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    for (let i = 0; this.running; i += 1) {
      const from = i % this.apps.length;
      const started = Date.now();
      const message = await this.apps[from]!.pushlet.publish(this.topic, 'message', `m${i} from ${from}`);
      this.sent.push({ from, message, ms: Date.now() - started });
      await new Promise((resolve) => setTimeout(resolve, this.gapMs));
    }
  }

  /** Waits until `count` more messages have been published. */
  async more(count: number, ms = 10_000): Promise<void> {
    const target = this.sent.length + count;
    await eventually(async () => this.sent.length >= target, ms, `${count} more publications`, 5);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
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
    it(`${transport.name}: survives a Redis kill and restart mid-stream: local delivery throughout, no duplicate, no silent gap`, async (t) => {
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
      const publisher = new Publisher(apps, 'feed', 3);
      try {
        await publisher.more(60);
        await server.kill();
        const killedAt = publisher.sent.length;
        await publisher.more(60);
        // Throughout the outage each instance's subscribers get that instance's publications.
        for (const [i, client] of clients.entries()) {
          const own = publisher.sent.filter((s) => s.from === i).at(-1)!;
          await client.waitForMessage((m) => m.data === own.message.data, 2_000, `instance ${i}'s own message during the outage`);
        }
        const outage = publisher.sent.length - killedAt;
        await server.restart();
        await eventually(async () => apps.every((app) => brokerOf(app).stats().state === 'connected'), 10_000, 'both instances to reconnect');
        const recoveredFrom = publisher.sent.length;
        await publisher.more(40);
        await publisher.stop();
        const afterRecovery = publisher.sent.slice(recoveredFrom).map((s) => s.message.data);
        for (const client of clients) await client.waitForMessage((m) => m.data === afterRecovery.at(-1), 5_000, 'the last message');

        const published = publisher.sent.map((s) => s.message.data);
        for (const [i, client] of clients.entries()) {
          const seen = dataOf(client.messages);
          const missing = published.filter((data) => !seen.includes(data));
          t.diagnostic(
            `client on instance ${i}: published ${published.length} (${outage} during the outage), received ${seen.length}, missing ${missing.length}, resets ${client.resets}, recovered ${brokerOf(apps[i]!).stats().recovered}`,
          );
          // A message Redis accepted right before it died may be lost with it: then a reset says so.
          if (missing.length > 0) t.diagnostic(`missing on instance ${i}: ${missing.join(', ')}`);
          assert.equal(new Set(seen).size, seen.length, 'no message twice');
          assert.deepEqual(
            seen.filter((data) => !published.includes(data)),
            [],
            'nothing that was not published',
          );
          const ownMissing = missing.filter((data) => data.endsWith(`from ${i}`));
          assert.deepEqual(ownMissing, [], "every one of the instance's own publications");
          for (const data of afterRecovery) assert.ok(seen.includes(data), `${data} published after the restart`);
          if (missing.length > 0) assert.ok(client.resets > 0, `missed ${missing.length} messages without a pushlet:reset`);
        }
        // State changes are logged once each, never once per message.
        for (const lines of logs) {
          assert.equal(lines.filter((l) => l.startsWith('warn lost the connection')).length, 1, lines.join('\n'));
          assert.equal(lines.filter((l) => /^log connected to Redis at .*: sent \d+ queued messages/.test(l)).length, 1, lines.join('\n'));
          assert.ok(lines.length <= 3, lines.join('\n'));
        }
        t.diagnostic(`instance 0 logged: ${logs[0]!.join(' | ')}`);
        const slowest = Math.max(...publisher.sent.map((s) => s.ms));
        t.diagnostic(`slowest publish: ${slowest} ms`);
        // Well under the 2 s command timeout: publishing never waited for Redis to answer.
        assert.ok(slowest < 1_500, `publish blocked for ${slowest} ms while Redis was down`);
      } finally {
        await publisher.stop();
      }
    });
  }

  it('fails to start with a clear error naming the address when Redis is down', async () => {
    const port = await freePort();
    await assert.rejects(
      startApp({ redis: { url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 2_000 } }),
      (error: Error) => {
        assert.equal(error.name, 'PushletRedisUnavailableError');
        assert.match(error.message, new RegExp(`cannot connect to Redis at 127\\.0\\.0\\.1:${port}`));
        assert.match(error.message, /ECONNREFUSED/);
        assert.match(error.message, /startWithoutRedis/);
        return true;
      },
    );
  });

  it('starts local-only with startWithoutRedis and joins the others when Redis comes up', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const [lonely] = await instances.start(1, { url, startWithoutRedis: true });
    assert.equal(brokerOf(lonely!).stats().state, 'disconnected');
    const local = instances.track(await TRANSPORTS[0]!.open(lonely!, ['solo']));
    const offline = await lonely!.pushlet.publish('solo', 'message', 'while alone');
    assert.deepEqual(dataOf(await local.waitForMessages(1)), ['while alone']);

    servers.push(await RedisServer.start({ port }));
    await eventually(async () => brokerOf(lonely!).stats().state === 'connected', 10_000, 'the instance to join');
    const [other] = await instances.start(1, { url, keyPrefix: brokerOf(lonely!).keys.prefix });
    const remote = instances.track(await TRANSPORTS[0]!.open(other!, ['solo'], { lastEventId: offline.id }));
    await other!.pushlet.publish('solo', 'message', 'from the other');
    await lonely!.pushlet.publish('solo', 'message', 'from the lonely one');
    await local.waitForMessage((m) => m.data === 'from the lonely one');
    await remote.waitForMessage((m) => m.data === 'from the lonely one');
    assert.deepEqual(dataOf(local.messages), ['while alone', 'from the other', 'from the lonely one']);
    // The offline publication reached the shared history when the instance joined; its local id was
    // provisional, so resuming from it is announced as a reset.
    assert.ok(dataOf(remote.messages).includes('while alone'));
    assert.equal(remote.resets, 1);
    assert.deepEqual(dataOf(remote.messages).slice(-2), ['from the other', 'from the lonely one']);
  });
});
