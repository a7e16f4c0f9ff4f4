import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startSampleInBrowser } from './support/browser.js';

/** Waits until the element `id` shows `text`. */
async function waitForText(page: Page, id: string, text: string): Promise<void> {
  // A string expression: it runs in the page, and this project's lib has no DOM types.
  await page.waitForFunction(`document.getElementById(${JSON.stringify(id)})?.textContent?.includes(${JSON.stringify(text)}) === true`);
}

describe('the demo page in headless Chromium: its publish form', () => {
  let url: string;
  let browser: Browser;
  let sample: Awaited<ReturnType<typeof startSampleInBrowser>>;

  before(async () => {
    sample = await startSampleInBrowser();
    ({ url, browser } = sample);
  });
  after(async () => {
    await sample?.close();
  });

  /** Opens the page and waits until its connections (the SDK client's and the plain ones) are up. */
  async function openPage(): Promise<Page> {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(url);
    await page.waitForSelector('#client-subscription:text("subscribed to my-topic")');
    await page.waitForSelector('#sse-status:text("connected")');
    await waitForText(page, 'ws-messages', '[pushlet:connected]');
    return page;
  }

  it('shows a message sent with the form in both panels, without pressing Subscribe', async () => {
    const page = await openPage();
    try {
      // The fields are found by their labels.
      await page.getByLabel('Topic').fill('my-topic');
      await page.getByLabel('Message').fill('sent from the form');
      await page.click('#send');
      await waitForText(page, 'send-status', 'Message sent');
      await waitForText(page, 'messages', 'SSE message: sent from the form');
      await waitForText(page, 'ws-messages', '[message] my-topic sent from the form');
      await waitForText(page, 'client-messages', '[message] my-topic sent from the form');
      assert.equal(await page.textContent('#client-state'), 'connected');
    } finally {
      await page.close();
    }
  });

  it("shows this instance's live figures from GET /stats: its own three connections, and a publication rate", async () => {
    const page = await openPage();
    try {
      // The page holds three connections of its own: the SDK client (auto: WebSocket), the plain SSE and the plain WebSocket.
      await page.waitForFunction(`Number(document.getElementById('stats-connections')?.textContent) >= 3`);
      const sse = Number(await page.textContent('#stats-sse'));
      const ws = Number(await page.textContent('#stats-ws'));
      assert.ok(sse >= 1 && ws >= 2, `SSE ${sse}, WebSocket ${ws}`);
      assert.equal(await page.textContent('#stats-broker'), 'ready');
      await page.waitForFunction(`/^\\d+$/.test(document.getElementById('stats-published-rate')?.textContent ?? '')`);
    } finally {
      await page.close();
    }
  });

  it('shows events not named "message" in the SSE panel too', async () => {
    const page = await openPage();
    try {
      await page.getByLabel('Event').fill('order-shipped');
      await page.getByLabel('Message').fill('order 42');
      await page.click('#send');
      await waitForText(page, 'messages', 'SSE order-shipped: order 42');
      await waitForText(page, 'ws-messages', '[order-shipped] my-topic order 42');
      await page.getByLabel('Event').fill('news');
      await page.getByLabel('Message').fill('to everyone');
      await page.click('#broadcast');
      await waitForText(page, 'messages', 'SSE news: to everyone');
      await waitForText(page, 'ws-messages', '[news] * to everyone');
      // The SDK panel shows the client's messages: its topic's, then the broadcast.
      await waitForText(page, 'client-messages', '[news] * to everyone');
      assert.deepEqual(await page.locator('#client-messages div').allTextContents(), ['[order-shipped] my-topic order 42', '[news] * to everyone']);
    } finally {
      await page.close();
    }
  });

  it('subscribes the SDK client to the topic and transport chosen on the page', async () => {
    const page = await openPage();
    try {
      await page.getByLabel('Subscribe to').fill('orders/7');
      await page.getByLabel('Transport').selectOption('sse');
      await page.click('#client-subscribe');
      await page.waitForSelector('#client-subscription:text("subscribed to orders/7")');
      assert.equal(await page.textContent('#client-kind'), 'sse');
      assert.equal(await page.textContent('#client-state'), 'connected');
      await page.getByLabel('Topic').fill('orders/7');
      await page.getByLabel('Message').fill('packed');
      await page.click('#send');
      await waitForText(page, 'client-messages', '[message] orders/7 packed');
      // A topic the server refuses is reported on the page.
      await page.getByLabel('Subscribe to').fill('private/secrets');
      await page.click('#client-subscribe');
      await waitForText(page, 'client-subscription', 'not subscribed:');
    } finally {
      await page.close();
    }
  });

  it('shows the reason when the server refuses the message', async () => {
    const page = await openPage();
    try {
      await page.getByLabel('Topic').fill('not a topic');
      await page.click('#send');
      await waitForText(page, 'send-status', 'Not sent (400): topic must not contain whitespace or control characters');
      assert.match((await page.getAttribute('#send-status', 'class')) ?? '', /error/);
      // The next good message clears it.
      await page.getByLabel('Topic').fill('my-topic');
      await page.click('#send');
      await waitForText(page, 'send-status', 'Message sent');
      assert.doesNotMatch((await page.getAttribute('#send-status', 'class')) ?? '', /error/);
    } finally {
      await page.close();
    }
  });
});
