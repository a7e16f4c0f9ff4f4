import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import type { Browser } from 'playwright-core';
import { PushletService } from '../src/index.js';
import { startSampleInBrowser } from './support/browser.js';

describe('sample page in headless Chromium: SSE', () => {
  let app: INestApplication;
  let url: string;
  let browser: Browser;
  let sample: Awaited<ReturnType<typeof startSampleInBrowser>>;

  before(async () => {
    sample = await startSampleInBrowser();
    ({ app, url, browser } = sample);
  });
  after(async () => {
    await sample?.close();
  });

  it("shows a message published through /send, delivered by the README's EventSource client", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(url);
      await page.waitForSelector('#sse-status:text("connected")', { timeout: 10_000 });
      const response = await fetch(`${url}/send?topic=my-topic&message=${encodeURIComponent('hello from /send')}`);
      assert.equal(await response.text(), 'Message sent');
      await page.waitForSelector('#messages div:text("SSE message: hello from /send")', { timeout: 10_000 });
      // A message for another topic does not show.
      await fetch(`${url}/send?topic=other&message=nope`);
      await fetch(`${url}/send?topic=my-topic&message=second`);
      await page.waitForSelector('#messages div:text("SSE message: second")', { timeout: 10_000 });
      const texts = await page.locator('#messages div').allTextContents();
      assert.deepEqual(texts, ['SSE message: hello from /send', 'SSE message: second']);
    } finally {
      await page.close();
    }
  });

  it('EventSource reconnects with Last-Event-ID and gets what it missed, once', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(url);
      await page.waitForSelector('#sse-status:text("connected")', { timeout: 10_000 });
      const pushlet = app.get(PushletService);
      await pushlet.publish('my-topic', 'message', 'before drop');
      await page.waitForSelector('#messages div:text("SSE message: before drop")', { timeout: 10_000 });
      // Cut every SSE stream from the server side; the browser reconnects by itself.
      const server = app.getHttpServer() as import('node:http').Server;
      server.closeAllConnections();
      await pushlet.publish('my-topic', 'message', 'while away 1');
      await pushlet.publish('my-topic', 'message', 'while away 2');
      await page.waitForSelector('#messages div:text("SSE message: while away 2")', { timeout: 15_000 });
      await pushlet.publish('my-topic', 'message', 'after return');
      await page.waitForSelector('#messages div:text("SSE message: after return")', { timeout: 10_000 });
      const texts = await page.locator('#messages div').allTextContents();
      assert.deepEqual(texts, ['SSE message: before drop', 'SSE message: while away 1', 'SSE message: while away 2', 'SSE message: after return']);
    } finally {
      await page.close();
    }
  });
});
