import { performance } from 'node:perf_hooks';
import { NatsServer } from '../nats.js';
import { RedisCluster, RedisServer } from '../redis.js';
import { eventually } from '../wait.js';
import type { HistoryLoss } from './ledger.js';

/** The backend the instances share (Redis, a Redis Cluster or NATS JetStream), and the one fault it suffers: losing its data. */
export interface RedisUnderTest {
  readonly kind: 'single' | 'cluster' | 'nats';
  /** Environment that points a sample instance at it. */
  readonly env: Record<string, string>;
  /** `count` topic names; on a cluster, spread evenly over the masters. */
  chooseTopics(count: number): Promise<string[]>;
  /**
   * SIGKILLs a server (on a cluster, the next master in turn), keeps it down for `downMs`,
   * restarts it empty and waits until it serves again. `loss` is filled in as it happens, so that
   * resets seen during the outage can be judged.
   */
  loseHistory(downMs: number, onLoss: (loss: HistoryLoss) => void): Promise<HistoryLoss>;
  stop(): Promise<void>;
}

export const KEY_PREFIX = 'chaos:';

/**
 * One history loss: said first (`onLoss`), then the server killed, kept down `downMs` (the
 * outage itself, a chosen length), and restarted. Its clock at the restart is this machine's
 * (Redis's, and the stream creation that NATS ids carry): nothing stamped after it is older.
 */
async function outage(
  what: string,
  topics: Iterable<string>,
  downMs: number,
  onLoss: (loss: HistoryLoss) => void,
  server: { kill(): Promise<void>; restart(): Promise<void> },
): Promise<HistoryLoss> {
  const loss: HistoryLoss = { what, topics: new Set(topics), killedAt: performance.now(), restartedAt: Infinity, clockAtRestart: Infinity };
  onLoss(loss);
  await server.kill();
  await new Promise((resolve) => setTimeout(resolve, downMs));
  loss.clockAtRestart = Date.now();
  await server.restart();
  loss.restartedAt = performance.now();
  return loss;
}

export async function singleRedis(): Promise<RedisUnderTest> {
  const server = await RedisServer.start();
  let topics: string[] = [];
  return {
    kind: 'single',
    env: { REDIS_URL: server.url, REDIS_KEY_PREFIX: KEY_PREFIX },
    async chooseTopics(count) {
      topics = Array.from({ length: count }, (_, i) => `t${i}`);
      return topics;
    },
    // Broadcasts (`*`) have their history on the same server.
    loseHistory: (downMs, onLoss) => outage(`redis-server :${server.port}`, [...topics, '*'], downMs, onLoss, server),
    stop: () => server.stop(),
  };
}

export async function clusterRedis(): Promise<RedisUnderTest> {
  const cluster = await RedisCluster.start();
  const topicsOf = new Map<number, string[]>();
  let victim = 0;
  return {
    kind: 'cluster',
    env: { REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','), REDIS_KEY_PREFIX: KEY_PREFIX },
    async chooseTopics(count) {
      const perMaster = Math.ceil(count / cluster.servers.length);
      const chosen: string[] = [];
      for (let k = 0; chosen.length < count && k < 1_000; k++) {
        const topic = `t${k}`;
        const port = await cluster.masterOfSlot(await cluster.keySlot(`${KEY_PREFIX}s:{${topic}}`));
        const list = topicsOf.get(port) ?? [];
        if (list.length >= perMaster) continue;
        list.push(topic);
        topicsOf.set(port, list);
        chosen.push(topic);
      }
      return chosen;
    },
    async loseHistory(downMs, onLoss) {
      const server = cluster.servers[victim % cluster.servers.length]!;
      victim += 1;
      // Broadcasts (`*`) have a stream of their own, on one of the masters.
      const broadcastPort = await cluster.masterOfSlot(await cluster.keySlot(`${KEY_PREFIX}s:{*}`));
      const topics = [...(topicsOf.get(server.port) ?? []), ...(broadcastPort === server.port ? ['*'] : [])];
      const loss = await outage(`cluster master :${server.port}`, topics, downMs, onLoss, server);
      await eventually(() => cluster.stateOk(), 20_000, 'cluster_state:ok after restarting a master');
      return loss;
    },
    stop: () => cluster.stop(),
  };
}

/** One `nats-server -js`: the sample instances switch to it with `NATS_URL`; a loss wipes its JetStream store. */
export async function natsJetStream(): Promise<RedisUnderTest> {
  const server = await NatsServer.start();
  let topics: string[] = [];
  return {
    kind: 'nats',
    env: { NATS_URL: server.url, NATS_STREAM: 'CHAOS', NATS_SUBJECT_PREFIX: 'chaos' },
    async chooseTopics(count) {
      topics = Array.from({ length: count }, (_, i) => `t${i}`);
      return topics;
    },
    // One stream holds every topic, broadcasts too; the restart wipes the store (the stream is created again).
    loseHistory: (downMs, onLoss) =>
      outage(`nats-server :${server.port}`, [...topics, '*'], downMs, onLoss, { kill: () => server.kill(), restart: () => server.restart({ wipe: true }) }),
    stop: () => server.stop(),
  };
}
