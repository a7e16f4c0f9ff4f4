import net from 'node:net';
import { once } from 'node:events';

export interface TcpProxyOptions {
  /**
   * `refuse`: a connection whose first request asks for an upgrade is answered `502 Bad Gateway`
   * and closed, as by a proxy that does not do WebSocket (clients open a fresh connection for
   * each upgrade); other connections go through. Default `pass`.
   */
  readonly upgrades?: 'pass' | 'refuse';
}

/**
 * A TCP proxy in front of an app, to cut connections the way a network does: `cut()` destroys
 * every piped socket (no WebSocket close frame, no end of the SSE stream) and refuses new ones
 * until `restore()`; `freeze()` stops forwarding on the open connections without closing them
 * (a half-open link that only a ping notices), and with `hold` holds new connections as well
 * (accepted, nothing forwarded) until `thaw()` lets everything flow again; `pointAt()` sends new connections to another
 * port (a load balancer failing over). Close it in `afterEach`.
 */
export class TcpProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private mode: 'open' | 'cut' = 'open';
  /** Each piped connection: the client's socket and the one to the app. */
  private readonly pairs = new Map<net.Socket, net.Socket>();
  /** While frozen with `hold`: connections accepted and held, bytes and all, until `thaw()`. */
  private held: Array<() => void> | undefined;
  private frozen = false;

  private constructor(
    private target: number,
    private readonly options: TcpProxyOptions,
  ) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(targetPort: number, options: TcpProxyOptions = {}): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort, options);
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  get openSockets(): number {
    return this.sockets.size;
  }

  cut(): void {
    this.mode = 'cut';
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.mode = 'open';
  }

  /** New connections go to `port` from now on; open ones stay where they are. */
  pointAt(port: number): void {
    this.target = port;
  }

  /**
   * Open connections stop carrying bytes either way, without FIN or RST. New ones work, or with
   * `newConnections: 'hold'` are accepted and held (nothing forwarded) until {@link thaw}.
   */
  freeze(options: { newConnections?: 'pass' | 'hold' } = {}): void {
    this.frozen = true;
    for (const socket of this.sockets) {
      socket.unpipe();
      socket.pause();
    }
    if (options.newConnections === 'hold') this.held ??= [];
  }

  /** Ends a freeze: the frozen connections carry bytes again (what was written meanwhile first), the held ones go through. */
  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    for (const [client, upstream] of this.pairs) {
      if (client.destroyed || upstream.destroyed) continue;
      client.pipe(upstream);
      upstream.pipe(client);
    }
    const held = this.held ?? [];
    this.held = undefined;
    for (const release of held) release();
  }

  async close(): Promise<void> {
    this.held = undefined;
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.mode === 'cut') {
      client.destroy();
      return;
    }
    if (this.held) {
      client.pause();
      this.sockets.add(client);
      client.on('error', () => undefined);
      client.on('close', () => this.sockets.delete(client));
      this.held.push(() => {
        this.sockets.delete(client);
        if (!client.destroyed) this.accept(client);
      });
      return;
    }
    if (this.options.upgrades === 'refuse') return this.screenUpgrade(client);
    this.pipe(client);
  }

  /** Reads the request head first: an upgrade is answered 502, anything else goes through. */
  private screenUpgrade(client: net.Socket): void {
    this.sockets.add(client);
    client.on('error', () => undefined);
    client.on('close', () => this.sockets.delete(client));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      client.pause();
      if (/^upgrade:/im.test(head.subarray(0, end).toString('latin1'))) {
        client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      this.sockets.delete(client);
      this.pipe(client, head);
    };
    client.on('data', onData);
  }

  private pipe(client: net.Socket, head?: Buffer): void {
    const upstream = net.connect(this.target, '127.0.0.1');
    if (head) upstream.write(head);
    this.pairs.set(client, upstream);
    client.once('close', () => this.pairs.delete(client));
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }
}
