import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type ServerOptions, type VerifyClientCallbackAsync } from 'ws';
import { MESSAGES } from '../pushlet.messages.js';

export interface WsServerOptions {
  readonly path: string;
  readonly maxPayload: number;
  readonly allowedOrigins?: readonly string[];
  /** Decides on an upgrade before it is answered: `undefined` lets it through, else the refusal. */
  readonly admit?: (request: IncomingMessage) => Promise<{ status: number; body: string } | undefined>;
  /** Told of every upgrade refused for its `Origin`. */
  readonly refused?: () => void;
}

/** A `ws` server that receives the upgrades of one path of the app's HTTP server. */
export interface MountedWsServer {
  readonly server: WebSocketServer;
  /** How it gets its upgrades: through the app's `WsAdapter`, or an `upgrade` listener of its own. */
  readonly via: 'WsAdapter' | 'upgrade listener';
  /** Stops taking upgrades (open connections are the caller's to close). */
  unmount(): void;
}

/** The part of `@nestjs/platform-ws`'s `WsAdapter` used here. */
interface WsAdapterLike {
  create(port: number, options: Record<string, unknown>): unknown;
  readonly httpServer?: unknown;
}

/**
 * Mounts the endpoint on the app's HTTP server. `WsAdapter` destroys every upgrade to a path it
 * does not know, so when the app uses one on this server the endpoint registers through it
 * (`create(0, { path })`, as a gateway would). Otherwise it listens to `upgrade` for its own path
 * and leaves other paths to the other listeners.
 */
export async function mountWsServer(options: WsServerOptions, httpServer: HttpServer, ioAdapter: unknown): Promise<MountedWsServer> {
  const serverOptions: ServerOptions = {
    noServer: true,
    maxPayload: options.maxPayload,
    clientTracking: false,
    perMessageDeflate: false,
    verifyClient: upgradeVerifier(options.allowedOrigins, options.admit, options.refused),
  };
  const wsAdapter = await wsAdapterOf(ioAdapter, httpServer);
  if (wsAdapter) return mountThroughAdapter(wsAdapter, options.path, serverOptions);
  return mountOnUpgrade(httpServer, options.path, serverOptions);
}

function mountThroughAdapter(adapter: WsAdapterLike, path: string, serverOptions: ServerOptions): MountedWsServer {
  // The adapter's `ws` may be another copy than this module's: check the shape, not the class.
  const server = adapter.create(0, { ...serverOptions, path });
  if (!isWsServer(server)) throw new TypeError('WsAdapter.create did not return a ws WebSocketServer');
  // The adapter keeps routing to the server until it is disposed; a closed server answers 503.
  return { server, via: 'WsAdapter', unmount: () => server.close() };
}

function mountOnUpgrade(httpServer: HttpServer, path: string, serverOptions: ServerOptions): MountedWsServer {
  const server = new WebSocketServer(serverOptions);
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathnameOf(request) !== path) {
      // Alone on the server, nobody else will answer: say 404 rather than leave the socket hanging.
      if (httpServer.listenerCount('upgrade') === 1) refuseUpgrade(socket, 404);
      return;
    }
    server.handleUpgrade(request, socket, head, (ws) => server.emit('connection', ws, request));
  };
  httpServer.on('upgrade', onUpgrade);
  return {
    server,
    via: 'upgrade listener',
    unmount: () => {
      httpServer.off('upgrade', onUpgrade);
      server.close();
    },
  };
}

function isWsServer(value: unknown): value is WebSocketServer {
  const server = value as Partial<WebSocketServer> | null;
  return typeof server?.handleUpgrade === 'function' && typeof server.on === 'function' && typeof server.close === 'function';
}

/** The app's adapter if it is a `WsAdapter` serving `httpServer`. */
async function wsAdapterOf(adapter: unknown, httpServer: HttpServer): Promise<WsAdapterLike | undefined> {
  if (!adapter || typeof adapter !== 'object') return undefined;
  const WsAdapter = await loadWsAdapterClass();
  if (WsAdapter === undefined || !(adapter instanceof WsAdapter)) return undefined;
  return adapter.httpServer === httpServer ? adapter : undefined;
}

/** `@nestjs/platform-ws` is needed only by apps that use it, so it is loaded only if present. */
async function loadWsAdapterClass(): Promise<(abstract new (...args: never[]) => WsAdapterLike) | undefined> {
  try {
    const platformWs = await import('@nestjs/platform-ws');
    return platformWs.WsAdapter as unknown as abstract new (...args: never[]) => WsAdapterLike;
  } catch {
    return undefined;
  }
}

/**
 * Decides on each upgrade before it is answered: the `Origin` check, then `admit` (the route
 * guards). Upgrades whose `Origin` is not listed are refused with 403. An upgrade without `Origin`
 * is not from a browser page (browsers always send it) and passes that check: any other client
 * can send whatever `Origin` it likes, so refusing those would protect nothing.
 */
function upgradeVerifier(
  allowedOrigins: readonly string[] | undefined,
  admit: WsServerOptions['admit'],
  refused: WsServerOptions['refused'],
): VerifyClientCallbackAsync {
  const allowed = allowedOrigins && new Set(allowedOrigins.map((origin) => origin.toLowerCase()));
  return ({ origin, req }, done) => {
    if (allowed && origin !== undefined && !allowed.has(String(origin).toLowerCase())) {
      refused?.();
      done(false, 403, MESSAGES.wsOriginForbidden);
      return;
    }
    if (!admit) {
      accept(req, done);
      return;
    }
    admit(req).then(
      (refusal) => (refusal ? done(false, refusal.status, refusal.body, { 'Content-Type': 'application/json; charset=utf-8' }) : accept(req, done)),
      () => done(false, 500, 'internal error'),
    );
  };
}

/**
 * Lets the upgrade through with its socket corked until the end of the turn: the `101` answer and
 * the first frames written in the same turn (`pushlet:connected`) leave in one system call
 * instead of two or three, which is most of what a short-lived connection costs the server.
 */
function accept(request: IncomingMessage, done: (result: boolean) => void): void {
  const socket = request.socket;
  if (socket.destroyed) return done(true);
  socket.cork();
  setImmediate(uncork, socket);
  done(true);
}

function uncork(socket: Duplex): void {
  if (socket.writableCorked > 0) socket.uncork();
}

function pathnameOf(request: IncomingMessage): string | undefined {
  try {
    return new URL(request.url ?? '/', 'http://localhost').pathname;
  } catch {
    return undefined;
  }
}

function refuseUpgrade(socket: Duplex, status: 404): void {
  socket.on('error', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
}
