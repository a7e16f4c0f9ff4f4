import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { request } from './support/app.js';
import { startSampleInBrowser } from './support/browser.js';

/** Waits until the page's WebSocket log shows `text`. */
async function waitForWsLog(page: Page, text: string): Promise<void> {
  // A string expression: it runs in the page, and this project's lib has no DOM types.
  await page.waitForFunction(`document.getElementById('ws-messages')?.textContent?.includes(${JSON.stringify(text)}) === true`);
}

describe('the sample page in headless Chromium (README WebSocket client)', () => {
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

  it('shows a message published through /send, and its subscribe and unsubscribe buttons work', async () => {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    try {
      await page.goto(url);
      await waitForWsLog(page, '[pushlet:connected]');
      assert.equal(await page.textContent('#ws-status'), 'connected');

      await page.click('#subscribe-topic1');
      await waitForWsLog(page, '[pushlet:subscribed] topic1');
      // Publish through the page's own form, which posts to /send.
      await page.fill('#send-topic', 'topic1');
      await page.fill('#send-message', 'hello from the browser');
      await page.click('#send');
      await waitForWsLog(page, '[message] topic1 hello from the browser');

      await page.click('#unsubscribe-topic1');
      await waitForWsLog(page, '[pushlet:unsubscribed] topic1');
      assert.equal((await request(`${url}/send?topic=topic1&message=after-unsubscribe`, { method: 'POST' })).status, 200);
      // A broadcast published afterwards reaches the page; the topic1 message before it must not.
      assert.equal((await request(`${url}/broadcast?message=marker-after-unsubscribe`, { method: 'POST' })).status, 200);
      await waitForWsLog(page, 'marker-after-unsubscribe');
      const log = (await page.textContent('#ws-messages')) ?? '';
      assert.equal(log.includes('topic1 after-unsubscribe'), false);
    } finally {
      await page.close();
    }
  });
});
