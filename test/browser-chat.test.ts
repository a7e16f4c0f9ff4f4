import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createSampleApp } from '../sample/app.js';
import { launchChromium } from './support/browser.js';
import { Instances } from './support/distributed.js';
import { RedisServer } from './support/redis.js';
import { request } from './support/app.js';

/**
 * The chat page (`GET /chat`) in headless Chromium: two people in two browser contexts, each on
 * its own sample instance, the instances joined by one Redis. They see each other online, a
 * message from one reaches the other (as text, never as markup), and closing one's page makes
 * the other see the leave. The sample's `/presence` route answers the same across instances.
 */

const WAIT_MS = 15_000;

interface ChatState {
  topic: string;
  online: string[];
  messages: Array<{ from: string; text: string }>;
  joins: number;
  leaves: number;
  errors: string[];
}

describe('the chat page (client SDK, presence, client publishing) in Chromium on two instances', () => {
  let redis: RedisServer;
  let browser: Browser;
  const apps: INestApplication[] = [];
  const urls: string[] = [];
  const contexts: BrowserContext[] = [];

  before(async () => {
    redis = await RedisServer.start();
    const redisKeyPrefix = Instances.freshPrefix();
    for (let i = 0; i < 2; i += 1) {
      const app = await createSampleApp({ heartbeatMs: 60_000, redisUrl: redis.url, redisKeyPrefix, presenceTtlMs: 3_000 }, { logger: false });
      apps.push(app);
      await app.listen(0, '127.0.0.1');
      urls.push((await app.getUrl()).replace('[::1]', '127.0.0.1'));
    }
    browser = await launchChromium();
  });
  after(async () => {
    for (const context of contexts.splice(0)) await context.close().catch(() => undefined);
    await browser?.close();
    for (const app of apps.splice(0)) await app.close();
    await redis?.stop();
  });

  async function enter(url: string, name: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${url}/chat`);
    await page.fill('#name', name);
    await page.fill('#room', 'lobby');
    await page.click('#join');
    await page.waitForFunction((who) => (globalThis as unknown as { chat: ChatState }).chat.online.includes(who), name, { timeout: WAIT_MS });
    return { context, page };
  }

  const state = (page: Page) => page.evaluate(() => (globalThis as unknown as { chat: ChatState }).chat);

  it('the sample answers /presence with JSON, 400 for a topic that is not a presence topic', async () => {
    const empty = await request(`${urls[0]}/presence?topic=room/empty`);
    assert.equal(empty.status, 200);
    assert.deepEqual(JSON.parse(empty.body), { count: 0, members: [] });
    for (const query of ['?topic=news', '?topic=room/*', '', '?topic=a&topic=b']) {
      const bad = await request(`${urls[0]}/presence${query}`);
      assert.equal(bad.status, 400, query);
      assert.equal((JSON.parse(bad.body) as { statusCode: number }).statusCode, 400);
    }
    // A demo name that is too long is refused before any stream starts.
    const refused = await request(`${urls[0]}/events?topic=room/x&user=${'x'.repeat(65)}`);
    assert.equal(refused.status, 401);
  });

  it('two people on two instances see each other online, chat, and see the other leave', async () => {
    const alice = await enter(urls[0]!, 'alice');
    const bob = await enter(urls[1]!, 'bob');
    for (const { page } of [alice, bob]) {
      await page.waitForFunction(() => (globalThis as unknown as { chat: ChatState }).chat.online.join() === 'alice,bob', undefined, { timeout: WAIT_MS });
    }
    const listed = await bob.page.locator('#online li').allTextContents();
    assert.deepEqual(listed, ['alice', 'bob']);
    const presence = JSON.parse((await request(`${urls[1]}/presence?topic=room/lobby`)).body) as {
      count: number;
      members: Array<{ identity: { id: string } }>;
    };
    assert.deepEqual(presence.members.map((m) => m.identity.id).sort(), ['alice', 'bob']);

    // Markup in a message stays text.
    const text = 'hello <img src=x onerror="window.pwned=1"> <b>bob</b>';
    await alice.page.fill('#text', text);
    await alice.page.click('#send');
    for (const { page } of [alice, bob]) {
      await page.waitForFunction((t) => (globalThis as unknown as { chat: ChatState }).chat.messages.some((m) => m.text === t), text, { timeout: WAIT_MS });
    }
    const received = await state(bob.page);
    assert.deepEqual(received.messages, [{ from: 'alice', text }]);
    assert.equal(await bob.page.locator('#log img, #log b').count(), 0);
    assert.equal(await bob.page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned), undefined);
    assert.ok((await bob.page.locator('#log').textContent())?.includes(text));

    // Alice closes her page: Bob sees her leave, once.
    await alice.context.close();
    await bob.page.waitForFunction(() => (globalThis as unknown as { chat: ChatState }).chat.online.join() === 'bob', undefined, { timeout: WAIT_MS });
    const after = await state(bob.page);
    assert.equal(after.leaves, 1);
    assert.deepEqual(after.errors, []);
    assert.deepEqual(await bob.page.locator('#online li').allTextContents(), ['bob']);
    const left = JSON.parse((await request(`${urls[0]}/presence?topic=room/lobby`)).body) as { count: number };
    assert.equal(left.count, 1);
  });
});
