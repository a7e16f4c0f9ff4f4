import type { PushletModuleOptions } from '../../../src/index.js';
import { natsBroker } from '../../../src/nats/index.js';
import { NatsServer } from '../nats.js';
import { RedisCluster, RedisServer } from '../redis.js';
import { eventually } from '../wait.js';

/**
 * The brokers the conformance suite (test/broker-conformance.test.ts) runs against. Adding a
 * broker means adding one entry to {@link FIXTURES}: the suite only ever sees a {@link Backend},
 * never the broker behind it.
 */

/** What a test may ask of the history of the apps it starts. */
export interface HistoryLimits {
  /** Messages kept per topic (`history.maxCount`); the backend's default when unset. */
  maxCount?: number;
}

/** One running backend (a Redis server, a Cluster, nothing at all for memory), shared by the tests of one fixture. */
export interface Backend {
  /**
   * What to pass to `PushletModule.forRoot` so that an app uses this backend. Every call is a
   * namespace of its own (a fresh key prefix on Redis), so tests sharing a backend never see each
   * other's history: start every app that must share topics with the same object.
   */
  pushletOptions(history?: HistoryLimits): PushletModuleOptions;
  /**
   * `count` topic names for a test. A partitioned backend (Redis Cluster) spreads them over its
   * partitions, so that a connection's topics live on different shards.
   */
  topics(count: number): Promise<string[]>;
  /** Makes the backend unreachable at once: every server process is SIGKILLed. Only when `canFail`. */
  outage(): Promise<void>;
  /**
   * Brings the backend back on the same address, serving again, with its data lost (a crash
   * without persistence: every Redis fixture runs without RDB or AOF). A fixture whose backend
   * persists must wipe its store here, so that "history lost" tests mean what they say. Nothing
   * when the backend is up. (No `keepData` choice: a single Redis server restarted with its data
   * still counts as one that may have lost some, since its run id changed, so a restart that
   * keeps data would expect the same resets and test nothing more.)
   */
  restore(): Promise<void>;
  tearDown(): Promise<void>;
}

export interface BrokerFixture {
  readonly name: string;
  /** Several app instances on the backend share topics, history and ids (publish on one, resume on another). */
  readonly distributed: boolean;
  /** The backend can be made unreachable and restored ({@link Backend.outage}, {@link Backend.restore}). */
  readonly canFail: boolean;
  /** Pattern subscriptions (`a/*`) are routed and resumed; otherwise they are refused. */
  readonly patterns: boolean;
  setUp(): Promise<Backend>;
}

let namespaces = 0;
/** A key prefix of its own per call (per process, too: files run in parallel on their own servers anyway). */
function freshPrefix(): string {
  namespaces += 1;
  return `conf${process.pid}-${namespaces}:`;
}

function historyOption(history: HistoryLimits = {}): Pick<PushletModuleOptions, 'history'> {
  return history.maxCount === undefined ? {} : { history: { maxCount: history.maxCount } };
}

function plainTopics(count: number): Promise<string[]> {
  return Promise.resolve(Array.from({ length: count }, (_, i) => `topic-${i + 1}`));
}

const memory: BrokerFixture = {
  name: 'memory',
  distributed: false,
  canFail: false,
  patterns: true,
  async setUp() {
    const cannot = () => Promise.reject(new Error('the in-memory broker cannot fail'));
    return {
      // The default broker: no `redis`, no `broker`. Each app has its own memory.
      pushletOptions: (history) => historyOption(history),
      topics: plainTopics,
      outage: cannot,
      restore: () => Promise.resolve(),
      tearDown: () => Promise.resolve(),
    };
  },
};

/** Short command timeout: a killed backend is noticed quickly, so the outage tests stay short. */
const COMMAND_TIMEOUT_MS = 1_000;

const redis: BrokerFixture = {
  name: 'redis',
  distributed: true,
  canFail: true,
  patterns: true,
  async setUp() {
    const server = await RedisServer.start();
    return {
      pushletOptions: (history) => ({
        ...historyOption(history),
        redis: { url: server.url, keyPrefix: freshPrefix(), commandTimeoutMs: COMMAND_TIMEOUT_MS },
      }),
      topics: plainTopics,
      outage: () => server.kill(),
      // Without persistence a restarted redis-server is empty.
      restore: async () => {
        if (!server.running) await server.restart();
      },
      tearDown: () => server.stop(),
    };
  },
};

const redisCluster: BrokerFixture = {
  name: 'redis-cluster',
  distributed: true,
  canFail: true,
  patterns: false,
  async setUp() {
    const cluster = await RedisCluster.start();
    let spread: Promise<string[]> | undefined;
    return {
      pushletOptions: (history) => ({
        ...historyOption(history),
        redis: { cluster: { nodes: cluster.nodes }, keyPrefix: freshPrefix(), commandTimeoutMs: COMMAND_TIMEOUT_MS },
      }),
      topics: async (count) => (await (spread ??= topicsOnEveryMaster(cluster, 12))).slice(0, count),
      // Every master at once: the whole backend is unreachable, not one shard of it.
      outage: async () => {
        await Promise.all(cluster.servers.map((server) => server.kill()));
      },
      // Each node comes back with its cluster configuration (nodes-<port>.conf stays in its
      // directory) and no data; the backend serves again once every node reports cluster_state:ok.
      restore: async () => {
        const down = cluster.servers.filter((server) => !server.running);
        if (down.length === 0) return;
        await Promise.all(down.map((server) => server.restart()));
        await eventually(() => cluster.stateOk(), 20_000, 'cluster_state:ok after the restart', 20);
      },
      tearDown: () => cluster.stop(),
    };
  },
};

const nats: BrokerFixture = {
  name: 'nats',
  distributed: true,
  canFail: true,
  patterns: true,
  async setUp() {
    const server = await NatsServer.start();
    return {
      // A stream and subject prefix of its own per call (the namespace), file storage.
      pushletOptions: (history) => {
        const namespace = freshPrefix().replace(/[^A-Za-z0-9]/g, '_');
        return {
          ...historyOption(history),
          broker: natsBroker({ servers: server.url, stream: namespace, subjectPrefix: namespace, commandTimeoutMs: COMMAND_TIMEOUT_MS }),
        };
      },
      topics: plainTopics,
      outage: () => server.kill(),
      // Back with its JetStream store wiped: every stream is lost, as a Redis without persistence.
      restore: async () => {
        if (!server.running) await server.restart({ wipe: true });
      },
      tearDown: () => server.stop(),
    };
  },
};

/**
 * Topic names taking the masters in turn. The module's keys of a topic carry the topic as their
 * hash tag (README, Redis Cluster), so CLUSTER KEYSLOT of the plain name is the topic's slot. Were
 * that to change, the names would merely be spread less well.
 */
async function topicsOnEveryMaster(cluster: RedisCluster, count: number): Promise<string[]> {
  const byMaster = new Map<number, string[]>();
  for (let i = 1; i <= 200; i += 1) {
    const topic = `topic-${i}`;
    const master = await cluster.masterOfSlot(await cluster.keySlot(topic));
    byMaster.set(master, [...(byMaster.get(master) ?? []), topic]);
  }
  const columns = [...byMaster.values()];
  const topics: string[] = [];
  for (let row = 0; topics.length < count; row += 1) {
    for (const column of columns) if (topics.length < count && column[row]) topics.push(column[row]!);
  }
  return topics;
}

/** Every broker the suite runs against. */
export const FIXTURES: readonly BrokerFixture[] = [memory, redis, redisCluster, nats];
