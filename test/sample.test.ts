import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import { createSampleApp } from '../sample/app.js';
import { SseClient } from './support/sse-client.js';
import { request } from './support/app.js';

describe('sample app routes (docs/protocol.md, The sample app)', () => {
  let app: INestApplication;
  let url: string;
  const clients: SseClient[] = [];
  const open = async (path: string, headers?: Record<string, string>) => {
    const client = await SseClient.open(url + path, headers);
    clients.push(client);
    return client;
  };

  before(async () => {
    app = await createSampleApp({ heartbeatMs: 60_000, token: 't0ken' }, { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(async () => {
    await app.close();
  });

  it('serves the demo page at /', async () => {
    const page = await request(url + '/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.body, /new EventSource\("\/events\?topic=my-topic"\)/);
    // The client SDK's core build, from the file the sample serves.
    assert.match(page.body, /<script type="module">[^]*import \{ PushletClient \} from "\/pushlet-client-core\.js"/);
    assert.match(page.body, /new PushletClient\(location\.origin, /);
  });

  it('GET and POST /send publish with defaults topic=default, event=message, and answer 200 Message sent', async () => {
    const client = await open('/events');
    await client.waitForEvents(1);
    const get = await request(`${url}/send?message=one`);
    assert.equal(get.status, 200);
    assert.equal(get.body, 'Message sent');
    const post = await request(`${url}/send?topic=default&event=custom&message=two`, { method: 'POST' });
    assert.equal(post.status, 200);
    assert.equal(post.body, 'Message sent');
    const [one] = await client.waitForEvents(1, 5_000, 'message');
    const [two] = await client.waitForEvents(1, 5_000, 'custom');
    assert.equal(one!.data, 'one');
    assert.equal(two!.data, 'two');
  });

  it('GET and POST /broadcast reach every client', async () => {
    const a = await open('/events?topic=a');
    const b = await open('/events?topic=b');
    await Promise.all([a.waitForEvents(1), b.waitForEvents(1)]);
    assert.equal((await request(`${url}/broadcast?event=news&message=hi`)).body, 'Message sent');
    assert.equal((await request(`${url}/broadcast?message=again`, { method: 'POST' })).status, 200);
    for (const client of [a, b]) {
      await client.waitForEvents(1, 5_000, 'news');
      await client.waitForEvents(1, 5_000, 'message');
    }
  });

  it('answers a bad topic or event on /send with 400 {statusCode, message}', async () => {
    const bad = await request(`${url}/send?topic=a%20b&message=x`);
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.body).statusCode, 400);
    const reserved = await request(`${url}/send?event=pushlet:connected&message=x`);
    assert.equal(reserved.status, 400);
  });

  it('guards private/* topics with a token (header or query), as the authorize example', async () => {
    assert.equal((await request(`${url}/events?topic=private/room`)).status, 403);
    const withHeader = await open('/events?topic=private/room', { 'x-pushlet-token': 't0ken' });
    assert.equal(withHeader.status, 200);
    const withQuery = await open('/events?topic=private/room&token=t0ken');
    assert.equal(withQuery.status, 200);
  });
});
