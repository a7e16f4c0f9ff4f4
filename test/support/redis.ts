import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { eventually, within } from './wait.js';
import { dirs, live } from './spawned.js';

/**
 * Real `redis-server` processes for tests: each on a free loopback port (never 6379), without
 * persistence, in its own temporary directory. Every process started here is killed and every
 * directory removed by `stop()`, and, as a last resort, when the test process exits.
 */

/** A free TCP port on 127.0.0.1: listen on port 0, read the port, close. Never 6379. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    if (port !== 6379 && port !== 0) return port;
  }
}

const READY_LINE = /Ready to accept connections/;

/** One `redis-server` process that can be killed (SIGKILL) and restarted on the same port. */
export class RedisServer {
  readonly dir: string;
  private child: ChildProcess | undefined;
  private log = '';

  private constructor(
    readonly port: number,
    private readonly extraArgs: readonly string[],
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'pushlet-redis-'));
    dirs.add(this.dir);
  }

  /** Starts a server on a free port (or `port`) and resolves once it accepts connections. */
  static async start(options: { port?: number; args?: readonly string[] } = {}): Promise<RedisServer> {
    const server = new RedisServer(options.port ?? (await freePort()), options.args ?? []);
    await server.spawn();
    return server;
  }

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** A new client of this server (quit it yourself). */
  client(): Redis {
    return new Redis({ host: '127.0.0.1', port: this.port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  }

  /** Runs one command on a short-lived connection. */
  async command<T = unknown>(...args: [string, ...(string | number)[]]): Promise<T> {
    const client = this.client();
    client.on('error', () => undefined);
    try {
      await client.connect();
      return (await client.call(...args)) as T;
    } finally {
      client.disconnect();
    }
  }

  /** Kills the process with SIGKILL (no shutdown, no save) and waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await within(exited, 5_000, `redis-server :${this.port} to exit`);
    live.delete(child);
  }

  /** Starts the server again on the same port (after {@link kill}). */
  async restart(): Promise<void> {
    if (this.child) throw new Error('redis-server is still running');
    await this.spawn();
  }

  /** Kills the process and removes its directory. Safe to call twice. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }

  private async spawn(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir];
    const child = spawn('redis-server', [...args, ...this.extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    this.child = child;
    this.log = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        this.log += chunk.toString();
        if (READY_LINE.test(this.log)) {
          child.stdout?.off('data', onData);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`redis-server :${this.port} exited with ${code}: ${this.log.slice(-500)}`)));
    });
    try {
      await within(ready, 10_000, `redis-server :${this.port} to accept connections`);
    } catch (error) {
      await this.kill();
      throw error;
    }
    // Keep draining the pipes so that the server never blocks on a full one.
    child.stdout?.resume();
    child.stderr?.resume();
  }
}

/** Client connections the server holds now (`CLIENT LIST`), not counting the one asking. */
export async function clientCount(server: RedisServer): Promise<number> {
  const list = await server.command<string>('CLIENT', 'LIST');
  return list.split('\n').filter((line) => line.trim().length > 0).length - 1;
}

/** A Redis Cluster of three masters (or `masters`; no replicas), each a {@link RedisServer}. */
export class RedisCluster {
  private constructor(readonly servers: readonly RedisServer[]) {}

  static async start(options: { masters?: number } = {}): Promise<RedisCluster> {
    const masters = options.masters ?? 3;
    const servers: RedisServer[] = [];
    try {
      for (let i = 0; i < masters; i += 1) {
        const port = await freePort();
        servers.push(
          await RedisServer.start({
            port,
            args: [
              '--cluster-enabled',
              'yes',
              '--cluster-config-file',
              `nodes-${port}.conf`,
              '--cluster-node-timeout',
              '2000',
              '--cluster-announce-ip',
              '127.0.0.1',
            ],
          }),
        );
      }
      if (masters === 1) {
        // `redis-cli --cluster create` wants three masters at least: a one-master cluster takes every slot itself.
        await servers[0]!.command('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
        const cluster = new RedisCluster(servers);
        await eventually(() => cluster.stateOk(), 15_000, 'cluster_state:ok');
        return cluster;
      }
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
      const cluster = new RedisCluster(servers);
      await eventually(() => cluster.stateOk(), 15_000, 'cluster_state:ok on every node');
      return cluster;
    } catch (error) {
      for (const server of servers) await server.stop();
      throw error;
    }
  }

  /** True once every node reports `cluster_state:ok`. */
  async stateOk(): Promise<boolean> {
    for (const server of this.servers) {
      const info = await server.command<string>('CLUSTER', 'INFO');
      if (!/cluster_state:ok/.test(info)) return false;
    }
    return true;
  }

  get nodes(): Array<{ host: string; port: number }> {
    return this.servers.map((s) => ({ host: '127.0.0.1', port: s.port }));
  }

  /** The port of the master serving `slot`. */
  async masterOfSlot(slot: number): Promise<number> {
    const slots = await this.servers[0]!.command<Array<[number, number, [string, number]]>>('CLUSTER', 'SLOTS');
    const range = slots.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`no master serves slot ${slot}`);
    return Number(range[2][1]);
  }

  async keySlot(key: string): Promise<number> {
    return this.servers[0]!.command<number>('CLUSTER', 'KEYSLOT', key);
  }

  async stop(): Promise<void> {
    for (const server of this.servers) await server.stop();
  }
}
