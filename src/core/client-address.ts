import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';

/** Express's compiled `trust proxy` setting: whether the hop at `address` (`i` hops from us) is a trusted proxy. */
type TrustFn = (address: string, i: number) => boolean;

const trustOfServer = new WeakMap<object, TrustFn | null>();

/**
 * The address of the client behind a request, as the app's HTTP framework is told to see it
 * (`maxConnectionsPerAddress`, logs; docs/deploy.md): `request.ip` when the framework set it
 * (Express's `trust proxy`, Fastify's `trustProxy`); on a WebSocket upgrade, which no framework
 * sees, Express's `trust proxy` applied to `X-Forwarded-For` as Express does it; else the socket's
 * peer. Without `trust proxy`, `X-Forwarded-For` is ignored: any client could forge it.
 */
export function clientAddress(request: IncomingMessage | undefined): string {
  if (!request) return 'unknown';
  const ip = (request as { ip?: unknown }).ip;
  if (typeof ip === 'string' && ip !== '') return ip;
  const peer = request.socket?.remoteAddress ?? 'unknown';
  const trust = expressTrust(request);
  if (!trust) return peer;
  // As `proxy-addr` does: from the socket's peer back through X-Forwarded-For, the first hop not trusted.
  const header = request.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((hop) => hop.trim())
    .filter((hop) => hop !== '')
    .reverse();
  const hops = [peer, ...forwarded];
  for (let i = 0; i < hops.length - 1; i += 1) if (!trust(hops[i]!, i)) return hops[i]!;
  return hops[hops.length - 1]!;
}

/** Express's `trust proxy fn` of the app serving the request's HTTP server, if that is an Express app that trusts any proxy. */
function expressTrust(request: IncomingMessage): TrustFn | undefined {
  const server = (request.socket as { server?: EventEmitter } | undefined)?.server;
  if (!server) return undefined;
  let trust = trustOfServer.get(server);
  if (trust === undefined) {
    trust = null;
    // The SSE route's dispatcher (src/sse/sse.transport.ts) stands in for the app's own listener.
    const listeners = server.listeners('request').flatMap((listener) => (listener as { framework?: unknown[] }).framework ?? [listener]);
    for (const listener of listeners) {
      const app = listener as { get?: (name: string) => unknown; enabled?: (name: string) => boolean };
      if (typeof app.get !== 'function' || typeof app.enabled !== 'function') continue;
      const fn = app.get('trust proxy fn');
      if (typeof fn === 'function' && app.get('trust proxy') !== undefined && app.get('trust proxy') !== false) trust = fn as TrustFn;
      break;
    }
    // Not cached while unset: an app may set `trust proxy` after listening.
    if (trust) trustOfServer.set(server, trust);
  }
  return trust ?? undefined;
}
