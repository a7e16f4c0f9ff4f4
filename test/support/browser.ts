import type { INestApplication } from '@nestjs/common';
import { chromium, type Browser } from 'playwright-core';
import { createSampleApp } from '../../sample/app.js';

/** Debian's Chromium, headless, with the flags this sandboxed machine needs. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30_000,
  });
}

/** The sample app on a free port, and Chromium to open its page. Close both with `close()`. */
export async function startSampleInBrowser(): Promise<{ app: INestApplication; url: string; browser: Browser; close(): Promise<void> }> {
  const app = await createSampleApp({ heartbeatMs: 60_000 }, { logger: false });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  let browser: Browser;
  try {
    browser = await launchChromium();
  } catch (error) {
    await app.close();
    throw error;
  }
  return {
    app,
    url,
    browser,
    close: async () => {
      await browser.close();
      await app.close();
    },
  };
}
