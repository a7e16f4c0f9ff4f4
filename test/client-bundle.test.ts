import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import { WebSocket } from 'ws';
import { createSampleApp } from '../sample/app.js';
import { PushletService } from '../src/index.js';
import { until } from './support/wait.js';

/**
 * The client SDK as one ESM file (docs/protocol.md: the sample serves it at `/pushlet-client.js`):
 * fetched from the sample as a page would, imported as a module, and used against the sample.
 */
describe('the client SDK bundle served at /pushlet-client.js', () => {
  let app: INestApplication;
  let url: string;
  before(async () => {
    app = await createSampleApp({ heartbeatMs: 60_000 }, { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  after(async () => {
    await app.close();
  });

  it('is one self-contained ES module that a page imports and uses', async (t) => {
    const response = await fetch(`${url}/pushlet-client.js`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/javascript/);
    const source = await response.text();
    assert.doesNotMatch(source, /(^|[;}\s])import\s*[{*"'\w(]/, 'no import of another module');
    assert.doesNotMatch(source, /require\(|node:/, 'nothing of Node');
    t.diagnostic(`bundle: ${source.length} B minified, ${gzipSync(source).length} B gzipped`);
    const module = (await import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`)) as typeof import('../src/client/index.js');
    // Minified class names must not leak into errors: `name` is set, not taken from the class.
    assert.equal(new module.PushletSubscribeError('t', 'no').name, 'PushletSubscribeError');
    assert.equal(new module.PushletConnectionError('down').name, 'PushletConnectionError');
    assert.ok(new module.PushletSubscribeError('t', 'no') instanceof module.PushletClientError);
    const client = new module.PushletClient(url, { transport: 'websocket', WebSocket: WebSocket as never });
    try {
      const received: string[] = [];
      const subscription = client.subscribe('bundle/topic', (message) => received.push(message.data));
      await subscription.ready;
      await app.get(PushletService).publish('bundle/topic', 'message', 'through the bundle');
      await until(() => received.length === 1, 5_000, 'the message through the bundled client');
      assert.deepEqual(received, ['through the bundle']);
    } finally {
      client.close();
    }
  });

  it('the core build, /pushlet-client-core.js: self-contained, subscribes and resumes, smaller than the full build, without its commands', async (t) => {
    const [core, full] = await Promise.all(
      ['/pushlet-client-core.js', '/pushlet-client.js'].map(async (path) => {
        const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5_000) });
        assert.equal(response.status, 200, path);
        return response.text();
      }),
    );
    assert.doesNotMatch(core!, /(^|[;}\s])import\s*[{*"'\w(]/, 'no import of another module');
    const gz = (text: string) => gzipSync(text, { level: 9 }).length;
    t.diagnostic(`core: ${core!.length} B minified, ${gz(core!)} B gzipped; full: ${full!.length} B minified, ${gz(full!)} B gzipped (level 9)`);
    assert.ok(gz(core!) < gz(full!), 'the core costs less than the full client');
    // A budget a little above the current figures (docs/client.md, "Core and full builds"): it
    // catches growth; the goal, core under 4 KB gzipped, is not reached yet.
    assert.ok(gz(core!) <= 4_650, `core ${gz(core!)} B gzipped, budget 4,650 B (4,561 with pattern routing and rewind)`);
    assert.ok(gz(full!) <= 5_300, `full ${gz(full!)} B gzipped, budget 5,300 B (5,204 with history)`);
    const module = (await import(`data:text/javascript;base64,${Buffer.from(core!).toString('base64')}`)) as typeof import('../src/client/core.js');
    const client = new module.PushletClient(url, { transport: 'sse' });
    try {
      assert.equal((client as unknown as { publish?: unknown }).publish, undefined, 'no publish in the core');
      assert.equal((client as unknown as { presence?: unknown }).presence, undefined, 'no presence in the core');
      const received: string[] = [];
      await client.subscribe('bundle/core', (message) => received.push(message.data)).ready;
      await app.get(PushletService).publish('bundle/core', 'message', 'through the core');
      await until(() => received.length === 1, 5_000, 'the message through the core client');
      assert.deepEqual(received, ['through the core']);
    } finally {
      client.close();
    }
  });

  it('is the file the package ships as pushlet-nestjs/pushlet-client.js, and the core as pushlet-nestjs/pushlet-client-core.js', () => {
    const exports = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).exports as Record<string, unknown>;
    assert.equal(exports['./pushlet-client.js'], './dist/pushlet-client.js');
    assert.equal(exports['./pushlet-client-core.js'], './dist/pushlet-client-core.js');
  });
});
