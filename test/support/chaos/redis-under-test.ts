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
    async loseHistory(downMs, onLoss) {
      // Broadcasts (`*`) have their history on the same server.
      const loss: HistoryLoss = {
        what: `redis-server :${server.port}`,
        topics: new Set([...topics, '*']),
        killedAt: performance.now(),
        restartedAt: Infinity,
        clockAtRestart: Infinity,
      };
      onLoss(loss);
      await server.kill();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      // Redis's clock is this machine's: nothing the new server stamps is older than this.
      loss.clockAtRestart = Date.now();
      await server.restart();
      loss.restartedAt = performance.now();
      return loss;
    },
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
      const loss: HistoryLoss = {
        what: `cluster master :${server.port}`,
        topics: new Set([...(topicsOf.get(server.port) ?? []), ...(broadcastPort === server.port ? ['*'] : [])]),
        killedAt: performance.now(),
        restartedAt: Infinity,
        clockAtRestart: Infinity,
      };
      onLoss(loss);
      await server.kill();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      // Redis's clock is this machine's: nothing the new server stamps is older than this.
      loss.clockAtRestart = Date.now();
      await server.restart();
      loss.restartedAt = performance.now();
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
    async loseHistory(downMs, onLoss) {
      // One stream holds every topic, broadcasts too.
      const loss: HistoryLoss = {
        what: `nats-server :${server.port}`,
        topics: new Set([...topics, '*']),
        killedAt: performance.now(),
        restartedAt: Infinity,
        clockAtRestart: Infinity,
      };
      onLoss(loss);
      await server.kill();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      // Ids carry the stream's creation (this machine's clock): the stream created again after the restart is not older than this.
      loss.clockAtRestart = Date.now();
      await server.restart({ wipe: true });
      loss.restartedAt = performance.now();
      return loss;
    },
    stop: () => server.stop(),
  };
}
