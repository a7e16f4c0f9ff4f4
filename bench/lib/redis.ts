import { Cluster, Redis } from 'ioredis';
import { RedisCluster, RedisServer } from '../../test/support/redis.js';

/**
 * Redis for the bench: servers are started by the test suite's launcher (test/support/redis.ts:
 * throw-away `redis-server` processes on free loopback ports, never 6379, no persistence), and
 * measured through INFO, parsed here only.
 */
export { RedisCluster, RedisServer };

/** What INFO says of one server, or of several summed (every master of a Cluster). */
export interface RedisInfo {
  /** used_cpu_user + used_cpu_sys, in ms. */
  cpuMs: number;
  /** Calls per command (commandstats, the scripts' inner commands included), INFO's own left out. */
  commands: Record<string, number>;
  /** Microseconds spent per command (commandstats usec). */
  usec: Record<string, number>;
  usedMemory: number;
  /** The server's process id (the first server's, for several). */
  pid: number;
}

export function parseInfo(text: string): RedisInfo {
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);
  const commands: Record<string, number> = {};
  const usec: Record<string, number> = {};
  for (const [, name, calls, us] of text.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+),usec=(\d+)/gm)) {
    if (name === 'info') continue;
    commands[name!] = Number(calls);
    usec[name!] = Number(us);
  }
  return { cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1_000, commands, usec, usedMemory: field('used_memory'), pid: field('process_id') };
}

/** INFO of every server in `clients`, summed. */
export async function redisInfo(clients: readonly Redis[]): Promise<RedisInfo> {
  const parts = await Promise.all(clients.map(async (client) => parseInfo(await client.info('all'))));
  const add = (key: 'commands' | 'usec') => {
    const out: Record<string, number> = {};
    for (const part of parts) for (const [name, n] of Object.entries(part[key])) out[name] = (out[name] ?? 0) + n;
    return out;
  };
  return {
    cpuMs: parts.reduce((a, p) => a + p.cpuMs, 0),
    commands: add('commands'),
    usec: add('usec'),
    usedMemory: parts.reduce((a, p) => a + p.usedMemory, 0),
    pid: parts[0]?.pid ?? 0,
  };
}

/** Calls per command from `before` to `after`, most called first, commands not called left out. */
export function commandDelta(after: RedisInfo, before: RedisInfo): Record<string, number> {
  const delta = Object.entries(after.commands)
    .map(([name, calls]) => [name, calls - (before.commands[name] ?? 0)] as const)
    .filter(([, d]) => d > 0);
  return Object.fromEntries(delta.sort((a, b) => b[1] - a[1]));
}

/** A throw-away redis-server (`masters` 0) or Cluster, a connection for INFO to each master, and `info()` summing them. */
export async function startRedis(masters = 0) {
  const cluster = masters > 0 ? await RedisCluster.start({ masters }) : undefined;
  const server = cluster ? undefined : await RedisServer.start();
  const infos = (cluster?.servers ?? [server!]).map((s) => new Redis({ host: '127.0.0.1', port: s.port, maxRetriesPerRequest: 1 }));
  const first = await redisInfo(infos.slice(0, 1));
  return {
    url: server?.url ?? '',
    /** What the sample app reads to join it (a single server only). */
    env: { REDIS_URL: server?.url ?? '' } as Record<string, string>,
    nodes: cluster?.nodes ?? [],
    pid: first.pid,
    infos,
    client: (): Redis | Cluster => (cluster ? new Cluster(cluster.nodes) : new Redis(server!.url)),
    info: () => redisInfo(infos),
    async stop() {
      for (const info of infos) info.disconnect();
      await (cluster ?? server!).stop();
    },
  };
}
