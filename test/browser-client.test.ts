import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, afterEach, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createSampleApp } from '../sample/app.js';
import type { SampleConfig } from '../sample/app.module.js';
import { PushletService } from '../src/index.js';
import { launchChromium } from './support/browser.js';
import { Instances } from './support/distributed.js';
import { RedisServer } from './support/redis.js';
import { within } from './support/wait.js';

/**
 * The demo page on the client SDK (`/pushlet-client.js`) in headless Chromium, over each
 * transport: while a publisher on another instance publishes numbered messages without pause, the
 * page's instance is restarted on the same port (twice: before the first message and mid-stream)
 * and the browser goes offline and back; in the end the page holds every message exactly once, in
 * order, and saw no reset.
 */

/** Every wait on the page is bounded by this (ms). */
const WAIT_MS = 15_000;

interface PageMessage {
  id: string;
  topic: string | undefined;
  event: string;
  data: string;
}

/** What the page exposes as `window.pushletDemo`, read from Node. */
interface DemoRecord {
  messages: PageMessage[];
  resets: Array<{ topics: string[]; reason: string }>;
  states: string[];
}

/** A sample app on 127.0.0.1, restartable on the port it first got. */
class SampleInstance {
  app: INestApplication | undefined;
  port = 0;
  constructor(private readonly config: SampleConfig) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const app = await createSampleApp(this.config, { logger: false });
    this.app = app;
    await within(app.listen(this.port, '127.0.0.1'), WAIT_MS, `the sample to listen on port ${this.port}`);
    this.port = Number(new URL(await app.getUrl()).port);
  }

  async stop(): Promise<void> {
    const app = this.app;
    this.app = undefined;
    if (app) await within(app.close(), WAIT_MS, 'the sample to close');
  }

  get pushlet(): PushletService {
    if (!this.app) throw new Error('the instance is not running');
    return this.app.get(PushletService);
  }
}

/**
 * Publishes `1`, `2`, `3`, … to one topic, one message every few milliseconds, each awaited
 * (so in order), until stopped. Emits `published` with the count after each.
 */
class Publisher extends EventEmitter {
  count = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly pushlet: PushletService,
    private readonly topic: string,
  ) {
    super();
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.pushlet.publish(this.topic, 'message', String(this.count + 1));
        this.count += 1;
        this.emit('published', this.count);
        // A steady rate (about 100 a second), well inside the history window of 1,000 per topic.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })().catch((error: unknown) => {
      this.running = false;
      this.failure = error;
    });
  }

  /** Resolves once `n` messages have been published in all. */
  published(n: number, what: string): Promise<void> {
    if (this.count >= n) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => {
        const check = (count: number) => {
          if (count < n) return;
          this.off('published', check);
          resolve();
        };
        this.on('published', check);
      }),
      WAIT_MS,
      `${n} messages published (${what})`,
    );
  }

  /** Stops after the message being published; resolves to the number published in all. */
  async stop(): Promise<number> {
    this.running = false;
    await within(this.loop ?? Promise.resolve(), WAIT_MS, 'the publisher to stop');
    if (this.failure) throw this.failure;
    return this.count;
  }
}

function readDemo(page: Page): Promise<DemoRecord> {
  return page.evaluate(() => {
    const demo = (globalThis as unknown as { pushletDemo: DemoRecord }).pushletDemo;
    return { messages: demo.messages.map(({ id, topic, event, data }) => ({ id, topic, event, data })), resets: demo.resets, states: demo.states };
  });
}

/** Waits until the page shows the client state `state`. */
async function waitForState(page: Page, state: string): Promise<void> {
  await page.waitForFunction(`document.getElementById('client-state')?.textContent === ${JSON.stringify(state)}`, undefined, { timeout: WAIT_MS });
}

/** Waits until the page has received at least `n` messages. */
async function waitForMessages(page: Page, n: number): Promise<void> {
  await page.waitForFunction(`globalThis.pushletDemo.messages.length >= ${n}`, undefined, { timeout: WAIT_MS });
}

async function messageCount(page: Page): Promise<number> {
  return page.evaluate(() => (globalThis as unknown as { pushletDemo: DemoRecord }).pushletDemo.messages.length);
}

/** One Chromium for the whole file. */
let browser: Browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

describe('the demo page on the client SDK in headless Chromium: nothing lost across restarts and offline', () => {
  let redis: RedisServer;
  /** The instance the page talks to; restarted by the tests. */
  let served: SampleInstance;
  /** Another instance on the same Redis, where the publisher publishes: it never stops. */
  let publishing: SampleInstance;
  const contexts: BrowserContext[] = [];
  const publishers: Publisher[] = [];

  before(async () => {
    redis = await RedisServer.start();
    const config: SampleConfig = { redisUrl: redis.url, redisKeyPrefix: Instances.freshPrefix(), heartbeatMs: 60_000 };
    served = new SampleInstance(config);
    publishing = new SampleInstance(config);
    await served.start();
    await publishing.start();
  });
  afterEach(async () => {
    try {
      for (const publisher of publishers.splice(0)) await publisher.stop();
    } finally {
      for (const context of contexts.splice(0)) await context.close();
      // A test that failed while the page's instance was down leaves it running for the next.
      if (!served.app) await served.start();
    }
  });
  after(async () => {
    const steps = [() => served?.stop(), () => publishing?.stop(), () => redis?.stop()];
    for (const step of steps) await step().catch(() => undefined);
  });

  for (const transport of ['websocket', 'sse'] as const) {
    it(`${transport}: every message once and in order, through two server restarts and an offline spell, no reset`, async (t) => {
      const topic = `browser/${transport}`;
      const context = await browser.newContext();
      contexts.push(context);
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
      await page.goto(`${served.url}/?transport=${transport}&topic=${encodeURIComponent(topic)}`);
      await waitForState(page, 'connected');
      assert.equal(await page.textContent('#client-kind'), transport);
      await page.waitForSelector(`#client-subscription:text("subscribed to ${topic}")`);

      const publisher = new Publisher(publishing.pushlet, topic);
      publishers.push(publisher);

      // The page's instance stops before the first message (WebSocket close 1001, the SSE stream
      // ends): the client resumes from the id of `pushlet:connected`.
      await served.stop();
      await waitForState(page, 'connecting');
      publisher.start();
      await publisher.published(30, "while the page's instance is down");
      await served.start();
      await waitForState(page, 'connected');
      await waitForMessages(page, publisher.count + 10);

      // Again, mid-stream: the client resumes from the id of the last message it saw.
      await served.stop();
      await waitForState(page, 'connecting');
      await publisher.published(publisher.count + 30, "while the page's instance is down again");
      await served.start();
      await waitForState(page, 'connected');
      await waitForMessages(page, publisher.count + 10);

      // The browser goes offline: the client drops its connection and waits for `online`.
      await context.setOffline(true);
      await waitForState(page, 'disconnected');
      const beforeOffline = await messageCount(page);
      await publisher.published(publisher.count + 30, 'while the browser is offline');
      assert.equal(await messageCount(page), beforeOffline, 'nothing arrives while offline');
      await context.setOffline(false);
      await waitForState(page, 'connected');
      await waitForMessages(page, publisher.count + 10);

      // The last message marks the end: anything duplicated or late would come before it.
      const total = await publisher.stop();
      await publishing.pushlet.publish(topic, 'message', 'end');
      await page.waitForSelector('#client-messages div:text-is("[message] ' + topic + ' end")');

      const demo = await readDemo(page);
      t.diagnostic(`${total} messages published, ${demo.messages.length - 1} received before the end marker`);
      const expected = [...Array.from({ length: total }, (_, i) => String(i + 1)), 'end'];
      const data = demo.messages.map((m) => m.data);
      const missing = expected.filter((d) => !data.includes(d));
      const duplicated = data.filter((d, i) => data.indexOf(d) !== i);
      assert.deepEqual({ missing, duplicated }, { missing: [], duplicated: [] });
      assert.deepEqual(data, expected, 'in order');
      assert.ok(demo.messages.every((m) => m.topic === topic && m.event === 'message'));
      assert.deepEqual(demo.resets, [], 'no reset');
      assert.equal(await page.locator('#client-resets div').count(), 0);
      // The page shows the same, as text.
      assert.deepEqual(
        await page.locator('#client-messages div').allTextContents(),
        expected.map((d) => `[message] ${topic} ${d}`),
      );
      // connecting → connected, then two restarts, then offline and back.
      const restart = ['connecting', 'connected'];
      assert.deepEqual(demo.states, [...restart, ...restart, ...restart, 'disconnected', ...restart]);
    });
  }
});

describe('the demo page on the client SDK in headless Chromium, in memory: resets and starting offline', () => {
  let served: SampleInstance;
  const pages: Page[] = [];
  const contexts: BrowserContext[] = [];

  before(async () => {
    // In memory: a restart loses the history, so the client cannot be told what it missed.
    served = new SampleInstance({ heartbeatMs: 60_000 });
    await served.start();
  });
  afterEach(async () => {
    for (const page of pages.splice(0)) await page.close();
    for (const context of contexts.splice(0)) await context.close();
    if (!served.app) await served.start();
  });
  after(async () => {
    await served?.stop();
  });

  it('shows a reset, as text, when the server restarted without its history', async () => {
    const page = await browser.newPage();
    pages.push(page);
    page.setDefaultTimeout(WAIT_MS);
    await page.goto(`${served.url}/?topic=lost/history`);
    await waitForState(page, 'connected');
    await served.pushlet.publish('lost/history', 'message', '<b>before</b>');
    await page.waitForSelector('#client-messages div:text-is("[message] lost/history <b>before</b>")');

    await served.stop();
    await waitForState(page, 'connecting');
    await served.start();
    await waitForState(page, 'connected');
    await page.waitForSelector('#client-resets div');
    const demo = await readDemo(page);
    assert.equal(demo.resets.length, 1);
    assert.deepEqual(demo.resets[0]!.topics, ['lost/history']);
    const shown = await page.textContent('#client-resets div');
    assert.match(shown ?? '', /^reset of lost\/history: /);
    // Data from the server is text, never markup.
    assert.equal(await page.locator('#client-messages b').count(), 0);

    await served.pushlet.publish('lost/history', 'message', 'after');
    await page.waitForSelector('#client-messages div:text-is("[message] lost/history after")');
  });

  it('a client started while the browser is offline waits for `online`, then connects', async () => {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    await page.goto(`${served.url}/?topic=offline/start`);
    await waitForState(page, 'connected');
    await context.setOffline(true);
    await waitForState(page, 'disconnected');
    // The Subscribe button makes a new client, here while offline: it makes no attempt (which
    // could only fail, with a growing backoff) until the browser is back online.
    await page.click('#client-subscribe');
    await page.waitForSelector('#client-subscription:text("subscribing to offline/start")');
    assert.deepEqual((await readDemo(page)).states, []);
    assert.equal(await page.textContent('#client-state'), 'disconnected');
    await context.setOffline(false);
    await waitForState(page, 'connected');
    assert.deepEqual((await readDemo(page)).states, ['connecting', 'connected']);
    await served.pushlet.publish('offline/start', 'message', 'back');
    await page.waitForSelector('#client-messages div:text-is("[message] offline/start back")');
  });
});
