import assert from 'node:assert/strict';
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, afterEach, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import type { Browser, BrowserContext } from 'playwright-core';
import { WebSocket } from 'ws';
import { createSampleApp } from '../sample/app.js';
import type { SampleConfig } from '../sample/app.module.js';
import { PushletClient } from '../src/client/index.js';
import { PushletService } from '../src/index.js';
import { launchChromium } from './support/browser.js';
import { BROADCAST, ClientLedger, judge, missing, publishedWhileAway, SteadyPublisher } from './support/client-ledger.js';
import { Instances } from './support/distributed.js';
import { Nginx } from './support/nginx.js';
import { RedisServer } from './support/redis.js';
import { SseClient } from './support/sse-client.js';
import type { TestApp } from './support/app.js';
import { until, within } from './support/wait.js';
import { WsClient } from './support/ws-client.js';

/**
 * deploy/nginx.conf run by a real nginx in front of two sample instances on one Redis
 * (docs/deploy.md), its timeouts scaled down: proxy_read_timeout 3 s, the apps' heartbeat 1 s.
 * Each app sets Express's `trust proxy` to 1 and allows two connections per client address.
 */
const HEARTBEAT_MS = 1_000;
const PROXY_TIMEOUT_MS = 3_000;
const PER_ADDRESS = 2;
const WAIT_MS = 15_000;

/** A sample instance on 127.0.0.1, killable at once (every socket destroyed) and restartable on its port. */
class Instance {
  app: INestApplication | undefined;
  port = 0;
  private readonly sockets = new Set<Socket>();
  constructor(private readonly config: SampleConfig) {}

  async start(): Promise<void> {
    const app = await createSampleApp(this.config, { logger: false });
    (app.getHttpServer() as HttpServer).on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await within(app.listen(this.port, '127.0.0.1'), WAIT_MS, `the sample to listen on port ${this.port}`);
    this.app = app;
    this.port = Number(new URL(await app.getUrl()).port);
  }

  /** Dies as a crashed process would for its clients: no close frame, no end of stream. */
  async kill(): Promise<void> {
    const app = this.app;
    this.app = undefined;
    if (!app) return;
    (app.getHttpServer() as HttpServer).close();
    for (const socket of this.sockets) socket.destroy();
    await within(app.close(), WAIT_MS, 'the killed instance to close');
  }

  get pushlet(): PushletService {
    if (!this.app) throw new Error('the instance is not running');
    return this.app.get(PushletService);
  }

  /** For the publisher of client-ledger.ts, which publishes through `pushlet` and names instances by `url`. */
  asTestApp(): TestApp {
    return { pushlet: this.pushlet, url: `http://127.0.0.1:${this.port}` } as TestApp;
  }

  connections(): { sse: number; ws: number } {
    if (!this.app) return { sse: 0, ws: 0 };
    const { sse, ws } = this.pushlet.stats().connections;
    return { sse, ws };
  }
}

describe('deploy/nginx.conf: a real nginx in front of two instances on one Redis', () => {
  let redis: RedisServer;
  let nginx: Nginx;
  const instances: Instance[] = [];
  const sse: SseClient[] = [];
  const ws: WsClient[] = [];
  const clients: PushletClient[] = [];
  const publishers: SteadyPublisher[] = [];
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  before(async () => {
    browser = await launchChromium();
    redis = await RedisServer.start();
    const config: SampleConfig = {
      redisUrl: redis.url,
      redisKeyPrefix: Instances.freshPrefix(),
      heartbeatMs: HEARTBEAT_MS,
      trustProxy: 1,
      maxConnectionsPerAddress: PER_ADDRESS,
      metrics: false,
    };
    for (let i = 0; i < 2; i += 1) {
      const instance = new Instance(config);
      await instance.start();
      instances.push(instance);
    }
    nginx = await Nginx.start({ upstreams: [instances[0]!.port, instances[1]!.port], timeout: `${PROXY_TIMEOUT_MS / 1_000}s` });
  });
  afterEach(async () => {
    for (const p of publishers.splice(0)) await p.stop();
    for (const c of clients.splice(0)) c.close();
    for (const c of sse.splice(0)) c.close();
    for (const c of ws.splice(0)) c.close();
    for (const context of contexts.splice(0)) await context.close();
    // A test that killed an instance starts it again, on the port nginx knows.
    for (const instance of instances) if (!instance.app) await instance.start();
    await until(() => instances.every((i) => i.connections().sse + i.connections().ws === 0), WAIT_MS, 'every connection of the test closed');
  });
  after(async () => {
    const steps = [() => browser?.close(), () => nginx?.stop(), ...instances.map((i) => () => i.kill()), () => redis?.stop()];
    for (const step of steps) await step().catch(() => undefined);
  });

  const [a, b] = [0, 1].map((i) => () => instances[i]!);

  async function openSse(path: string, headers: Record<string, string> = {}, localAddress?: string): Promise<SseClient> {
    const client = await SseClient.open(nginx.url + path, headers, 5_000, localAddress);
    sse.push(client);
    return client;
  }

  async function openWs(path: string, localAddress?: string): Promise<WsClient> {
    const client = await WsClient.open(nginx.url.replace('http', 'ws') + path, { localAddress });
    ws.push(client);
    return client;
  }

  it('SSE and WebSocket through nginx: messages published on either instance arrive, unbuffered, on each', async () => {
    const streams = [await openSse('/events?topic=lb'), await openSse('/events?topic=lb')];
    const sockets = [await openWs('/ws?topic=lb'), await openWs('/ws?topic=lb')];
    for (const s of streams) {
      assert.equal(s.status, 200);
      assert.equal(s.headers['content-type'], 'text/event-stream');
      await s.waitForEvents(1, 5_000, 'pushlet:connected');
    }
    for (const s of sockets) await s.waitForEvents('pushlet:connected');
    // Round robin without stickiness: the four connections are spread over both instances.
    assert.deepEqual(
      [a().connections(), b().connections()],
      [
        { sse: 1, ws: 1 },
        { sse: 1, ws: 1 },
      ],
    );
    await a().pushlet.publish('lb', 'message', 'from a');
    await b().pushlet.publish('lb', 'message', 'from b');
    // One message at a time: had nginx buffered the stream, the first would wait for more bytes.
    for (const s of streams)
      assert.deepEqual(
        (await s.waitForEvents(2, 5_000, 'message')).map((e) => e.data),
        ['from a', 'from b'],
      );
    for (const s of sockets)
      assert.deepEqual(
        (await s.waitForMessages(2)).map((m) => m.data),
        ['from a', 'from b'],
      );
  });

  it('idle streams outlive proxy_read_timeout (3 s) on heartbeats (1 s); without them nginx cuts an SSE stream', async () => {
    const stream = await openSse('/events?topic=idle');
    const socket = await openWs('/ws?topic=idle');
    await stream.waitForEvents(1, 5_000, 'pushlet:connected');
    const openedAt = performance.now();
    // Five heartbeats: past the proxy's read timeout, with nothing else sent.
    await stream.waitForComments(5, 10_000);
    await socket.waitForPings(5, 10_000);
    assert.ok(performance.now() - openedAt > PROXY_TIMEOUT_MS, 'longer than the proxy timeout');
    assert.equal(stream.ended, false);
    assert.equal(socket.closed, undefined);
    await a().pushlet.publish('idle', 'message', 'still there');
    assert.equal((await stream.waitForEvents(1, 5_000, 'message'))[0]!.data, 'still there');
    assert.equal((await socket.waitForMessages(1))[0]!.data, 'still there');

    // The control: heartbeats rarer than the timeout, and nginx ends the quiet stream after 3 s.
    for (const instance of instances) instance.pushlet.setHeartbeatInterval(20_000);
    try {
      const quiet = await openSse('/events?topic=quiet');
      await quiet.waitForEvents(1, 5_000, 'pushlet:connected');
      const quietSince = performance.now();
      await quiet.waitForEnd(10_000);
      const lasted = performance.now() - quietSince;
      assert.ok(lasted > PROXY_TIMEOUT_MS - 500 && lasted < PROXY_TIMEOUT_MS + 3_000, `cut after ${Math.round(lasted)} ms`);
    } finally {
      for (const instance of instances) instance.pushlet.setHeartbeatInterval(HEARTBEAT_MS);
    }
  });

  it("maxConnectionsPerAddress counts the client address from X-Forwarded-For (trust proxy 1), not nginx's, and not a forged one", async () => {
    // 127.0.0.2 and 127.0.0.3 are two clients; nginx reaches the apps from 127.0.0.1.
    const accepted: SseClient[] = [];
    let refused: SseClient | undefined;
    for (let i = 0; i < 6 && !refused; i += 1) {
      const client = await openSse('/events?topic=addr', {}, '127.0.0.2');
      if (client.status === 200) accepted.push(client);
      else refused = client;
    }
    assert.equal(accepted.length, 2 * PER_ADDRESS, 'two per instance from 127.0.0.2');
    assert.equal(refused?.status, 503);
    await refused.waitForEnd();
    assert.match(refused.body, /too many connections from this address/);
    assert.deepEqual([a().connections().sse, b().connections().sse], [PER_ADDRESS, PER_ADDRESS]);
    // A WebSocket from the same client is refused too (close 1013), whichever instance it lands on.
    const wsRefused = await openWs('/ws?topic=addr', '127.0.0.2');
    assert.equal((await wsRefused.waitForClose()).code, 1013);

    // Another client is not: had the apps counted nginx's address, it would be full as well.
    const other = await openSse('/events?topic=addr', {}, '127.0.0.3');
    assert.equal(other.status, 200);
    const otherWs = await openWs('/ws?topic=addr', '127.0.0.3');
    await otherWs.waitForEvents('pushlet:connected');
    // A client claiming to be 127.0.0.2 is counted as what nginx saw (127.0.0.3): nginx appends that hop, trust proxy 1 believes only it.
    const forged = await openSse('/events?topic=addr', { 'X-Forwarded-For': '127.0.0.2' }, '127.0.0.3');
    assert.equal(forged.status, 200, 'a forged X-Forwarded-For is not believed');
  });

  for (const transport of ['sse', 'websocket'] as const) {
    it(`${transport}: the SDK resumes on the other instance after its own is killed: every message once and in order`, async (t) => {
      const client = new PushletClient(nginx.url, { WebSocket, transport, minReconnectDelayMs: 50, maxReconnectDelayMs: 500 });
      clients.push(client);
      const topics = [`k-${transport}-1`, `k-${transport}-2`];
      const ledger = new ClientLedger(transport, client, topics);
      await within(ledger.subscribe(), WAIT_MS, 'subscribed through nginx');
      const kind = transport === 'sse' ? 'sse' : 'ws';
      const [victim, survivor] = a().connections()[kind] === 1 ? [a(), b()] : [b(), a()];
      assert.equal(victim.connections()[kind], 1);
      const live = [a(), b()];
      const publisher = new SteadyPublisher([...topics, BROADCAST], () => live.map((i) => i.asTestApp()), 10);
      publishers.push(publisher);
      publisher.start();
      await until(() => ledger.counted.every((topic) => ledger.received.get(topic)!.length >= 10), WAIT_MS, 'messages before the kill');

      live.splice(live.indexOf(victim), 1);
      await victim.kill();
      await until(() => ledger.drops >= 1, WAIT_MS, 'the client noticing the kill');
      await until(() => client.state === 'connected' && survivor.connections()[kind] === 1, WAIT_MS, 'the client on the survivor, through nginx');
      const from = publisher.count(topics[0]!);
      await until(() => publisher.count(topics[0]!) >= from + 20, WAIT_MS, 'messages after the resume');
      await publisher.stop();
      await until(() => missing(ledger, publisher).length === 0, 5_000, 'every acknowledged message arrived').catch(() => undefined);

      assert.deepEqual(judge(ledger, publisher), [], `errors: ${ledger.errors.join(' | ')}`);
      assert.deepEqual(ledger.resets, []);
      assert.ok(publishedWhileAway(ledger, publisher) > 0, 'messages were published while the client was away');
      t.diagnostic(
        `${transport}: ${[...ledger.received.values()].flat().length} messages once and in order, ${publishedWhileAway(ledger, publisher)} of them published while away`,
      );
    });
  }

  for (const transport of ['websocket', 'sse'] as const) {
    it(`the SDK in Chromium through nginx, ${transport}: the sample page gets every message, in order, published on both instances`, async () => {
      const topic = `browser-lb/${transport}`;
      const context = await browser.newContext();
      contexts.push(context);
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
      await page.goto(`${nginx.url}/?transport=${transport}&topic=${encodeURIComponent(topic)}`);
      await page.waitForFunction(`document.getElementById('client-state')?.textContent === 'connected'`);
      assert.equal(await page.textContent('#client-kind'), transport);
      await page.waitForSelector(`#client-subscription:text("subscribed to ${topic}")`);
      const sent: string[] = [];
      for (let i = 1; i <= 30; i += 1) {
        await instances[i % 2]!.pushlet.publish(topic, 'message', String(i));
        sent.push(String(i));
      }
      await page.waitForFunction(`globalThis.pushletDemo.messages.length >= ${sent.length}`);
      const got = await page.evaluate(() =>
        (globalThis as unknown as { pushletDemo: { messages: Array<{ data: string }> } }).pushletDemo.messages.map((m) => m.data),
      );
      assert.deepEqual(got, sent);
    });
  }
});
