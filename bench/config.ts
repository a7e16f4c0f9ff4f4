import { hardFileLimit } from './lib/proc.js';

/**
 * Every knob of a run. Each can be set as `BENCH_<NAME>` in the environment or `--<name>=` on the
 * command line (`npm run bench -- --fanout-subs=5000`): kebab case on the command line, upper
 * snake case in the environment. BENCH_QUICK=1 (or --quick) shrinks everything into a smoke run.
 */
function defaults(quick: boolean) {
  const q = <T>(quickValue: T, full: T): T => (quick ? quickValue : full);
  return {
    quick,
    /** Which scenarios and results: bench (latest.*), client (client.*) or storm (storm.*); see bench/run.ts. */
    suite: 'bench',
    /** Scenario ids to run (all but the optional ones by default; see bench/scenarios.ts). */
    only: undefined as string[] | undefined,
    /** Peer ids to run (all by default): ws, socketio, pushlet-ws, sse, pushlet-sse. */
    peers: undefined as string[] | undefined,
    /** Runs of each scenario; the table shows the median of each figure. */
    repeat: 1,
    /** Instead of benchmarking, profile with `node --cpu-prof`: `--profile` the saturated fan-out, `--profile=metrics` the metrics' share (bench/run.ts). */
    profile: '',
    payloadBytes: 100,
    /** Slices each measurement is cut into, taken by the peers in turn. */
    rounds: q(1, 5),
    /** Unmeasured load before each measurement, so that V8 has optimised the hot paths. */
    preheatMs: q(300, 1_500),

    fanoutSubs: q(300, 2_000),
    steadyRate: 20,
    steadyMs: q(1_500, 15_000),
    floodMs: q(1_500, 10_000),
    floodWindow: 32,

    topics: q(300, 2_000),
    topicsRate: q(1_000, 4_000),
    topicsMs: q(1_000, 8_000),

    idleConns: q(1_500, 10_000),
    idleHoldMs: q(1_500, 6_000),
    idleHeartbeatMs: q(1_000, 5_000),
    idleTopics: 1,

    /** Leaves room for the server's own descriptors (stdio, IPC, epoll, listening socket); 0 skips max-conn. */
    maxConns: q(0, Math.min(20_000, hardFileLimit()) - 100),
    maxHoldMs: 10_000,
    maxHeartbeatMs: 2_000,
    maxPeers: ['pushlet-ws', 'pushlet-sse'],

    clusterSubs: q(100, 1_000),
    clusterRate: 20,
    clusterMs: q(1_500, 15_000),

    churnMs: q(1_000, 8_000),
    churnConcurrency: 32,
    churnProcesses: 2,
    churnBackgroundSubs: 200,

    /** client-reconnect: SDK clients (one process) over `reconnectTopics` topics, `reconnectRate` msg/s published on the other instance. */
    reconnectClients: q(200, 1_000),
    reconnectTopics: q(20, 100),
    reconnectRate: 200,
    /** Publishing before the restart, and after every client is connected again. */
    reconnectBeforeMs: q(1_500, 3_000),
    reconnectAfterMs: q(1_000, 2_000),
    reconnectTransports: ['websocket', 'sse'],
    /** Each `minReconnectDelayMs` to run (500 is the SDK's default). */
    reconnectMinDelays: q(['500'], ['500', '100']),

    /** Reconnect storm (bench/reconnect-storm.ts): clients of the killed instance, their WebSocket share, topics, msg/s. */
    stormClients: q(1_000, 10_000),
    stormWsShare: 0.5,
    stormTopics: 100,
    stormRate: 200,
    /** A dropped client reconnects after a uniform random delay in [0, jitter). */
    stormJitterMs: 1_000,
    /** Messages flowing before the kill (the last 3 s measure the publisher's own Redis load). */
    stormWarmMs: q(3_000, 5_000),
    /** Give up waiting for every client to catch up after this long. */
    stormTimeoutMs: 180_000,
    /** Publishing goes on this long after every client caught up, then every client must have every message. */
    stormTailMs: 2_000,
    stormConnsPerProcess: 2_500,
    /** A client gives up an attempt without an answer (101 or 200) after this long (browsers: the kernel's, 30 s or more). */
    stormConnectTimeoutMs: 30_000,
    /**
     * Listen queue of the instances (0: Node's default, 511); the kernel caps it at
     * net.core.somaxconn. 4096 as the sample sets it (`LISTEN_BACKLOG`): at 511, 10,000 clients
     * overflowed the queue 50,991 times and all caught up after 15.7 s; at 4096, after 6.5 s.
     */
    stormBacklog: 4_096,
    /** Niceness of the storm's load clients (0: as the servers; 10 lets the servers go first). */
    stormClientNice: 0,
    /** How instance B reads history, one storm each: per-turn (main), per-connection, coalesced (emulated; bench/servers/pushlet.ts). */
    stormReads: ['per-turn'],
    /** The backbone of each storm (main reads only on NATS): `redis` (one redis-server), `nats` (one nats-server -js). */
    stormBrokers: ['redis', 'nats'],
    /** CPU profile of instance B during the storm (in storm.md). */
    stormProfile: false,
    /**
     * SSE subscribers of every topic on instance B from the start (0: B watches no topic before
     * the storm). With some, B has followed each topic since before the clients' positions and
     * answers their resumes from its recent window instead of Redis.
     */
    stormHolders: 0,

    /** Connections per load-client process (the open-file limit is per process). */
    connsPerProcess: 5_000,
    /** Handshakes in flight per load-client process. */
    connectConcurrency: 100,
    outDir: 'bench/results',
  };
}

export type BenchConfig = ReturnType<typeof defaults>;

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const snake = (key: string) => `BENCH_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

export function loadConfig(argv = process.argv.slice(2), env = process.env): BenchConfig {
  const cli = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new Error(`unknown argument ${arg} (use --name=value)`);
    cli.set(match[1]!, match[2] ?? 'true');
  }
  const raw = (key: string) => cli.get(kebab(key)) ?? env[snake(key)];
  const config = defaults(['1', 'true'].includes(raw('quick') ?? ''));
  const known = new Set(Object.keys(config).map(kebab));
  for (const name of cli.keys()) if (!known.has(name)) throw new Error(`unknown option --${name}`);
  for (const key of Object.keys(config) as Array<keyof BenchConfig>) {
    const value = raw(key);
    if (value === undefined || key === 'quick') continue;
    const current = config[key];
    const parsed: unknown =
      typeof current === 'number'
        ? Number(value)
        : typeof current === 'boolean'
          ? ['1', 'true', 'yes'].includes(value)
          : Array.isArray(current) || current === undefined
            ? value.split(',').filter(Boolean)
            : value;
    if (typeof parsed === 'number' && !Number.isFinite(parsed)) throw new Error(`${key} must be a number, got ${value}`);
    (config as Record<string, unknown>)[key] = parsed;
  }
  return config;
}
