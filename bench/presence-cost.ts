// What presence costs Redis: 10,000 members on 1,000 topics, held by 3 instances, each
// refreshing its members and sweeping its topics every third of the time-to-live (the module's
// default 15 s: every 5 s). Drives the Redis presence store itself (the scripts and calls each
// instance makes), not sockets: the connections cost nothing in Redis beyond their members.
// Reports Redis's memory for the members, the calls and commands per second it runs, and its CPU.
// Run: npm run build:all && node build/bench/presence-cost.js [--cluster] [--window-ms 20000] [--ttl-ms 15000]
import { randomUUID } from 'node:crypto';
import { RedisKeys } from '../src/cluster/redis-keys.js';
import { type PresenceEntry, type PresenceMember } from '../src/index.js';
import { RedisPresenceStore } from '../src/cluster/index.js';
import { startRedis, type RedisInfo } from './lib/redis.js';
import { median } from './lib/stats.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const onCluster = args.includes('--cluster');
const MEMBERS = option('--members', 10_000);
const TOPICS = option('--topics', 1_000);
const INSTANCES = option('--instances', 3);
const TTL_MS = option('--ttl-ms', 15_000);
const WINDOW_MS = option('--window-ms', 20_000);
const INTERVAL_MS = Math.floor(TTL_MS / 3);
/** Adds of one event-loop turn go together (PerTurn); a join storm of this many per turn. */
const ADDS_PER_CALL = 1_000;

const keys = new RedisKeys('bench:');
const direct = <T>(call: Promise<T>) => call;

function member(i: number): PresenceEntry {
  const m: PresenceMember = { clientId: randomUUID(), identity: { id: `user-${i}` }, transport: i % 2 === 0 ? 'ws' : 'sse', since: new Date().toISOString() };
  return { topic: `room/${i % TOPICS}`, member: m };
}

const commandsOf = (i: RedisInfo) => Object.values(i.commands).reduce((a, b) => a + b, 0);

const t = await startRedis(onCluster ? 3 : 0);
try {
  const clients = Array.from({ length: INSTANCES }, () => t.client());
  const stores = clients.map((client) => new RedisPresenceStore(client, keys, onCluster, TTL_MS, direct));
  // Members round-robin over instances; each instance holds members of (nearly) every topic.
  const entries = Array.from({ length: MEMBERS }, (_, i) => member(i));
  const local = stores.map(() => new Map<string, string[]>());
  entries.forEach((entry, i) => {
    const held = local[i % INSTANCES]!;
    const ids = held.get(entry.topic) ?? [];
    ids.push(entry.member.clientId);
    held.set(entry.topic, ids);
  });
  const memoryBefore = (await t.info()).usedMemory;
  const addStarted = performance.now();
  for (let from = 0; from < entries.length; from += ADDS_PER_CALL) {
    const batch = entries.slice(from, from + ADDS_PER_CALL);
    const added = await stores[(from / ADDS_PER_CALL) % INSTANCES]!.add(batch);
    if (added.some((a) => !a)) throw new Error('a member was not added');
  }
  const addMs = performance.now() - addStarted;
  const memoryAfter = (await t.info()).usedMemory;
  const count = await stores[0]!.count('room/0');
  if (count !== MEMBERS / TOPICS) throw new Error(`room/0 has ${count} members`);
  const one = t.infos.length === 1 ? t.infos[0]! : undefined;
  const topicBytes = one
    ? Number(await one.call('MEMORY', 'USAGE', keys.presence('room/0'), 'SAMPLES', '0')) +
      Number(await one.call('MEMORY', 'USAGE', keys.presenceMembers('room/0'), 'SAMPLES', '0'))
    : NaN;

  // Steady state: every instance refreshes and sweeps on its interval, staggered like independent processes.
  const before = await t.info();
  const refreshMs: number[] = [];
  const timers: NodeJS.Timeout[] = [];
  let failures = 0;
  stores.forEach((store, i) => {
    const sweep = [...local[i]!.keys()];
    const run = () => {
      const started = performance.now();
      store.refresh(local[i]!, sweep).then(
        (result) => {
          refreshMs.push(performance.now() - started);
          if (result.expired.length > 0 || result.missing.length > 0) failures += 1;
        },
        () => (failures += 1),
      );
    };
    timers.push(
      setTimeout(
        () => {
          run();
          timers.push(setInterval(run, INTERVAL_MS));
        },
        (INTERVAL_MS * i) / INSTANCES,
      ),
    );
  });
  await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
  timers.forEach((timer) => clearInterval(timer));
  const seconds = WINDOW_MS / 1000;
  const after = await t.info();
  const evals = (after.commands.evalsha ?? 0) - (before.commands.evalsha ?? 0);
  const result = {
    redis: onCluster ? `Cluster of ${t.infos.length} masters` : 'single server',
    members: MEMBERS,
    topics: TOPICS,
    instances: INSTANCES,
    ttlMs: TTL_MS,
    intervalMs: INTERVAL_MS,
    windowMs: WINDOW_MS,
    memoryBytes: memoryAfter - memoryBefore,
    bytesPerMember: Math.round((memoryAfter - memoryBefore) / MEMBERS),
    topicKeysBytes: topicBytes,
    addAllMs: Math.round(addMs),
    scriptCallsPerSecond: +(evals / seconds).toFixed(2),
    /** How long Redis runs one refresh script call (it serves nothing else meanwhile). */
    scriptCallMs: +(((after.usec.evalsha ?? 0) - (before.usec.evalsha ?? 0)) / Math.max(1, evals) / 1000).toFixed(1),
    commandsPerSecond: Math.round((commandsOf(after) - commandsOf(before)) / seconds),
    redisCpuPercent: +((after.cpuMs - before.cpuMs) / 10 / seconds).toFixed(2),
    refreshes: refreshMs.length,
    refreshMedianMs: +median(refreshMs).toFixed(1),
    refreshMaxMs: +Math.max(...refreshMs).toFixed(1),
    unexpected: failures,
  };
  console.log(JSON.stringify(result, null, 2));
  clients.forEach((client) => client.disconnect());
} finally {
  await t.stop();
}
