import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Cluster, Redis } from 'ioredis';
import type { ClientRecord } from './chaos-client.js';
import { KEY_PREFIX } from './redis-under-test.js';

type ResetRecord = Extract<ClientRecord, { kind: 'reset' }>;

/**
 * Diagnostics for the chaos test (`CHAOS_DEBUG=1`): at the moment a client is told
 * `pushlet:reset`, what Redis holds of each named topic (its marker's last id and horizon, the
 * oldest entry's id and `p`, the length, Redis's clock) and what the instance says of its link,
 * so that a reset the ledger finds unjustified can be told apart: a floor the module computed
 * wrongly, or a position that was truly older than the history.
 */
export class ResetProbe {
  private readonly client: Redis | Cluster;
  private readonly found = new Map<ResetRecord, Promise<string>>();

  constructor(env: Record<string, string>) {
    const quiet = { lazyConnect: false, enableOfflineQueue: true, maxRetriesPerRequest: 2 };
    if (env.REDIS_CLUSTER_NODES) {
      const nodes = env.REDIS_CLUSTER_NODES.split(',').map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) }));
      this.client = new Cluster(nodes, { clusterRetryStrategy: () => 200, redisOptions: { maxRetriesPerRequest: 2 } });
    } else {
      this.client = new Redis(env.REDIS_URL!, quiet);
    }
    this.client.on('error', () => undefined);
  }

  /** Starts probing for `record` (a reset just received on a connection to `instanceUrl`). */
  probe(record: ResetRecord, instanceUrl: string | undefined): void {
    const at = performance.now();
    this.found.set(record, this.describe(record, instanceUrl, at));
  }

  async text(record: ResetRecord): Promise<string | undefined> {
    return this.found.get(record);
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.found.values());
    this.client.disconnect();
  }

  private async describe(record: ResetRecord, instanceUrl: string | undefined, at: number): Promise<string> {
    const parts: string[] = [];
    const timeout = <T>(p: Promise<T>): Promise<T | string> =>
      Promise.race([p, new Promise<string>((resolve) => setTimeout(() => resolve('(no answer in 3 s)'), 3_000).unref())]);
    for (const topic of record.topics) {
      try {
        const stream = `${KEY_PREFIX}s:{${topic}}`;
        const meta = `${KEY_PREFIX}m:{${topic}}`;
        const answer = await timeout(
          (async () => {
            const [marks, first, length, time] = await Promise.all([
              this.client.hmget(meta, 'l', 'h'),
              this.client.xrange(stream, '-', '+', 'COUNT', 1),
              this.client.xlen(stream),
              // TIME on the topic's shard: a read-only command routed by the key's slot.
              (this.client as Redis).eval("return redis.call('TIME')", 1, stream) as Promise<[string, string]>,
            ]);
            const oldest = first[0];
            const p = oldest ? fieldOf(oldest[1], 'p') : undefined;
            const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
            return `redis: l=${marks[0]} h=${marks[1]} oldest=${oldest?.[0]} p=${p} xlen=${length} now=${now}`;
          })(),
        );
        parts.push(`${topic} ${answer}`);
      } catch (error) {
        parts.push(`${topic} redis: ${(error as Error).message}`);
      }
    }
    if (instanceUrl) {
      const stats = await timeout(getJson(`${instanceUrl}/stats`));
      const broker = typeof stats === 'object' && stats && 'broker' in stats ? JSON.stringify((stats as { broker: unknown }).broker) : String(stats);
      parts.push(`instance broker ${broker}`);
    }
    parts.push(`probed ${Math.round(performance.now() - at)} ms after the reset was read`);
    return parts.join('; ');
  }
}

function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent: false, timeout: 3_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch {
          resolve(`status ${response.statusCode}`);
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', (error) => resolve(`error ${error.message}`));
  });
}
