import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { PushletBroker } from '../src/interfaces/broker.interface.js';
import type { Envelope } from '../src/core/envelope.js';
import { Feed, type FeedSink } from '../src/core/feed.js';
import { MemoryBroker } from '../src/core/memory-broker.js';
import { MemoryHistory } from '../src/core/memory-history.js';
import { Session, type SessionContext, type SessionOutput } from '../src/core/session.js';
import { TopicRegistry } from '../src/core/topic-registry.js';
import { RedisHistory } from '../src/cluster/redis-history.js';
import { RedisKeys } from '../src/cluster/redis-keys.js';
import { parseResumeId, type Position } from '../src/protocol/ids.js';
import type { Notice } from '../src/protocol/frames.js';
import { MESSAGES } from '../src/pushlet.messages.js';
import { PerTopicMemoryBroker } from './support/per-topic-broker.js';
import { RedisServer } from './support/redis.js';

const LIMITS = { maxCount: 5, maxAgeMs: 60_000, maxTopics: 100 };

/** A broker started with a registry, as the hub does. */
async function started(broker: PushletBroker = new MemoryBroker(LIMITS)) {
  const registry = new TopicRegistry(broker);
  await broker.start(registry);
  return { broker, registry };
}

/** A feed sink that records what reaches it. */
function recordingSink() {
  const seen: Array<{ kind: 'message'; data: string; topic: string } | { kind: 'gap'; topics: readonly string[]; reason: string }> = [];
  const sink: FeedSink = {
    deliver: (envelope) => seen.push({ kind: 'message', data: envelope.message.data, topic: envelope.topic }),
    gap: (topics, reason) => seen.push({ kind: 'gap', topics, reason }),
    whenWritable: () => undefined,
  };
  return { sink, seen, data: () => seen.filter((s) => s.kind === 'message').map((s) => (s as { data: string }).data) };
}

describe('Feed (core/feed.ts)', () => {
  it('delivers live messages of its topics once, and nothing published before it was asked for', async () => {
    const { broker, registry } = await started();
    const memory = broker as MemoryBroker;
    memory.publishNow('a', 'message', 'before');
    const { sink, data } = recordingSink();
    const feed = new Feed(registry, broker, sink);
    await feed.add([{ topic: 'a' }, { topic: 'b' }]);
    memory.publishNow('a', 'message', 'a1');
    memory.publishNow('c', 'message', 'not mine');
    memory.publishNow('b', 'message', 'b1');
    assert.deepEqual(data(), ['a1', 'b1']);
    feed.close();
    memory.publishNow('a', 'message', 'after close');
    assert.deepEqual(data(), ['a1', 'b1']);
    assert.equal(registry.topicCount, 0, 'closing releases every topic');
  });

  it('replays after a position, then what arrived meanwhile, each once and in order', async () => {
    const { broker, registry } = await started();
    const memory = broker as MemoryBroker;
    const from = memory.publishNow('a', 'message', 'm0').position;
    memory.publishNow('a', 'message', 'm1');
    memory.publishNow('a', 'message', 'm2');
    const { data, seen } = recordingSink();
    // The sink publishes while the replay is written: live messages arrive during the catch-up.
    let injected = false;
    const feed = new Feed(registry, broker, {
      deliver: (envelope) => {
        seen.push({ kind: 'message', data: envelope.message.data, topic: envelope.topic });
        if (!injected) {
          injected = true;
          memory.publishNow('a', 'message', 'live during replay');
        }
      },
      gap: (topics, reason) => seen.push({ kind: 'gap', topics, reason }),
      whenWritable: () => undefined,
    });
    await feed.add([{ topic: 'a', after: from }]);
    memory.publishNow('a', 'message', 'm3');
    assert.deepEqual(data(), ['m1', 'm2', 'live during replay', 'm3']);
    feed.close();
  });

  it('says why when a position cannot be continued, and starts from now', async () => {
    const { broker, registry } = await started();
    const memory = broker as MemoryBroker;
    const old = memory.publishNow('a', 'message', 'old').position;
    for (let i = 0; i < 10; i++) memory.publishNow('a', 'message', `x${i}`);
    const { sink, seen, data } = recordingSink();
    const feed = new Feed(registry, broker, sink);
    await feed.add([{ topic: 'a', after: old }]);
    memory.publishNow('a', 'message', 'live');
    assert.deepEqual(seen[0], { kind: 'gap', topics: ['a'], reason: MESSAGES.resetTooOld });
    assert.deepEqual(data(), ['live'], 'what is left of the history is not replayed');
    feed.close();
  });

  it('passes a broker gap on only to a topic not already past it, and moves the topic there', async () => {
    const { broker, registry } = await started();
    const memory = broker as MemoryBroker;
    const { sink, seen } = recordingSink();
    const feed = new Feed(registry, broker, sink);
    await feed.add([{ topic: 'a' }]);
    const at = memory.publishNow('a', 'message', 'a1').position;
    registry.gap('a', { ms: at.ms - 1, seq: 0 });
    assert.equal(seen.filter((s) => s.kind === 'gap').length, 0, 'already past the lost part');
    const until: Position = { ms: at.ms + 1_000, seq: 0 };
    registry.gap('a', until);
    assert.deepEqual(seen.at(-1), { kind: 'gap', topics: ['a'], reason: MESSAGES.resetHistoryLost });
    assert.deepEqual(feed.topicPositions.get('a')!.position.last, until);
    feed.close();
  });
});

/** A session output that records frames, with a write queue the test controls. */
function recordingOutput() {
  const notices: Notice[] = [];
  const messages: Array<{ data: string; id: string | undefined }> = [];
  const ends: string[] = [];
  let queued = 0;
  const output: SessionOutput = {
    message: (envelope: Envelope, id) => messages.push({ data: envelope.message.data, id }),
    notice: (notice) => notices.push(notice),
    queue: { queuedBytes: () => queued, drainSource: new EventEmitter() },
    end: (reason) => ends.push(reason),
  };
  return { output, notices, messages, ends, setQueued: (bytes: number) => (queued = bytes) };
}

function sessionOn(broker: PushletBroker, registry: TopicRegistry, output: SessionOutput, slow: string[] = []): Session {
  const context: SessionContext = {
    feedOf: (sink) => new Feed(registry, broker, sink),
    ordering: broker.ordering,
    bufferBytes: 1_000,
    validateTopics: () => undefined,
    authorize: async () => undefined,
    slowConsumer: (transport, address) => slow.push(`${transport} ${address}`),
    refused: () => undefined,
    resumed: () => undefined,
    closed: () => undefined,
  };
  return new Session(context, output, 'sse', '127.0.0.1', { release: () => undefined });
}

describe('Session (core/session.ts)', () => {
  it('sends pushlet:connected first with a resume id, then messages with their own ids (ids ordered across topics)', async () => {
    const { broker, registry } = await started();
    const recorded = recordingOutput();
    const session = sessionOn(broker, registry, recorded.output);
    await session.start(['a'], undefined);
    assert.equal(recorded.notices[0]!.event, 'pushlet:connected');
    assert.ok(parseResumeId(recorded.notices[0]!.id));
    await (broker as MemoryBroker).publish('a', 'message', 'one');
    assert.deepEqual(recorded.messages, [{ data: 'one', id: undefined }], 'undefined: the shared encoding with the message id');
    session.dispose();
    assert.equal(registry.topicCount, 0);
  });

  it('answers every kind of bad id with one reset, then live messages, and a good connected id', async () => {
    const { broker, registry } = await started();
    for (const bad of ['garbage', 'x'.repeat(300), `${Date.now() + 3_600_000}-0`, 'c1_0.abc_0_0', '1-0\nevent: forged']) {
      const recorded = recordingOutput();
      const session = sessionOn(broker, registry, recorded.output);
      await session.start(['a'], bad);
      const [connected, reset] = recorded.notices;
      assert.equal(connected!.event, 'pushlet:connected', bad);
      assert.ok(parseResumeId(connected!.id), `a good connected id for ${JSON.stringify(bad)}`);
      assert.notEqual(connected!.id, bad);
      assert.equal(reset!.event, 'pushlet:reset', bad);
      assert.equal(reset!.id, undefined);
      assert.deepEqual(JSON.parse(reset!.data).topics, ['a']);
      session.dispose();
    }
  });

  it('shows a per-connection cursor with every topic\'s position where ids are ordered per topic, and resumes exactly from it', async () => {
    const { broker, registry } = await started(new PerTopicMemoryBroker());
    const first = recordingOutput();
    const session = sessionOn(broker, registry, first.output);
    await session.start(['a', 'b'], undefined);
    await broker.publish('a', 'message', 'a1');
    await broker.publish('b', 'message', 'b1');
    const cursor = first.messages.at(-1)!.id!;
    const parsed = parseResumeId(cursor);
    assert.equal(parsed?.kind, 'cursor');
    assert.equal(parsed.kind === 'cursor' && parsed.positions.size, 3, 'a, b and broadcasts');
    session.dispose();
    await broker.publish('a', 'message', 'a2');
    await broker.publish('b', 'message', 'b2');
    const second = recordingOutput();
    const resumed = sessionOn(broker, registry, second.output);
    await resumed.start(['a', 'b'], cursor);
    assert.deepEqual(second.messages.map((m) => m.data), ['a2', 'b2']);
    assert.equal(second.notices.filter((n) => n.event === 'pushlet:reset').length, 0);
    resumed.dispose();
  });

  it('ends a client that overflows its bound as a slow consumer, once', async () => {
    const { broker, registry } = await started();
    const recorded = recordingOutput();
    const slow: string[] = [];
    const session = sessionOn(broker, registry, recorded.output, slow);
    await session.start(['a'], undefined);
    recorded.setQueued(900);
    assert.equal(session.writer.admit(50), true, 'within the bound');
    assert.equal(session.writer.admit(200), false, 'past it');
    assert.equal(session.writer.admit(1), false);
    assert.deepEqual(recorded.ends, ['slow']);
    assert.deepEqual(slow, ['sse 127.0.0.1']);
    session.dispose();
    const fresh = recordingOutput();
    const other = sessionOn(broker, registry, fresh.output);
    assert.equal(other.writer.admit(5_000), true, 'a frame larger than the bound passes when nothing is queued');
    other.dispose();
  });
});

describe('MemoryHistory (core/memory-history.ts)', () => {
  it('replays per topic after each position, says incomplete after an eviction and unknown ahead of every id', () => {
    const broker = new MemoryBroker(LIMITS);
    const history = new MemoryHistory(LIMITS, { ms: 0, seq: 0 });
    const envelopes = Array.from({ length: 8 }, (_, i) => broker.publishNow(i % 2 ? 'b' : 'a', 'message', `m${i}`));
    for (const envelope of envelopes) history.append(envelope);
    const at = envelopes[3]!.position;
    const result = history.replay([
      { topic: 'a', after: at },
      { topic: 'b', after: at },
    ]);
    assert.deepEqual(result.envelopes.map((e) => e.message.data), ['m4', 'm5', 'm6', 'm7'], 'merged in id order');
    assert.deepEqual(result.incomplete, []);
    assert.deepEqual(history.replay([{ topic: 'a', after: envelopes[0]!.position }]).incomplete, [], '4 of a kept (maxCount 5)');
    const many = new MemoryHistory(LIMITS, { ms: 0, seq: 0 });
    for (let i = 0; i < 8; i++) many.append(broker.publishNow('c', 'message', `c${i}`));
    assert.deepEqual(many.replay([{ topic: 'c', after: { ms: 1, seq: 0 } }]).incomplete, ['c'], 'evicted past maxCount');
    assert.deepEqual(history.replay([{ topic: 'a', after: { ms: Date.now() + 3_600_000, seq: 0 } }]).unknown, ['a']);
  });
});

describe('RedisHistory (cluster/redis-history.ts) on a real redis-server', () => {
  let server: RedisServer;
  let client: Redis;
  before(async () => {
    server = await RedisServer.start();
    client = new Redis(server.url, { lazyConnect: true });
    await client.connect();
  });
  after(async () => {
    client.disconnect();
    await server.stop();
  });

  it('records a publication sent twice once, answering the first id; reads per topic with the floor', async () => {
    const history = new RedisHistory(client, new RedisKeys('unit:'), false, { maxCount: 3, maxAgeMs: 60_000 });
    await history.loadScripts();
    // As the broker does on every (re)connection, before it hands out any position.
    await history.checkEpoch([['server', 'run-a']]);
    const [start] = await history.positions(['t']);
    const first = await history.append({ topic: 't', event: 'message', data: 'one', origin: 'o1', counter: 1 });
    const again = await history.append({ topic: 't', event: 'message', data: 'one', origin: 'o1', counter: 1 });
    assert.equal(again, first, 'a resend gets the first id');
    await history.append({ topic: 't', event: 'message', data: 'two', origin: 'o1', counter: 2 });
    const [complete] = await history.read([{ topic: 't', after: start! }]);
    assert.deepEqual(complete!.received.map((r) => r.envelope.message.data), ['one', 'two']);
    assert.equal(complete!.incomplete, false);
    for (let i = 3; i <= 6; i++) await history.append({ topic: 't', event: 'message', data: `m${i}`, origin: 'o1', counter: i });
    const [trimmed] = await history.read([{ topic: 't', after: start! }]);
    assert.equal(trimmed!.incomplete, true, 'maxCount 3 trimmed what came after the start');
    const [future] = await history.read([{ topic: 't', after: { ms: Date.now() + 3_600_000, seq: 0 } }]);
    assert.equal(future!.unknown, true);
  });

  it('says incomplete for every position before a data loss (the epoch horizon)', async () => {
    const history = new RedisHistory(client, new RedisKeys('unit2:'), false, { maxCount: 100, maxAgeMs: 60_000 });
    await history.loadScripts();
    await history.checkEpoch([['server', 'run-a']]);
    const [start] = await history.positions(['t']);
    await history.append({ topic: 't', event: 'message', data: 'one', origin: 'o1', counter: 1 });
    await client.flushall();
    await history.loadScripts();
    const [lost] = await history.read([{ topic: 't', after: start! }]);
    assert.equal(lost!.incomplete, true);
  });
});

