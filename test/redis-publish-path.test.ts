import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisHistory } from '../src/cluster/redis-history.js';
import { RedisKeys } from '../src/cluster/redis-keys.js';
import { comparePositions, parsePosition } from '../src/protocol/ids.js';
import { RedisServer } from './support/redis.js';

const compareIds = (a: string, b: string) => comparePositions(parsePosition(a)!, parsePosition(b)!);

/**
 * The single server's publish path (`RedisHistory.appendAll`): a turn's publications spread over
 * a few script calls while few are in flight, so that Redis and the instance work at the same
 * time, with every topic's publications recorded in the order they were made.
 */
describe('Redis publish path: several calls in flight on one connection', () => {
  let server: RedisServer;
  let client: Redis;
  const keys = new RedisKeys('pp:');
  let history: RedisHistory;
  let counter = 0;

  before(async () => {
    server = await RedisServer.start();
    client = new Redis(server.url, { lazyConnect: true });
    await client.connect();
    history = new RedisHistory(client, keys, false, { maxCount: 1_000, maxAgeMs: 60_000 });
    await history.loadScripts();
  });
  after(async () => {
    client?.disconnect();
    await server?.stop();
  });

  const messages = (topics: readonly string[], count: number, tag: string) =>
    Array.from({ length: count }, (_, i) => ({ topic: topics[i % topics.length]!, event: 'message', data: `${tag}:${i}`, origin: 'o1', counter: ++counter }));

  async function calls(): Promise<number> {
    const info = await server.command<string>('INFO', 'commandstats');
    return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) + Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
  }

  async function readAll(topic: string): Promise<string[]> {
    const [read] = await history.read([{ topic, after: { ms: 0, seq: 0 } }]);
    return read!.records.map((r) => r.data);
  }

  it('spreads a turn over up to four calls of at least 16, one call more per turn while those are in flight; order kept per topic', async () => {
    const topics = ['pp/a', 'pp/b', 'pp/c'];
    await Promise.all(history.appendAll(messages(topics, topics.length, 'warm')));
    const before = await calls();
    // Two turns' worth given before any answer: 64 with nothing in flight, then 64 with four in flight.
    const first = messages(topics, 64, 'first');
    const second = messages(topics, 64, 'second');
    const ids = await Promise.all([...history.appendAll(first), ...history.appendAll(second)]);
    assert.equal((await calls()) - before, 5, '64 publications as 4 calls of 16, the next 64 as one call');
    const all = [...first, ...second];
    for (const topic of topics) {
      const mine = all.map((m, i) => ({ m, id: ids[i]! })).filter(({ m }) => m.topic === topic);
      for (let i = 1; i < mine.length; i++) assert.ok(compareIds(mine[i - 1]!.id, mine[i]!.id) < 0, `${topic}: ids in publication order`);
      assert.deepEqual(
        (await readAll(topic)).slice(1),
        mine.map(({ m }) => m.data),
        `${topic}: history in publication order`,
      );
    }
    // Fewer than twice the least a call carries: one call, no remainder of its own.
    const third = await calls();
    await Promise.all(history.appendAll(messages(topics, 31, 'third')));
    assert.equal((await calls()) - third, 1);
  });
});
