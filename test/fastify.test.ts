import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Test } from '@nestjs/testing';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { PushletModule, PushletService } from '../src/index.js';
import { SseClient } from './support/sse-client.js';
import { WsClient } from './support/ws-client.js';
import { request } from './support/app.js';

describe('on the Fastify platform', () => {
  let app: NestFastifyApplication;
  let url: string;

  before(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [PushletModule.forRoot({ heartbeatInterval: 60_000 })] }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  after(async () => {
    await app.close();
  });

  it('serves the SSE route with the contract headers, messages and 400s', async () => {
    const client = await SseClient.open(`${url}/events?topic=f`);
    try {
      assert.equal(client.status, 200);
      assert.equal(client.headers['content-type'], 'text/event-stream');
      await client.waitForEvents(1, 5_000, 'pushlet:connected');
      await app.get(PushletService).publish('f', 'message', 'over fastify');
      const [message] = await client.waitForEvents(1, 5_000, 'message');
      assert.equal(message!.data, 'over fastify');
      const bad = await request(`${url}/events?topic=a%20b`);
      assert.equal(bad.status, 400);
      assert.equal(JSON.parse(bad.body).statusCode, 400);
    } finally {
      client.close();
    }
  });

  it('serves the WebSocket endpoint', async () => {
    const client = await WsClient.open(`${url.replace(/^http/, 'ws')}/ws?topic=f`);
    try {
      await client.waitForEvents('pushlet:connected');
      await app.get(PushletService).publish('f', 'message', 'ws over fastify');
      const [message] = await client.waitForMessages(1);
      assert.equal(message!.data, 'ws over fastify');
    } finally {
      client.close();
    }
  });
});
