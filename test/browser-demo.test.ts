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

  /** Opens the page and waits until both of its connections are up. */
  async function openPage(): Promise<Page> {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(url);
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
