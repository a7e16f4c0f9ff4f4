import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';

/** Express's compiled `trust proxy` setting: whether the hop at `address` (`i` hops from us) is a trusted proxy. */
type TrustFn = (address: string, i: number) => boolean;

/** What is read of an Express app: its settings. */
interface ExpressApp {
  get(name: string): unknown;
  enabled(name: string): boolean;
}

/** The Express app serving each HTTP server, once found. */
const appOfServer = new WeakMap<object, ExpressApp>();

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
  let app = appOfServer.get(server);
  if (!app) {
    // The SSE route's dispatcher (src/sse/sse.transport.ts) stands in for the app's own listener.
    const listeners = server.listeners('request').flatMap((listener) => (listener as { framework?: unknown[] }).framework ?? [listener]);
    app = listeners.find((listener): listener is ExpressApp & typeof listener => {
      const candidate = listener as Partial<ExpressApp>;
      return typeof candidate.get === 'function' && typeof candidate.enabled === 'function';
    });
    // Not cached while none is found: the app's listener may come later.
    if (!app) return undefined;
    appOfServer.set(server, app);
  }
  // Read on every request: an app may set `trust proxy` after listening.
  const setting = app.get('trust proxy');
  if (setting === undefined || setting === false) return undefined;
  const fn = app.get('trust proxy fn');
  return typeof fn === 'function' ? (fn as TrustFn) : undefined;
}
