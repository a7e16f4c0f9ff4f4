// `pushlet-nestjs/nats`: distributed mode through NATS JetStream, a separate entry so that the main
// one never loads the NATS client. Needs `nats` (an optional peer dependency) installed.
import type { ConnectionOptions } from 'nats';
import type { PushletBrokerFactory } from '../interfaces/pushlet-options.interface.js';
import { MemoryBroker } from '../core/memory-broker.js';
import { DEFAULT_MAX_QUEUED } from '../core/recovery-core.js';
import { NatsBroker, type ResolvedNatsOptions } from './nats-broker.js';

export { NatsBroker, PushletNatsError } from './nats-broker.js';
export { NatsPresenceStore } from './nats-presence.js';

/** NATS JetStream for the `broker` option (`natsBroker({ servers })`). Instances naming the same servers, `stream` and `subjectPrefix` share topics, history and ids. */
export interface NatsBrokerOptions {
  /** `nats://host:port` (or several, comma-separated or as a list). With none (unset or empty) the module runs in memory and logs so. */
  servers?: string | readonly string[];
  /** The JetStream stream holding every topic's history. Default `PUSHLET`. Created when missing. */
  stream?: string;
  /** First token of every subject the module uses (`<prefix>.h.…` history, `<prefix>.l.…` live, `<prefix>.control`). Default `pushlet`. */
  subjectPrefix?: string;
  /** The stream's and the presence bucket's storage. Default `file` (history survives a server restart). */
  storage?: 'file' | 'memory';
  /** Stream replicas on a JetStream cluster. Default 1. */
  replicas?: number;
  /** How long JetStream remembers a publication's id, so that one sent again is recorded once. Default 2 minutes (at most the history's age). */
  duplicateWindowMs?: number;
  /** The key-value bucket of presence. Default `<stream>_presence`. */
  presenceBucket?: string;
  /** Start while NATS cannot be reached (publications wait for it) instead of failing. Default false. */
  startWithoutNats?: boolean;
  /** How long start-up waits for NATS. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How long a JetStream call may take before NATS is treated as unreachable. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Publications kept while NATS is unreachable. Default 10 000. */
  maxQueued?: number;
  /** Further options of the NATS client's `connect` (credentials, TLS, name…); `servers` and `timeout` come from above. */
  connection?: Partial<ConnectionOptions>;
}

const NAME = /^[A-Za-z0-9_-]+$/;
const PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new TypeError(`nats.${name} must be a positive number`);
  return n;
}

/** @throws TypeError for an option NATS would refuse (a stream name or subject prefix with reserved characters). */
export function resolveNatsOptions(options: NatsBrokerOptions): ResolvedNatsOptions | undefined {
  const list = typeof options.servers === 'string' ? options.servers.split(',') : [...(options.servers ?? [])];
  const servers = list.map((server) => server.trim()).filter((server) => server !== '');
  if (servers.length === 0) return undefined;
  const stream = options.stream ?? 'PUSHLET';
  const subjectPrefix = options.subjectPrefix ?? 'pushlet';
  if (!NAME.test(stream)) throw new TypeError('nats.stream must be letters, digits, "-" or "_"');
  if (!PREFIX.test(subjectPrefix)) throw new TypeError('nats.subjectPrefix must be tokens of letters, digits, "-" or "_" joined by "."');
  const presenceBucket = options.presenceBucket ?? `${stream}_presence`;
  if (!NAME.test(presenceBucket)) throw new TypeError('nats.presenceBucket must be letters, digits, "-" or "_"');
  if (options.storage !== undefined && options.storage !== 'file' && options.storage !== 'memory')
    throw new TypeError('nats.storage must be "file" or "memory"');
  return {
    servers,
    stream,
    subjectPrefix,
    storage: options.storage ?? 'file',
    replicas: positive(options.replicas, 1, 'replicas'),
    duplicateWindowMs: positive(options.duplicateWindowMs, 120_000, 'duplicateWindowMs'),
    presenceBucket,
    startWithoutNats: options.startWithoutNats === true,
    connectTimeoutMs: positive(options.connectTimeoutMs, 5_000, 'connectTimeoutMs'),
    commandTimeoutMs: positive(options.commandTimeoutMs, 2_000, 'commandTimeoutMs'),
    maxQueued: positive(options.maxQueued, DEFAULT_MAX_QUEUED, 'maxQueued'),
    connection: options.connection ?? {},
  };
}

/**
 * The NATS JetStream broker for the `broker` option:
 * `PushletModule.forRoot({ broker: natsBroker({ servers: 'nats://127.0.0.1:4222' }) })`. Options
 * are checked when the module starts; with no `servers` the module runs in memory and logs so.
 */
export function natsBroker(options: NatsBrokerOptions): PushletBrokerFactory {
  return {
    createBroker({ history, logger }) {
      const resolved = resolveNatsOptions(options);
      if (resolved) return new NatsBroker(resolved, history, logger);
      logger.warn("natsBroker() names no servers (unset or empty): distributed mode is off, so this instance's messages reach only its own clients");
      return new MemoryBroker(history);
    },
  };
}
