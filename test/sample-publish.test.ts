import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import { createSampleApp } from '../sample/app.js';
import { MAX_MESSAGE_BYTES } from '../sample/send.controller.js';
import { request } from './support/app.js';
import { SseClient } from './support/sse-client.js';

const json = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(body),
});
const form = (fields: Record<string, string>): RequestInit => ({ method: 'POST', body: new URLSearchParams(fields) });

/** Asserts a 4xx answer of the shape `{ statusCode, message }` and returns its message. */
function assertRefused(answer: { status: number; body: string; headers: Headers }, status: number): string {
  assert.equal(answer.status, status, answer.body);
  assert.match(answer.headers.get('content-type') ?? '', /application\/json/);
  const body = JSON.parse(answer.body) as { statusCode: unknown; message: unknown };
  assert.equal(body.statusCode, status);
  assert.equal(typeof body.message, 'string');
  return body.message as string;
}

describe('sample /send and /broadcast with the fields in a POST body (docs/protocol.md, The sample app)', () => {
  let app: INestApplication;
  let url: string;
  const clients: SseClient[] = [];
  const open = async (path: string) => {
    const client = await SseClient.open(url + path);
    clients.push(client);
    await client.waitForEvents(1, 5_000, 'pushlet:connected');
    return client;
  };

  before(async () => {
    app = await createSampleApp({ heartbeatMs: 60_000 }, { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(async () => {
    await app.close();
  });

  it('publishes the fields of a JSON body, a form body, or the query', async () => {
    const client = await open('/events?topic=body');
    const fromJson = await request(`${url}/send`, json({ topic: 'body', event: 'note', message: 'from json' }));
    assert.equal(fromJson.status, 200);
    assert.equal(fromJson.body, 'Message sent');
    assert.equal((await request(`${url}/send`, form({ topic: 'body', event: 'note', message: 'from a form' }))).status, 200);
    assert.equal((await request(`${url}/send?topic=body&event=note&message=from+the+query`, { method: 'POST' })).status, 200);
    assert.equal((await request(`${url}/send?topic=body&event=note&message=by+GET`)).status, 200);
    const events = await client.waitForEvents(4, 5_000, 'note');
    assert.deepEqual(
      events.map((e) => e.data),
      ['from json', 'from a form', 'from the query', 'by GET'],
    );
  });

  it('takes a body field over the query, the defaults for missing ones, and any JSON value as the message', async () => {
    const client = await open('/events');
    assert.equal((await request(`${url}/send?topic=elsewhere&message=query`, json({ topic: 'default', message: 'body' }))).status, 200);
    assert.equal((await request(`${url}/send`, json({ message: { n: 1 } }))).status, 200);
    const events = await client.waitForEvents(2, 5_000, 'message');
    assert.deepEqual(
      events.map((e) => e.data),
      ['body', '{"n":1}'],
    );
  });

  it('broadcasts the fields of a JSON or form body', async () => {
    const client = await open('/events?topic=anything');
    assert.equal((await request(`${url}/broadcast`, json({ event: 'news', message: 'json to all' }))).body, 'Message sent');
    assert.equal((await request(`${url}/broadcast`, form({ event: 'news', message: 'form to all' }))).body, 'Message sent');
    const events = await client.waitForEvents(2, 5_000, 'news');
    assert.deepEqual(
      events.map((e) => e.data),
      ['json to all', 'form to all'],
    );
  });

  it('answers a bad topic or event, in a body or the query, with 400 { statusCode, message }', async () => {
    assert.match(assertRefused(await request(`${url}/send`, json({ topic: 'a b', message: 'x' })), 400), /topic must not contain whitespace/);
    assert.match(assertRefused(await request(`${url}/send`, form({ topic: 'x'.repeat(201) })), 400), /topic must be 1 to 200/);
    assert.match(assertRefused(await request(`${url}/send`, json({ topic: 42 })), 400), /topic must be a string/);
    assert.match(assertRefused(await request(`${url}/send?topic=a&topic=b`), 400), /topic must be a string/);
    assert.match(assertRefused(await request(`${url}/send`, json({ event: 'pushlet:connected' })), 400), /event names starting with "pushlet:"/);
    assert.match(assertRefused(await request(`${url}/broadcast`, form({ event: 'a\nb' })), 400), /event must not contain CR, LF or NUL/);
  });

  it('answers a message over the size limit, or a body too large to read, with 413 { statusCode, message }', async () => {
    const client = await open('/events?topic=big');
    const atLimit = 'x'.repeat(MAX_MESSAGE_BYTES);
    assert.equal((await request(`${url}/send`, json({ topic: 'big', message: atLimit }))).status, 200);
    const overInBytes = 'é'.repeat(MAX_MESSAGE_BYTES / 2 + 1); // 2 bytes each in UTF-8
    assert.match(
      assertRefused(await request(`${url}/send`, json({ topic: 'big', message: overInBytes })), 413),
      /message must be at most 65536 bytes, got 65538/,
    );
    assert.match(assertRefused(await request(`${url}/send`, form({ topic: 'big', message: 'x'.repeat(MAX_MESSAGE_BYTES + 1) })), 413), /got 65537/);
    assert.match(assertRefused(await request(`${url}/broadcast`, json({ message: overInBytes })), 413), /at most 65536 bytes/);
    assertRefused(await request(`${url}/send`, json({ topic: 'big', message: 'x'.repeat(200_000) })), 413);
    // Only the message at the limit went out.
    await client.waitForEvents(1, 5_000, 'message');
    const probe = await request(`${url}/send`, json({ topic: 'big', message: 'after' }));
    assert.equal(probe.status, 200);
    const events = await client.waitForEvents(2, 5_000, 'message');
    assert.deepEqual(
      events.map((e) => e.data.length),
      [MAX_MESSAGE_BYTES, 'after'.length],
    );
  });

  it('answers malformed JSON with 400 { statusCode, message }', async () => {
    const answer = await request(`${url}/send`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{bad' });
    assertRefused(answer, 400);
  });
});
