import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { Controller, Headers, Query, Req, Sse } from '@nestjs/common';
import { PushletModule, PushletService } from '../src/index.js';
import type { TestApp } from './support/app.js';
import { perTestConnections } from './support/connections.js';
import { assertCleanEventStream, isValidWireId } from './support/wire-checks.js';

/**
 * Issue 10 on the other SSE path: `PushletService.stream()` behind an app's own `@Sse()` route,
 * where Nest writes the frames. The same rules hold: request fields never reach the stream raw,
 * every id field is a valid id, and a reset carries no id.
 */

@Controller('app')
class FeedController {
  constructor(private readonly pushlet: PushletService) {}

  @Sse('feed')
  feed(@Query('topic') topic: string | string[], @Headers('last-event-id') lastEventId: string | undefined, @Req() req: IncomingMessage) {
    return this.pushlet.stream(topic, { lastEventId, request: req });
  }
}

describe('stream() in an app route: nothing from the request reaches the stream raw (issue 10)', () => {
  const connections = perTestConnections();
  const { sse } = connections;
  const app = (): Promise<TestApp> =>
    connections.app({ metadata: { imports: [PushletModule.forRoot({ heartbeatInterval: 60_000 })], controllers: [FeedController] } });

  it('odd topics are echoed only inside JSON, and every id is valid', async () => {
    const t = await app();
    const topic = '"}],"x":"event:forged\\';
    const stream = await sse(t, `/app/feed?topic=${encodeURIComponent(topic)}`);
    const [connected] = await stream.waitForNamed('pushlet:connected');
    assert.deepEqual(JSON.parse(connected!.data!).topics, [topic]);
    await t.pushlet.publish(topic, 'news', 'line\r\nevent: forged\rid: evil');
    const [news] = await stream.waitForNamed('news');
    assert.equal(news!.data, 'line\nevent: forged\nid: evil');
    assertCleanEventStream(stream.events, stream.raw, ['news'], [], 'valid');
  });

  it('a Last-Event-ID header with forged fields gets a reset and is never written back', async () => {
    const t = await app();
    const stream = await sse(t, '/app/feed?topic=q', { 'Last-Event-ID': 'EVIL event: forged data: injected' });
    await stream.waitForNamed('pushlet:reset');
    await t.pushlet.publish('q', 'news', 'after');
    await stream.waitForNamed('news');
    assert.deepEqual(
      stream.dispatched.map((e) => e.event),
      ['pushlet:connected', 'pushlet:reset', 'news'],
    );
    assert.ok(!stream.raw.includes('EVIL'));
    for (const event of stream.events) if (event.id !== undefined) assert.ok(isValidWireId(event.id) || event.event === 'pushlet:reset', event.id);
  });

  it("a reset carries no id of Nest's, so a client that drops right after it resumes exactly from the connected id", async () => {
    const t = await app();
    const stream = await sse(t, '/app/feed?topic=r', { 'Last-Event-ID': 'bogus' });
    const [reset] = await stream.waitForNamed('pushlet:reset');
    const [connected] = stream.named('pushlet:connected');
    // Nest gives every event an id; the reset carries the connection's resume id, never a number of Nest's.
    assert.ok(reset!.id === undefined || reset!.id === connected!.id, `the reset carries id ${reset!.id}`);
    assertCleanEventStream(stream.events, stream.raw, [], [], 'valid');
    // What a browser sends on reconnect: the last id field it saw.
    const lastId = stream.events.reduce<string | undefined>((last, e) => e.id ?? last, undefined);
    assert.equal(lastId, connected!.id);
    stream.close();
    await t.pushlet.publish('r', 'news', 'missed');
    const resumed = await sse(t, '/app/feed?topic=r', { 'Last-Event-ID': lastId! });
    const [missed] = await resumed.waitForNamed('news');
    assert.equal(missed!.data, 'missed');
    assert.equal(resumed.named('pushlet:reset').length, 0);
  });
});
