import { hardFileLimit } from './lib/proc.js';

/**
 * Every knob of a run. Each can be set as `BENCH_<NAME>` in the environment or `--<name>=` on the
 * command line (`npm run bench -- --fanout-subs=5000`), names in kebab case on the command line
 * and upper snake case in the environment. BENCH_QUICK=1 (or --quick) shrinks everything into a
 * one-minute smoke run.
 */
export interface BenchConfig {
  quick: boolean;
  /**
   * Scenario ids to run (all by default): fanout-ws, fanout-sse, topics-ws, topics-sse, idle-ws,
   * idle-sse, max-conn, cluster, churn, publish, client-size, client-reconnect, storm.
   */
  only: string[] | undefined;
  /** Peer ids to run (all by default): ws, socketio, pushlet-ws, sse, pushlet-sse. */
  peers: string[] | undefined;
  /** Runs of each scenario; the table shows the median of each figure. */
  repeat: number;
  /** Profile this module's write path with `node --cpu-prof` instead of benchmarking. */
  profile: boolean;
  payloadBytes: number;
  /** Slices each measurement is cut into, taken by the peers in turn. */
  rounds: number;
  /** Unmeasured load before each measurement, so that V8 has optimised the hot paths. */
  preheatMs: number;

  fanoutSubs: number;
  steadyRate: number;
  steadyMs: number;
  floodMs: number;
  floodWindow: number;

  topics: number;
  topicsRate: number;
  topicsMs: number;

  idleConns: number;
  idleHoldMs: number;
  idleHeartbeatMs: number;
  idleTopics: number;

  maxConns: number;
  maxHoldMs: number;
  maxHeartbeatMs: number;
  maxPeers: string[];

  clusterSubs: number;
  clusterRate: number;
  clusterMs: number;

  churnMs: number;
  churnConcurrency: number;
  churnProcesses: number;
  churnBackgroundSubs: number;

  /** SDK clients (one process) in the reconnect scenario, spread over `reconnectTopics` topics. */
  reconnectClients: number;
  reconnectTopics: number;
  /** Messages per second over all topics, published on the other instance throughout. */
  reconnectRate: number;
  /** Publishing before the restart, and after every client is connected again. */
  reconnectBeforeMs: number;
  reconnectAfterMs: number;
  /** SDK transports to run: websocket, sse. */
  reconnectTransports: string[];
  /** Each `minReconnectDelayMs` to run (500 is the SDK's default); `maxReconnectDelayMs` stays at its default. */
  reconnectMinDelays: string[];
  /** Reconnect storm (bench/reconnect-storm.ts): clients of the killed instance, WebSocket share of them, topics. */
  stormClients: number;
  stormWsShare: number;
  stormTopics: number;
  /** Messages per second, all topics together, published throughout. */
  stormRate: number;
  /** A dropped client reconnects after a uniform random delay in [0, jitter). */
  stormJitterMs: number;
  /** Messages flowing to every client before the kill (the last 3 s measure the publisher's own Redis load). */
  stormWarmMs: number;
  /** Give up waiting for every client to catch up after this long. */
  stormTimeoutMs: number;
  /** Publishing goes on this long after every client caught up, then every client must have every message. */
  stormTailMs: number;
  stormConnsPerProcess: number;
  /**
   * A client gives up an attempt that has no answer (101 or 200) after this long and tries again
   * after its backoff. Browsers have no such timeout of their own (the kernel's, about 30 s or more).
   */
  stormConnectTimeoutMs: number;
  /**
   * Niceness of the storm's load-client processes (0: as the servers). They share the cores with
   * the servers under test, which real clients would not; e.g. 10 lets the servers go first, but
   * then other work on a shared machine starves the clients and their own lag is measured.
   */
  stormClientNice: number;
  /** Listen queue of the instances (0: Node's default, 511); the kernel caps it at net.core.somaxconn. */
  stormBacklog: number;
  /**
   * How instance B reads history and start positions, one storm each: `per-turn` (main),
   * `per-connection` (before the batching, emulated), `coalesced` (one read in flight at a time,
   * calls queued meanwhile: a proposal, emulated). See bench/servers/pushlet.ts.
   */
  stormReads: string[];
  /** CPU profile of instance B during the storm (bench/results/storm.md). */
  stormProfile: boolean;
  /**
   * Base name of the standalone storm's results in outDir: `storm` by default, `storm-partial`
   * (not committed) when a size or rate differs from the defaults, unless named here (the
   * committed variants are in `storm/`, e.g. `--storm-name=storm/5000-backlog4096`).
   */
  stormName: string;

  /** Connections per load-client process (the open-file limit is per process). */
  connsPerProcess: number;
  /** Handshakes in flight per load-client process. */
  connectConcurrency: number;
  outDir: string;
}

function defaults(quick: boolean): BenchConfig {
  const fileLimit = hardFileLimit();
  return {
    quick,
    only: undefined,
    peers: undefined,
    repeat: 1,
    profile: false,
    payloadBytes: 100,
    preheatMs: quick ? 300 : 1_500,
    rounds: quick ? 1 : 5,

    fanoutSubs: quick ? 300 : 2_000,
    steadyRate: 20,
    steadyMs: quick ? 1_500 : 15_000,
    floodMs: quick ? 1_500 : 10_000,
    floodWindow: 32,

    topics: quick ? 300 : 2_000,
    topicsRate: quick ? 1_000 : 4_000,
    topicsMs: quick ? 1_000 : 8_000,

    idleConns: quick ? 1_500 : 10_000,
    idleHoldMs: quick ? 1_500 : 6_000,
    idleHeartbeatMs: quick ? 1_000 : 5_000,
    idleTopics: 1,

    // Leaves room for the server's own descriptors (stdio, IPC, epoll, listening socket).
    maxConns: quick ? 0 : Math.min(20_000, fileLimit) - 100,
    maxHoldMs: 10_000,
    maxHeartbeatMs: 2_000,
    maxPeers: ['pushlet-ws', 'pushlet-sse'],

    clusterSubs: quick ? 100 : 1_000,
    clusterRate: 20,
    clusterMs: quick ? 1_500 : 15_000,

    churnMs: quick ? 1_000 : 8_000,
    churnConcurrency: 32,
    churnProcesses: 2,
    churnBackgroundSubs: 200,

    reconnectClients: quick ? 200 : 1_000,
    reconnectTopics: quick ? 20 : 100,
    reconnectRate: 200,
    reconnectBeforeMs: quick ? 1_500 : 3_000,
    reconnectAfterMs: quick ? 1_000 : 2_000,
    reconnectTransports: ['websocket', 'sse'],
    reconnectMinDelays: quick ? ['500'] : ['500', '100'],
    stormClients: quick ? 1_000 : 10_000,
    stormWsShare: 0.5,
    stormTopics: 100,
    stormRate: 200,
    stormJitterMs: 1_000,
    stormWarmMs: quick ? 3_000 : 5_000,
    stormTimeoutMs: 180_000,
    stormTailMs: 2_000,
    stormConnsPerProcess: 2_500,
    stormConnectTimeoutMs: 30_000,
    stormBacklog: 0,
    stormClientNice: 0,
    stormReads: ['per-turn'],
    stormProfile: false,
    stormName: '',

    connsPerProcess: 5_000,
    connectConcurrency: 100,
    outDir: 'bench/results',
  };
}

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
  const quick = ['1', 'true'].includes(raw('quick') ?? '');
  const config = defaults(quick);
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
    (config as unknown as Record<string, unknown>)[key] = parsed;
  }
  return config;
}
