import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { BrokerEvents, BrokerPublication, BrokerRecord, PushletBroker, TopicRead } from '../src/interfaces/broker.interface.js';
import { Envelope } from '../src/core/envelope.js';
import { RecentWindow } from '../src/core/recent-window.js';
import { Feed, type FeedSink } from '../src/core/feed.js';
import { MemoryBroker } from '../src/core/memory-broker.js';
import { MemoryHistory } from '../src/core/memory-history.js';
import { Session, type SessionContext, type SessionOutput } from '../src/core/session.js';
import { TopicRegistry } from '../src/core/topic-registry.js';
import { ConnectionTracker } from '../src/core/connection-tracker.js';
import { RedisHistory } from '../src/cluster/redis-history.js';
import { RedisKeys } from '../src/cluster/redis-keys.js';
import { receivePublications } from '../src/cluster/redis-codec.js';
import { RecentPublications } from '../src/core/recent-publications.js';
import { readMany, readVerdict, RecoveryCore } from '../src/core/recovery-core.js';
import { PerTurn } from '../src/core/per-turn.js';
import { comparePositions, parseResumeId, type Position } from '../src/protocol/ids.js';
import type { Notice } from '../src/protocol/frames.js';
import { MESSAGES } from '../src/pushlet.messages.js';
import { PerTopicMemoryBroker } from './support/per-topic-broker.js';
import { RedisServer } from './support/redis.js';
import { eventually } from './support/wait.js';

function compareIdText(a: string, b: string): number {
  const [ams, aseq] = a.split('-').map(Number) as [number, number];
  const [bms, bseq] = b.split('-').map(Number) as [number, number];
  return ams - bms || aseq - bseq;
}

const LIMITS = { maxCount: 5, maxAgeMs: 60_000, maxTopics: 100 };

const SILENT = { log: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

/** A broker driven by the recovery core and started with a registry, as the hub does. */
async function started(adapter: PushletBroker = new MemoryBroker(LIMITS)) {
  const broker = new RecoveryCore(adapter, SILENT);
  const registry = new TopicRegistry(broker);
  await broker.start({ message: registry.message, gap: registry.gap, control: () => undefined });
  return { broker, registry, memory: adapter as MemoryBroker };
}

describe('the recovery core started with nothing watched', () => {
  it('does not keep holding live records once ready: a topic watched later gets them', async () => {
    const memory = new MemoryBroker(LIMITS);
    const core = new RecoveryCore(memory, SILENT);
    const seen: string[] = [];
    await core.start({ message: (envelope) => seen.push(envelope.message.data), gap: () => undefined, control: () => undefined });
    assert.equal(core.stats().state, 'ready');
    await core.watch('t');
    memory.record('t', 'message', 'one');
    await core.publish('t', 'message', 'two');
    assert.deepEqual(seen, ['one', 'two']);
    await core.stop();
  });
});

/** The old merged shape of a memory history read: records in position order, and the topics that are incomplete or unknown. */
function replay(history: MemoryHistory, requests: ReadonlyArray<{ topic: string; after: Position }>) {
  const reads: TopicRead[] = history.read(requests);
  const verdicts = reads.map((read, i) => readVerdict(read, requests[i]!.after));
  return {
    envelopes: reads.flatMap((read) => read.records).sort((a, b) => a.position.ms - b.position.ms || a.position.seq - b.position.seq),
    incomplete: reads.filter((_, i) => verdicts[i] === 'incomplete').map((read) => read.topic),
    unknown: reads.filter((_, i) => verdicts[i] === 'unknown').map((read) => read.topic),
  };
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
    const { broker, registry, memory } = await started();
    memory.record('a', 'message', 'before');
    const { sink, data } = recordingSink();
    const feed = new Feed(registry, broker, sink);
    await feed.add([{ topic: 'a' }, { topic: 'b' }]);
    memory.record('a', 'message', 'a1');
    memory.record('c', 'message', 'not mine');
    memory.record('b', 'message', 'b1');
    assert.deepEqual(data(), ['a1', 'b1']);
    feed.close();
    memory.record('a', 'message', 'after close');
    assert.deepEqual(data(), ['a1', 'b1']);
    assert.equal(registry.topicCount, 0, 'closing releases every topic');
  });

  it('replays after a position, then what arrived meanwhile, each once and in order', async () => {
    const { broker, registry, memory } = await started();
    const from = memory.record('a', 'message', 'm0').position;
    memory.record('a', 'message', 'm1');
    memory.record('a', 'message', 'm2');
    const { data, seen } = recordingSink();
    // The sink publishes while the replay is written: live messages arrive during the catch-up.
    let injected = false;
    const feed = new Feed(registry, broker, {
      deliver: (envelope) => {
        seen.push({ kind: 'message', data: envelope.message.data, topic: envelope.topic });
        if (!injected) {
          injected = true;
          memory.record('a', 'message', 'live during replay');
        }
      },
      gap: (topics, reason) => seen.push({ kind: 'gap', topics, reason }),
      whenWritable: () => undefined,
    });
    await feed.add([{ topic: 'a', after: from }]);
    memory.record('a', 'message', 'm3');
    assert.deepEqual(data(), ['m1', 'm2', 'live during replay', 'm3']);
    feed.close();
  });

  it('says why when a position cannot be continued, and starts from now', async () => {
    const { broker, registry, memory } = await started();
    const old = memory.record('a', 'message', 'old').position;
    for (let i = 0; i < 10; i++) memory.record('a', 'message', `x${i}`);
    const { sink, seen, data } = recordingSink();
    const feed = new Feed(registry, broker, sink);
    await feed.add([{ topic: 'a', after: old }]);
    memory.record('a', 'message', 'live');
    assert.deepEqual(seen[0], { kind: 'gap', topics: ['a'], reason: MESSAGES.resetTooOld });
    assert.deepEqual(data(), ['live'], 'what is left of the history is not replayed');
    feed.close();
  });

  it('passes a broker gap on only to a topic not already past it, and moves the topic there', async () => {
    const { broker, registry, memory } = await started();
    const { sink, seen } = recordingSink();
    const feed = new Feed(registry, broker, sink);
    await feed.add([{ topic: 'a' }]);
    const at = memory.record('a', 'message', 'a1').position;
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

function sessionOn(broker: RecoveryCore, registry: TopicRegistry, output: SessionOutput, slow: string[] = []): Session {
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

describe('ConnectionTracker (core/connection-tracker.ts)', () => {
  const limits = { maxConnections: Infinity, maxConnectionsPerUser: Infinity };
  it('counts client addresses only under a per-address limit (reading one is a system call)', () => {
    assert.equal(new ConnectionTracker({ ...limits, maxConnectionsPerAddress: Infinity }).countsAddresses, false);
    const tracker = new ConnectionTracker({ ...limits, maxConnectionsPerAddress: 1 });
    assert.equal(tracker.countsAddresses, true);
    const slot = tracker.acquire('ws', '10.0.0.1');
    assert.throws(() => tracker.acquire('sse', '10.0.0.1'), /too many connections from this address/);
    const other = tracker.acquire('sse', '10.0.0.2');
    slot.release();
    slot.release();
    tracker.acquire('sse', '10.0.0.1').release();
    other.release();
    assert.deepEqual(tracker.snapshot(), { sse: 0, ws: 0, total: 0, addresses: 0, users: 0 });
  });
});

describe('Session (core/session.ts)', () => {
  it('sends pushlet:connected first with a resume id, then messages with their own ids (ids ordered across topics)', async () => {
    const { broker, registry } = await started();
    const recorded = recordingOutput();
    const session = sessionOn(broker, registry, recorded.output);
    await session.start(['a'], undefined);
    assert.equal(recorded.notices[0]!.event, 'pushlet:connected');
    assert.ok(parseResumeId(recorded.notices[0]!.id));
    await broker.publish('a', 'message', 'one');
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

  it("shows a per-connection cursor with every topic's position where ids are ordered per topic, and resumes exactly from it", async () => {
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
    assert.deepEqual(
      second.messages.map((m) => m.data),
      ['a2', 'b2'],
    );
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
    const records = Array.from({ length: 8 }, (_, i) => broker.record(i % 2 ? 'b' : 'a', 'message', `m${i}`));
    for (const record of records) history.append(record);
    const at = records[3]!.position;
    const result = replay(history, [
      { topic: 'a', after: at },
      { topic: 'b', after: at },
    ]);
    assert.deepEqual(
      result.envelopes.map((e) => e.data),
      ['m4', 'm5', 'm6', 'm7'],
      'merged in id order',
    );
    assert.deepEqual(result.incomplete, []);
    assert.deepEqual(replay(history, [{ topic: 'a', after: records[0]!.position }]).incomplete, [], '4 of a kept (maxCount 5)');
    const many = new MemoryHistory(LIMITS, { ms: 0, seq: 0 });
    for (let i = 0; i < 8; i++) many.append(broker.record('c', 'message', `c${i}`));
    assert.deepEqual(replay(many, [{ topic: 'c', after: { ms: 1, seq: 0 } }]).incomplete, ['c'], 'evicted past maxCount');
    assert.deepEqual(replay(history, [{ topic: 'a', after: { ms: Date.now() + 3_600_000, seq: 0 } }]).unknown, ['a']);
  });
});

describe('MemoryHistory bounded by bytes', () => {
  it('evicts the oldest message of any topic past maxBytes, and says incomplete only for that topic', () => {
    const broker = new MemoryBroker({ maxCount: 1_000, maxAgeMs: 60_000, maxTopics: Infinity });
    const history = new MemoryHistory({ maxCount: 1_000, maxAgeMs: 60_000, maxTopics: Infinity, maxBytes: 20_000 }, { ms: 0, seq: 0 });
    const start = broker.record('x', 'message', 'before');
    const sent: BrokerRecord[] = [];
    for (let i = 0; i < 400; i++) {
      const record = broker.record(`t${i % 40}`, 'message', `m${i}`.padEnd(100, '.'));
      history.append(record);
      sent.push(record);
      assert.ok(history.retainedBytes <= 20_000, `bytes stay bounded (${history.retainedBytes} after ${i + 1})`);
    }
    assert.equal(history.topicCount, 40, 'no topic was dropped');
    // Everything retained is the newest messages, in order: the oldest went first, whatever the topic.
    const all = replay(
      history,
      Array.from({ length: 40 }, (_, t) => ({ topic: `t${t}`, after: start.position })),
    );
    const kept = all.envelopes.map((e) => e.data);
    assert.ok(kept.length > 20 && kept.length < 400, `some kept, some evicted (${kept.length})`);
    assert.deepEqual(
      kept,
      sent.slice(400 - kept.length).map((e) => e.data),
    );
    assert.equal(all.incomplete.length, 40, 'every topic lost its oldest messages');
    // A client that saw the newest message of an evicted range resumes exactly.
    // A client whose position is within what is kept resumes exactly (t35: 355 evicted, 395 kept).
    const recent = replay(history, [{ topic: 't35', after: sent[380]!.position }]);
    assert.deepEqual(recent.incomplete, []);
    assert.deepEqual(
      recent.envelopes.map((e) => e.position),
      [sent[395]!.position],
    );
    assert.deepEqual(replay(history, [{ topic: 't35', after: sent[340]!.position }]).incomplete, ['t35'], '355 was evicted');
  });

  it('keeps 2,000 live topics with the defaults without dropping one, and its queue stays compact', () => {
    const broker = new MemoryBroker({ maxCount: 1_000, maxAgeMs: 60_000, maxTopics: Infinity });
    const history = new MemoryHistory({ maxCount: 5, maxAgeMs: 60_000, maxTopics: Infinity }, { ms: 0, seq: 0 });
    const start = broker.record('x', 'message', 'before');
    for (let i = 0; i < 40_000; i++) history.append(broker.record(`t${i % 2_000}`, 'message', 'x'.repeat(100)));
    assert.equal(history.topicCount, 2_000);
    const queued = (history as unknown as { order: { size: number } }).order.size;
    assert.ok(queued <= 2 * 10_000 + 1_024, `queue holds ${queued} for 10,000 retained`);
    const after = broker.record('x', 'message', 'mark');
    history.append(broker.record('t7', 'message', 'new'));
    assert.deepEqual(replay(history, [{ topic: 't7', after: after.position }]), {
      envelopes: replay(history, [{ topic: 't7', after: after.position }]).envelopes,
      incomplete: [],
      unknown: [],
    });
    assert.deepEqual(replay(history, [{ topic: 't7', after: start.position }]).incomplete, ['t7'], 'maxCount 5 evicted older ones');
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
    assert.deepEqual(
      complete!.records.map((r) => r.data),
      ['one', 'two'],
    );
    assert.equal(readVerdict(complete!, start!), 'exact');
    for (let i = 3; i <= 6; i++) await history.append({ topic: 't', event: 'message', data: `m${i}`, origin: 'o1', counter: i });
    const [trimmed] = await history.read([{ topic: 't', after: start! }]);
    assert.equal(readVerdict(trimmed!, start!), 'incomplete', 'maxCount 3 trimmed what came after the start');
    const ahead = { ms: Date.now() + 3_600_000, seq: 0 };
    const [future] = await history.read([{ topic: 't', after: ahead }]);
    assert.equal(readVerdict(future!, ahead), 'unknown');
  });

  it('reads without writing: entries past the max age are skipped as if trimmed, with the exact floor', async () => {
    const keys = new RedisKeys('aged:');
    const history = new RedisHistory(client, keys, false, { maxCount: 100, maxAgeMs: 1_000 });
    await history.loadScripts();
    await history.checkEpoch([['server', 'run-a']]);
    const [start] = await history.positions(['t']);
    const at = (id: string) => ({ ms: Number(id.split('-')[0]), seq: Number(id.split('-')[1]) });
    const old: string[] = [];
    for (let i = 1; i <= 3; i++) old.push(await history.append({ topic: 't', event: 'message', data: `old${i}`, origin: 'o1', counter: i }));
    await new Promise((resolve) => setTimeout(resolve, 700));
    // The publish script trims by age what is older than the max age at that moment: nothing yet.
    const fresh = await history.append({ topic: 't', event: 'message', data: 'fresh', origin: 'o1', counter: 4 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await client.xlen(keys.stream('t')), 4, 'the expired entries are still in the stream');
    const writes = (info: string) =>
      ['xtrim', 'pexpire', 'hset', 'set', 'xadd', 'del'].reduce((n, cmd) => n + Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0), 0);
    const before = await client.info('commandstats');
    const reads = await history.read([
      { topic: 't', after: start! },
      { topic: 't', after: at(old[0]!) },
      { topic: 't', after: at(old[2]!) },
    ]);
    const after = await client.info('commandstats');
    assert.equal(writes(after) - writes(before), 0, 'a read writes nothing');
    for (const read of reads)
      assert.deepEqual(
        read.records.map((r) => r.data),
        ['fresh'],
        'only what is within the max age',
      );
    const [fromStart, fromOld, fromLast] = reads;
    assert.deepEqual(fromLast!.floor, at(old[2]!), 'the floor: the last expired entry, as if trimmed');
    assert.equal(readVerdict(fromLast!, at(old[2]!)), 'exact');
    assert.equal(readVerdict(fromOld!, at(old[0]!)), 'incomplete');
    assert.equal(readVerdict(fromStart!, start!), 'incomplete');
    assert.ok(compareIdText(fresh, old[2]!) > 0);
  });

  it('publishes a batch of many topics in one script call: ids in order, one pub/sub message per topic, a resent batch recorded once', async () => {
    const keys = new RedisKeys('batch:');
    const history = new RedisHistory(client, keys, false, { maxCount: 100, maxAgeMs: 60_000 });
    await history.loadScripts();
    await history.checkEpoch([['server', 'run-a']]);
    const [start] = await history.positions(['a']);
    const listener = client.duplicate();
    const payloads: Array<[string, string]> = [];
    listener.on('message', (channel: string, payload: string) => payloads.push([channel, payload]));
    await listener.subscribe(keys.channel('a'), keys.channel('b'));
    try {
      const batch = ['a', 'b', 'a', 'b', 'a'].map((topic, i) => ({ topic, event: 'message', data: `${topic}${i}\nline`, origin: 'o1', counter: i + 1 }));
      const before = await client.info('commandstats');
      const ids = await Promise.all(history.appendAll(batch));
      const after = await client.info('commandstats');
      const calls = (info: string) => Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
      assert.equal(calls(after) - calls(before), 1, 'one script call for the batch');
      const positions = ids.map((id) => id.split('-').map(Number) as [number, number]);
      const byTopic = (topic: string) => ids.filter((_, i) => batch[i]!.topic === topic);
      for (const topic of ['a', 'b']) {
        const own = byTopic(topic);
        assert.deepEqual([...own].sort(compareIdText), own, `ids of ${topic} increase in publication order`);
      }
      assert.equal(new Set(ids).size, 5, 'five distinct ids');
      assert.ok(positions.every(([ms]) => ms > 0));
      // A resend of the same batch (a lost reply) gets the same ids and records nothing twice.
      const again = await Promise.all(history.appendAll(batch));
      assert.deepEqual(again, ids);
      const [replay] = await history.read([{ topic: 'a', after: start! }]);
      assert.deepEqual(
        replay!.records.map((r) => r.data),
        ['a0\nline', 'a2\nline', 'a4\nline'],
      );
      // An overtaken publication (a lower counter never recorded) is recorded, not dropped.
      const [late] = await Promise.all(history.appendAll([{ topic: 'a', event: 'message', data: 'late', origin: 'o2', counter: 7 }]));
      // The next publication on `a` is a marker: every pub/sub message before it has arrived.
      await eventually(async () => payloads.length >= 3, 5_000, 'the pub/sub messages up to the marker');
      assert.equal(payloads.length, 3, 'one pub/sub message per topic and batch; nothing for the resend');
      assert.deepEqual(
        payloads.map(([channel, payload]) => [channel, receivePublications(payload).map((r) => r.data)]),
        [
          [keys.channel('a'), ['a0\nline', 'a2\nline', 'a4\nline']],
          [keys.channel('b'), ['b1\nline', 'b3\nline']],
          [keys.channel('a'), ['late']],
        ],
      );
      const [overtaken] = await Promise.all(history.appendAll([{ topic: 'a', event: 'message', data: 'overtaken', origin: 'o2', counter: 6 }]));
      assert.ok(compareIdText(overtaken!, late!) > 0);
      // Lifetimes: the stream outlives its last entry by the max age at least.
      assert.ok((await client.pttl(keys.stream('a'))) > 60_000);
    } finally {
      listener.disconnect();
    }
  });

  it('serves many readers of one turn with one read: each gets what follows its own position', async () => {
    const history = new RedisHistory(client, new RedisKeys('many:'), false, { maxCount: 100, maxAgeMs: 60_000 });
    await history.loadScripts();
    await history.checkEpoch([['server', 'run-a']]);
    const ids: string[] = [];
    for (let i = 1; i <= 6; i++) ids.push(await history.append({ topic: i % 2 ? 'odd' : 'even', event: 'message', data: `m${i}`, origin: 'o1', counter: i }));
    const at = (id: string) => ({ ms: Number(id.split('-')[0]), seq: Number(id.split('-')[1]) });
    const adapter = { read: (requests) => history.read(requests) } as Pick<PushletBroker, 'read'> as PushletBroker;
    const reads = new PerTurn<Array<{ topic: string; after: Position }>, TopicRead[]>((readers) => readMany(adapter, readers));
    const before = await client.info('commandstats');
    const answers = await Promise.all([
      reads.call([{ topic: 'odd', after: at(ids[0]!) }]),
      reads.call([
        { topic: 'odd', after: at(ids[2]!) },
        { topic: 'even', after: at(ids[1]!) },
      ]),
      reads.call([{ topic: 'even', after: { ms: Date.now() + 3_600_000, seq: 0 } }]),
    ]);
    const after = await client.info('commandstats');
    const calls = (info: string) => Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
    assert.equal(calls(after) - calls(before), 1, 'one script call for three readers');
    const data = (replays: TopicRead[]) => replays.map((r) => r.records.map((x) => x.data));
    assert.deepEqual(data(answers[0]!), [['m3', 'm5']]);
    assert.deepEqual(data(answers[1]!), [['m5'], ['m4', 'm6']]);
    assert.deepEqual(
      answers[1]!.map((r, i) => readVerdict(r, [at(ids[2]!), at(ids[1]!)][i]!)),
      ['exact', 'exact'],
    );
    assert.equal(
      readVerdict(answers[2]![0]!, { ms: Date.now() + 3_600_000, seq: 0 }),
      'unknown',
      'a position ahead of Redis is unknown, even read with others',
    );
    assert.deepEqual(data(answers[2]!), [[]]);
  });

  it('says incomplete for every position before a data loss (the epoch horizon)', async () => {
    const history = new RedisHistory(client, new RedisKeys('unit2:'), false, { maxCount: 100, maxAgeMs: 60_000 });
    await history.loadScripts();
    await history.checkEpoch([['server', 'run-a']]);
    const [start] = await history.positions(['t']);
    await history.append({ topic: 't', event: 'message', data: 'one', origin: 'o1', counter: 1 });
    // Redis's clock must pass the start's millisecond: a horizon recreated in that same millisecond
    // ({ms, 0}) is not after a start of {ms, 0} (known limit: a loss within one millisecond of a
    // position read).
    const startMs = start!.ms;
    await eventually(
      async () => Number((await client.time())[0]) * 1000 + Math.floor(Number((await client.time())[1]) / 1000) > startMs,
      1_000,
      'the next millisecond',
    );
    await client.flushall();
    await history.loadScripts();
    const [lost] = await history.read([{ topic: 't', after: start! }]);
    assert.equal(readVerdict(lost!, start!), 'incomplete');
  });
});

describe('RecentPublications (core/recent-publications.ts)', () => {
  it('takes a second record of a publication (another id) for a copy, the same record read again for none', () => {
    const recent = new RecentPublications(10);
    assert.equal(recent.add('o1', 1, '100-1'), true);
    assert.equal(recent.add('o1', 1, '100-1'), true, 'the same record again (a topic followed again): not a copy');
    assert.equal(recent.add('o1', 1, '250-3'), false, 'the same publication recorded again under another id: a copy');
    assert.equal(recent.add('o2', 1, '250-3'), true, 'another origin, another publication');
  });

  it('forgets the oldest publications past its capacity', () => {
    const recent = new RecentPublications(2);
    recent.add('o1', 1, '1-1');
    recent.add('o1', 2, '2-1');
    recent.add('o1', 3, '3-1');
    assert.equal(recent.has('o1', 1), false);
    assert.equal(recent.add('o1', 1, '9-1'), true, 'forgotten: no longer recognised as a copy');
    assert.equal(recent.add('o1', 3, '9-2'), false);
  });
});

describe('Publishing through the recovery core (core/recovery-core.ts, core/outbox.ts)', () => {
  it('with a broker in the process: resolves with the envelope delivered here, in order, a publication made on delivery after it', async () => {
    const delivered: Envelope[] = [];
    const core = new RecoveryCore(new MemoryBroker(LIMITS), SILENT);
    let reply: Promise<Envelope> | undefined;
    // Watched before the start, as the topic registry watches broadcasts.
    void core.watch('a');
    await core.start({
      message: (envelope) => {
        delivered.push(envelope);
        if (envelope.message.data === 'first') reply = core.publish('a', 'message', 'reply');
      },
      gap: () => undefined,
      control: () => undefined,
    });
    const first = await core.publish('a', 'message', 'first');
    const second = await core.publish('a', 'message', 'second');
    const replied = await reply!;
    assert.deepEqual(
      delivered.map((envelope) => envelope.message.data),
      ['first', 'reply', 'second'],
    );
    assert.equal(second, delivered[2], 'the envelope delivered is the result, built once');
    // Another delivered before its answer came: the same message, in an envelope of its own.
    assert.deepEqual(first.message, delivered[0]!.message);
    assert.deepEqual(replied.message, delivered[1]!.message);
    assert.ok(compareIdText(first.id, replied.id) < 0 && compareIdText(replied.id, second.id) < 0);
    const unwatched = await core.publish('b', 'event', 'nobody here');
    assert.equal(delivered.length, 3);
    assert.deepEqual(
      { ...unwatched.message, id: undefined, timestamp: undefined },
      { id: undefined, topic: 'b', event: 'event', data: 'nobody here', timestamp: undefined },
    );
    for (const envelope of [...delivered, unwatched]) assert.equal(envelope.message.timestamp, new Date(envelope.position.ms).toISOString());
    assert.equal(core.stats().queued, 0);
    await core.stop();
  });

  it('with a broker in the process that answers late: appended in call order, queued until answered, each resolved with its own position', async () => {
    class LateBroker extends MemoryBroker {
      readonly answers: Array<() => void> = [];
      override append(publications: readonly BrokerPublication[]): Array<Promise<Position>> {
        return super.append(publications).map((answer) => new Promise<Position>((resolve) => this.answers.push(() => resolve(answer))));
      }
    }
    const broker = new LateBroker(LIMITS);
    const delivered: Envelope[] = [];
    const core = new RecoveryCore(broker, SILENT);
    void core.watch('a');
    await core.start({ message: (envelope) => delivered.push(envelope), gap: () => undefined, control: () => undefined });
    const published = ['1', '2', '3'].map((data) => core.publish('a', 'message', data));
    assert.equal(core.stats().queued, 3);
    for (const answer of [...broker.answers].reverse()) answer();
    const results = await Promise.all(published);
    assert.deepEqual(
      results.map((envelope) => [envelope.message.data, envelope.id]),
      delivered.map((envelope) => [envelope.message.data, envelope.id]),
    );
    assert.deepEqual(
      delivered.map((envelope) => envelope.message.data),
      ['1', '2', '3'],
    );
    assert.equal(core.stats().queued, 0);
    await core.stop();
  });

  it('with a remote (batching) broker: one call per turn, sent without waiting for the calls before it to be answered', async () => {
    class SlowRemote extends MemoryBroker {
      readonly batching = true;
      readonly calls: string[][] = [];
      readonly answers: Array<() => void> = [];
      override append(publications: readonly BrokerPublication[]): Array<Promise<Position>> {
        this.calls.push(publications.map((p) => p.data));
        return super.append(publications).map((answer) => new Promise<Position>((resolve) => this.answers.push(() => resolve(answer))));
      }
    }
    const broker = new SlowRemote(LIMITS);
    const core = new RecoveryCore(broker, SILENT);
    await core.start({ message: () => undefined, gap: () => undefined, control: () => undefined });
    const published: Array<Promise<Envelope>> = [];
    for (const turn of ['a', 'b', 'c']) {
      for (let i = 1; i <= 3; i++) published.push(core.publish('t', 'message', `${turn}${i}`));
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(
      broker.calls,
      [
        ['a1', 'a2', 'a3'],
        ['b1', 'b2', 'b3'],
        ['c1', 'c2', 'c3'],
      ],
      'three calls in flight at once, none answered',
    );
    for (const answer of broker.answers) answer();
    assert.deepEqual(
      (await Promise.all(published)).map((envelope) => envelope.message.data),
      ['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'c1', 'c2', 'c3'],
    );
    await core.stop();
  });
});

/**
 * A remote broker as the core sees one (`batching`), in the process: counts its history reads,
 * and loses and regains its link on demand.
 */
class CountingBroker extends MemoryBroker {
  readonly batching = true;
  reads = 0;
  topicsRead: string[] = [];
  connected = true;
  private listeners: BrokerEvents | undefined;

  override async start(events: BrokerEvents): Promise<void> {
    this.listeners = events;
    await super.start(events);
  }

  override isConnected(): boolean {
    return this.connected;
  }

  override async read(requests: ReadonlyArray<{ readonly topic: string; readonly after: Position }>): Promise<TopicRead[]> {
    this.reads += 1;
    this.topicsRead.push(...requests.map((request) => request.topic));
    return super.read(requests);
  }

  down(): void {
    this.connected = false;
    this.listeners?.down();
  }

  up(): void {
    this.connected = true;
    this.listeners?.up();
  }
}

/** A remote broker whose live records lag its reads while `lagging` (NATS republishes and Redis publishes after they record). */
class LaggingBroker extends CountingBroker {
  lagging = false;
  private readonly late: BrokerRecord[] = [];
  private deliver: ((records: readonly BrokerRecord[]) => void) | undefined;
  override async start(events: BrokerEvents): Promise<void> {
    this.deliver = events.records;
    await super.start({ ...events, records: (records) => (this.lagging ? this.late.push(...records) : events.records(records)) });
  }
  release(): void {
    this.lagging = false;
    this.deliver?.(this.late.splice(0));
  }
}

describe('The recent window (core/recent-window.ts, RecoveryCore.replay)', () => {
  const WINDOW = { maxBytes: 1024 * 1024, maxCount: 1000, maxAgeMs: 60_000 };
  const HISTORY = { maxCount: 1000, maxAgeMs: 60_000, maxTopics: 100 };

  async function windowCore(window = WINDOW, broker = new CountingBroker(HISTORY)) {
    const core = new RecoveryCore(broker, SILENT, window);
    await core.start({ message: () => undefined, gap: () => undefined, control: () => undefined });
    return { core, broker };
  }

  const texts = (envelopes: readonly Envelope[]) => envelopes.map((envelope) => envelope.message.data);

  /** A core with a window over a {@link LaggingBroker}, started with a registry. */
  async function laggingCore() {
    const broker = new LaggingBroker(HISTORY);
    const core = new RecoveryCore(broker, SILENT, WINDOW);
    const registry = new TopicRegistry(core);
    await core.start({ message: registry.message, gap: registry.gap, control: () => undefined });
    return { broker, core, registry };
  }

  /** A feed that records what it delivers; `forward()` asserts that the positions (the ids) only went forward. */
  function orderedFeed(registry: TopicRegistry, core: RecoveryCore) {
    const positions: Position[] = [];
    const { sink, data } = recordingSink();
    const feed = new Feed(registry, core, { ...sink, deliver: (envelope) => (positions.push(envelope.position), sink.deliver(envelope)) });
    const forward = () => {
      for (let i = 1; i < positions.length; i++) assert.ok(comparePositions(positions[i - 1]!, positions[i]!) < 0, 'positions (the ids) only go forward');
    };
    return { feed, data, forward };
  }

  it('answers a resume from inside the window without a broker read, exactly the messages after the position', async () => {
    const { core, broker } = await windowCore();
    const before = broker.record('a', 'message', 'before');
    broker.record('a', 'message', 'just before');
    await core.watch('a');
    const sent = ['1', '2', '3', '4', '5'].map((data) => broker.record('a', 'message', data));
    const result = await core.replay([{ topic: 'a', after: sent[1]!.position }]);
    assert.deepEqual(texts(result.envelopes), ['3', '4', '5']);
    assert.deepEqual([result.incomplete, result.unknown], [[], []]);
    assert.equal(broker.reads, 0, 'no broker read');
    const none = await core.replay([{ topic: 'a', after: sent[4]!.position }]);
    assert.deepEqual([none.envelopes, broker.reads], [[], 0], 'from the newest position: nothing, still no read');
    // From before the topic was watched here: the broker, with the same answer the window would give.
    const older = await core.replay([{ topic: 'a', after: before.position }]);
    assert.deepEqual(texts(older.envelopes), ['just before', '1', '2', '3', '4', '5']);
    assert.equal(broker.reads, 1);
    // A position newer than any of the topic delivered here (another topic's): the broker judges it.
    const other = broker.record('b', 'message', 'b1');
    const ahead = await core.replay([{ topic: 'a', after: other.position }]);
    assert.deepEqual([ahead.envelopes, ahead.unknown, broker.reads], [[], [], 2]);
    // Several topics at once, one not watched here: positions ordered across topics, so the
    // catch-up is one snapshot, read whole from the broker (see the next test).
    await core.watch('b');
    const b2 = broker.record('b', 'message', 'b2');
    const a6 = broker.record('a', 'message', '6');
    const mixed = await core.replay([
      { topic: 'a', after: sent[3]!.position },
      { topic: 'c', after: before.position },
    ]);
    assert.deepEqual(texts(mixed.envelopes), ['5', '6']);
    assert.deepEqual([broker.reads, broker.topicsRead.slice(-2)], [3, ['a', 'c']], 'one read of both topics');
    assert.ok(b2);
    // Positions ordered across topics: one of another topic, newer than b's newest here, has nothing of b to replay.
    const past = await core.replay([{ topic: 'b', after: a6.position }]);
    assert.deepEqual([past.envelopes, past.incomplete, past.unknown, broker.reads], [[], [], [], 3]);
    // One never handed out: the broker's to judge (unknown).
    const future = await core.replay([{ topic: 'b', after: { ms: Date.now() + 3_600_000, seq: 0 } }]);
    assert.deepEqual([future.unknown, broker.reads], [['b'], 4]);
    const stats = core.stats();
    assert.equal(stats.resumesFromWindow, 3);
    assert.equal(stats.resumesFromBroker, 5);
    await core.stop();
  });

  it('with positions ordered across topics, a catch-up it cannot answer whole is read whole: ids never go back', async () => {
    // The live stream reaches an instance after the broker has recorded (NATS republishes after
    // storing): a read can see what has not arrived here yet. A catch-up answered partly from the
    // window (which ends where this instance's live stream stands) and partly from the broker
    // (which ends where the broker stands) would replay b's newer message before a's older one
    // arrives live: the connection's ids would go back, and a client resuming from its last id
    // would get b's message twice. Read whole, both come from one snapshot, in position order.
    const { broker, core, registry } = await laggingCore();
    const watcher = new Feed(registry, core, recordingSink().sink);
    await watcher.add([{ topic: 'a' }]);
    broker.record('a', 'message', 'a1');
    const b1 = broker.record('b', 'message', 'b1');
    broker.lagging = true;
    broker.record('a', 'message', 'a2');
    broker.record('b', 'message', 'b2');
    const { feed: resumed, data, forward } = orderedFeed(registry, core);
    await resumed.add([
      { topic: 'a', after: b1.position },
      { topic: 'b', after: b1.position },
    ]);
    broker.release();
    assert.deepEqual(data(), ['a2', 'b2']);
    forward();
    watcher.close();
    resumed.close();
    await core.stop();
  });

  it('is extended back only as far as the live stream has come: a read ahead of it adds nothing a later whole answer could put first', async () => {
    const { broker, core, registry } = await laggingCore();
    const old = broker.record('a', 'message', 'a-old');
    broker.record('a', 'message', 'a0');
    const watcher = new Feed(registry, core, recordingSink().sink);
    await watcher.add([{ topic: 'a' }, { topic: 'b' }]);
    const b1 = broker.record('b', 'message', 'b1');
    broker.lagging = true;
    broker.record('b', 'message', 'b2');
    broker.record('a', 'message', 'a2');
    // A resume of a alone, from before a was watched: read from the broker, which has a2 already.
    const first = await core.replay([{ topic: 'a', after: old.position }]);
    assert.deepEqual(texts(first.envelopes), ['a0', 'a2'], 'the broker has a2 already');
    // Both topics from b1: answered from the windows, which hold nothing past the live stream (b2 is on its way).
    const { feed: resumed, data, forward } = orderedFeed(registry, core);
    await resumed.add([
      { topic: 'a', after: b1.position },
      { topic: 'b', after: b1.position },
    ]);
    broker.release();
    assert.deepEqual(data(), ['b2', 'a2']);
    forward();
    watcher.close();
    resumed.close();
    await core.stop();
  });

  it('is extended back by an exact broker read of a watched topic: the next resume from as far back is answered without the broker', async () => {
    const { core, broker } = await windowCore();
    const zero = broker.record('a', 'message', '0');
    const old = ['1', '2', '3'].map((data) => broker.record('a', 'message', data));
    await core.watch('a');
    broker.record('a', 'message', '4');
    assert.deepEqual(texts((await core.replay([{ topic: 'a', after: old[0]!.position }])).envelopes), ['2', '3', '4']);
    assert.equal(broker.reads, 1, 'from before the topic was watched here: the broker');
    const again = await core.replay([{ topic: 'a', after: old[0]!.position }]);
    assert.deepEqual([texts(again.envelopes), broker.reads], [['2', '3', '4'], 1], 'the same resume again: the window, extended back');
    assert.deepEqual(texts((await core.replay([{ topic: 'a', after: old[1]!.position }])).envelopes), ['3', '4']);
    assert.equal(broker.reads, 1);
    // Further back than the read reached: the broker, which extends it further.
    assert.deepEqual(texts((await core.replay([{ topic: 'a', after: zero.position }])).envelopes), ['1', '2', '3', '4']);
    assert.equal(broker.reads, 2);
    // Live messages keep coming into it, in order, and nothing is kept twice.
    broker.record('a', 'message', '5');
    assert.deepEqual(texts((await core.replay([{ topic: 'a', after: zero.position }])).envelopes), ['1', '2', '3', '4', '5']);
    assert.deepEqual([broker.reads, core.stats().windowMessages], [2, 5]);
    core.unwatch('a');
    assert.deepEqual([core.stats().windowMessages, core.stats().windowBytes], [0, 0], 'every byte released with the topic');
    await core.stop();
  });

  it('is not used after a lost link until the topic is followed again; then from the recovery on', async () => {
    const { core, broker } = await windowCore();
    await core.watch('a');
    const sent = ['1', '2', '3'].map((data) => broker.record('a', 'message', data));
    assert.deepEqual(texts((await core.replay([{ topic: 'a', after: sent[0]!.position }])).envelopes), ['2', '3']);
    assert.equal(broker.reads, 0);
    broker.down();
    assert.equal(core.status().state, 'down');
    // Published while the link is down: held, then read by the recovery.
    const missed = broker.record('a', 'message', '4');
    broker.up();
    await eventually(async () => core.status().state === 'ready', 5_000, 'the link to recover');
    const readsAfterRecovery = broker.reads;
    assert.ok(readsAfterRecovery >= 1, 'the recovery read the history');
    // The window was cleared: a position from before the outage is the broker's to answer.
    const old = await core.replay([{ topic: 'a', after: sent[0]!.position }]);
    assert.deepEqual(texts(old.envelopes), ['2', '3', '4']);
    assert.equal(broker.reads, readsAfterRecovery + 1);
    // Complete again from where the recovery read (the newest position delivered before the loss).
    const five = broker.record('a', 'message', '5');
    const recent = await core.replay([{ topic: 'a', after: sent[2]!.position }]);
    assert.deepEqual(texts(recent.envelopes), ['4', '5']);
    assert.equal(broker.reads, readsAfterRecovery + 1, 'answered from the window');
    assert.ok(missed && five);
    // Unwatched: gone.
    core.unwatch('a');
    await core.watch('a');
    await core.replay([{ topic: 'a', after: sent[2]!.position }]);
    assert.equal(broker.reads, readsAfterRecovery + 2);
    await core.stop();
  });

  it('is cleared when held records overflow while the link is down, and complete again only from the recovery on', async () => {
    class SmallBroker extends CountingBroker {
      readonly maxQueued = 2;
    }
    const gaps: string[] = [];
    const broker = new SmallBroker(HISTORY);
    const core = new RecoveryCore(broker, SILENT, WINDOW);
    void core.watch('a');
    await core.start({ message: () => undefined, gap: (topic) => void gaps.push(topic), control: () => undefined });
    const sent = ['1', '2'].map((data) => broker.record('a', 'message', data));
    await core.replay([{ topic: 'a', after: sent[0]!.position }]);
    assert.equal(broker.reads, 1, 'the start-up recovery read once; this resume came from the window');
    broker.down();
    const during = ['3', '4', '5'].map((data) => broker.record('a', 'message', data));
    assert.ok(gaps.includes('a'), 'the overflow told a gap');
    broker.up();
    await eventually(async () => core.status().state === 'ready', 5_000, 'the link to recover');
    const reads = broker.reads;
    // What was held before the overflow is not known to be complete: a position from then is the broker's.
    await core.replay([{ topic: 'a', after: sent[1]!.position }]);
    assert.equal(broker.reads, reads + 1);
    const six = broker.record('a', 'message', '6');
    const fresh = await core.replay([{ topic: 'a', after: during[2]!.position }]);
    assert.deepEqual(texts(fresh.envelopes), ['6']);
    assert.equal(broker.reads, reads + 1, 'complete again after the recovery');
    assert.ok(six);
    await core.stop();
  });

  it('evicts the oldest message of any topic past its bytes, and is complete only after what it evicted', async () => {
    // 400 + 2 * (100 + 1 + 7) = 616 estimated bytes a message: three fit.
    const { core, broker } = await windowCore({ maxBytes: 2_000, maxCount: 1000, maxAgeMs: 60_000 });
    await core.watch('a');
    await core.watch('b');
    const data = (n: number) => `${n}`.padStart(100, '0');
    const sent = [1, 2, 3, 4, 5].map((n) => broker.record('a', 'message', data(n)));
    assert.equal(core.stats().windowMessages, 3);
    assert.ok(core.stats().windowBytes <= 2_000);
    const fromWindow = await core.replay([{ topic: 'a', after: sent[1]!.position }]);
    assert.deepEqual(texts(fromWindow.envelopes), [data(3), data(4), data(5)]);
    assert.equal(broker.reads, 0);
    const tooOld = await core.replay([{ topic: 'a', after: sent[0]!.position }]);
    assert.deepEqual(texts(tooOld.envelopes), [data(2), data(3), data(4), data(5)]);
    assert.equal(broker.reads, 1, 'before the window: the broker');
    // Another topic's message evicts the oldest of all (a's third).
    broker.record('b', 'message', data(6));
    await core.replay([{ topic: 'a', after: sent[1]!.position }]);
    assert.equal(broker.reads, 2);
    const still = await core.replay([{ topic: 'a', after: sent[2]!.position }]);
    assert.deepEqual(texts(still.envelopes), [data(4), data(5)]);
    assert.equal(broker.reads, 2);
    await core.stop();
  });

  it('keeps no more per topic than the history does (maxCount), nor older than maxAgeMs', async () => {
    const { core, broker } = await windowCore({ maxBytes: 1024 * 1024, maxCount: 2, maxAgeMs: 60_000 });
    await core.watch('a');
    const sent = ['1', '2', '3', '4'].map((data) => broker.record('a', 'message', data));
    assert.equal(core.stats().windowMessages, 2);
    await core.replay([{ topic: 'a', after: sent[0]!.position }]);
    assert.equal(broker.reads, 1);
    assert.deepEqual(texts((await core.replay([{ topic: 'a', after: sent[1]!.position }])).envelopes), ['3', '4']);
    assert.equal(broker.reads, 1);
    // A position older than the history's age: the broker's verdict, not the window's.
    const ancient = { ms: Date.now() - 120_000, seq: 0 };
    await core.replay([{ topic: 'a', after: ancient }]);
    assert.equal(broker.reads, 2);
    await core.stop();
  });

  it('keeps each message once when a broker read held it before its live copy arrived (backfill, then the live stream)', () => {
    const window = new RecentWindow({ maxBytes: 1024 * 1024, maxCount: 10, maxAgeMs: 60_000 });
    const now = Date.now();
    const at = (seq: number) => Envelope.create({ ms: now, seq }, 'a', 'message', String(seq));
    window.open('a', { ms: now, seq: 1 });
    window.append(at(2));
    // The read reached 3, which this instance has not received live yet.
    assert.equal(window.backfill('a', { ms: now, seq: 0 }, [at(1), at(2), at(3)], { ms: now, seq: 3 }), true);
    window.append(at(3));
    window.append(at(4));
    assert.deepEqual(
      window.after('a', { ms: now, seq: 0 }, { ms: now, seq: 4 })?.map((envelope) => envelope.message.data),
      ['1', '2', '3', '4'],
    );
    assert.equal(window.retainedCount, 4);
  });

  it('with positions that are not times (JetStream sequences), ages come from each message: a stream older than maxAgeMs keeps its window', async () => {
    const window = new RecentWindow({ maxBytes: 1024 * 1024, maxCount: 10, maxAgeMs: 60_000 }, false);
    const created = Date.now() - 3_600_000;
    const now = Date.now();
    const at = (seq: number, time: number) => Envelope.create({ ms: created, seq }, 'a', 'message', String(seq), time);
    window.open('a', { ms: created, seq: 1 });
    window.append(at(2, now - 90_000), now);
    window.append(at(3, now), now);
    window.append(at(4, now), now);
    assert.equal(window.retainedCount, 2, 'the message recorded 90 s ago is past the age; the newer ones stay');
    assert.deepEqual(
      window.after('a', { ms: created, seq: 2 }, { ms: created, seq: 4 }, now)?.map((envelope) => envelope.message.data),
      ['3', '4'],
    );
    assert.equal(window.after('a', { ms: created, seq: 1 }, { ms: created, seq: 4 }, now), undefined, 'not complete before what it let go');
  });

  it('is not kept for a broker in the process (its reads cost no round trip)', async () => {
    const memory = new MemoryBroker(HISTORY);
    const core = new RecoveryCore(memory, SILENT, WINDOW);
    await core.start({ message: () => undefined, gap: () => undefined, control: () => undefined });
    await core.watch('a');
    const sent = ['1', '2'].map((data) => memory.record('a', 'message', data));
    assert.deepEqual(texts((await core.replay([{ topic: 'a', after: sent[0]!.position }])).envelopes), ['2']);
    assert.equal(core.stats().resumesFromWindow, 0);
    assert.equal(core.stats().windowMessages, 0);
    await core.stop();
  });
});
