import type { ListenOptions } from 'node:net';
import { createSampleApp } from './app.js';

/** `REDIS_CLUSTER_NODES="127.0.0.1:7000,127.0.0.1:7001"`: seed nodes of a Redis Cluster. */
function clusterNodes(value: string | undefined): Array<{ host: string; port: number }> | undefined {
  if (!value) return undefined;
  return value
    .split(',')
    .map((node) => node.trim())
    .filter((node) => node.length > 0)
    .map((node) => {
      const colon = node.lastIndexOf(':');
      const port = Number(node.slice(colon + 1));
      if (colon <= 0 || !Number.isInteger(port) || port <= 0) throw new Error(`REDIS_CLUSTER_NODES: "${node}" is not host:port`);
      return { host: node.slice(0, colon), port };
    });
}

/** `TRUST_PROXY`: `true`/`false`, a hop count, or Express's list of addresses and subnets. */
function trustProxy(value: string | undefined): boolean | number | string | undefined {
  if (!value) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  return /^\d+$/.test(value) ? Number(value) : value;
}

const port = Number(process.env.PORT ?? 3000);
const heartbeatMs = process.env.HEARTBEAT_MS ? Number(process.env.HEARTBEAT_MS) : undefined;
const app = await createSampleApp({
  redisUrl: process.env.REDIS_URL || undefined,
  redisClusterNodes: clusterNodes(process.env.REDIS_CLUSTER_NODES),
  redisKeyPrefix: process.env.REDIS_KEY_PREFIX || undefined,
  // `NATS_URL=nats://127.0.0.1:4222`: NATS JetStream instead of Redis.
  natsUrl: process.env.NATS_URL || undefined,
  natsStream: process.env.NATS_STREAM || undefined,
  natsSubjectPrefix: process.env.NATS_SUBJECT_PREFIX || undefined,
  heartbeatMs,
  token: process.env.PUSHLET_TOKEN || undefined,
  presenceTtlMs: process.env.PRESENCE_TTL_MS ? Number(process.env.PRESENCE_TTL_MS) : undefined,
  maxConnectionsPerAddress: process.env.MAX_CONNECTIONS_PER_ADDRESS ? Number(process.env.MAX_CONNECTIONS_PER_ADDRESS) : undefined,
  // `TRUST_PROXY=1`: one proxy in front (docs/deploy.md); a number of hops, `true`, or addresses/subnets.
  trustProxy: trustProxy(process.env.TRUST_PROXY),
});
// The listen queue: connections the kernel holds until Node accepts them. Node's default (511)
// overflows when thousands of clients reconnect at once (a deploy, a network blip); the kernel caps
// it at net.core.somaxconn (docs/operations.md). Nest hands listen()'s arguments on to Node's
// http.Server.listen as they are, so an options object sets it; Nest's typing names a port only.
const backlog = Number(process.env.LISTEN_BACKLOG ?? 4096);
const listen = app.listen.bind(app) as (options: ListenOptions) => Promise<unknown>;
await listen({ port, backlog });
console.log(`Pushlet sample on http://localhost:${port} (SSE /events, WebSocket /ws, publish /send, /broadcast)`);
