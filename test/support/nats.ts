import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis.js';
import { within } from './wait.js';
import { dirs, live } from './spawned.js';

/**
 * Real `nats-server -js` processes for tests: each on a free loopback port (never the machine's
 * 4222), its JetStream store in a temporary directory. Every process started here is killed and
 * every directory removed by `stop()`, and, as a last resort, when the test process exits.
 */

const READY_LINE = /Server is ready/;

/** One `nats-server -js` that can be killed (SIGKILL) and restarted on the same port, with its store kept or wiped. */
export class NatsServer {
  readonly dir: string;
  private child: ChildProcess | undefined;
  private log = '';

  private constructor(readonly port: number) {
    this.dir = mkdtempSync(join(tmpdir(), 'pushlet-nats-'));
    dirs.add(this.dir);
  }

  static async start(): Promise<NatsServer> {
    let port = await freePort();
    while (port === 4222) port = await freePort();
    const server = new NatsServer(port);
    await server.spawn();
    return server;
  }

  /** `nats://127.0.0.1:<port>` */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** The server's process id while it runs (benchmarks read its CPU time from /proc). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Kills the process with SIGKILL and waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await within(exited, 5_000, `nats-server :${this.port} to exit`);
    live.delete(child);
  }

  /** Starts the server again on the same port (after {@link kill}); `wipe` loses its JetStream data first. */
  async restart(options: { wipe?: boolean } = {}): Promise<void> {
    if (this.child) throw new Error('nats-server is still running');
    if (options.wipe) rmSync(join(this.dir, 'jetstream'), { recursive: true, force: true });
    await this.spawn();
  }

  /** Kills the process and removes its directory. Safe to call twice. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }

  private async spawn(): Promise<void> {
    const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    this.child = child;
    this.log = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        this.log += chunk.toString();
        if (READY_LINE.test(this.log)) resolve();
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`nats-server :${this.port} exited with ${code}: ${this.log.slice(-500)}`)));
    });
    try {
      await within(ready, 10_000, `nats-server :${this.port} to be ready`);
    } catch (error) {
      await this.kill();
      throw error;
    }
    child.stdout?.resume();
    child.stderr?.resume();
  }
}
