import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../redis.js';
import { within } from '../wait.js';
import { dirs, live } from '../spawned.js';

/**
 * Sample app instances (`node build/sample/main.js`) as separate processes, each on a free port
 * that it keeps across SIGKILL and restart. Every process started here is killed and every log
 * directory removed by `stop()`, and, as a last resort, when the test process exits.
 */

const MAIN = fileURLToPath(new URL('../../../sample/main.js', import.meta.url));

/**
 * How long a start (or restart) may take until the instance answers HTTP. Generous on purpose:
 * on a 2-core machine shared with other test runs and busy loops (load average 20 and more), a
 * Node + Nest start took more than 20 s (the old bound): the process had printed only "Starting
 * Nest application..", or nothing at all, when it ran out (Cluster seeds 105 and 106 beside two
 * busy loops). That is starvation, not a fault of the module: the run only waits longer.
 */
const READY_MS = 60_000;

export class SampleProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly dir: string;
  /** Processes spawned so far (first start and restarts, retries included). */
  starts = 0;

  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'pushlet-sample-'));
    dirs.add(this.dir);
  }

  /** Starts an instance on a free port and resolves once it answers HTTP. */
  static async start(name: string, env: Record<string, string>, readyMs = READY_MS): Promise<SampleProcess> {
    const sample = new SampleProcess(name, await freePort(), env);
    await sample.spawnReady(readyMs);
    return sample;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.kill('SIGKILL');
    await within(this.exited, 5_000, `${this.name} to exit`);
    live.delete(child);
  }

  /**
   * Starts the instance again on the same port and waits until it answers. An attempt whose
   * process exits before it answers (Redis not reachable yet) is retried until `readyMs` is spent.
   */
  async restart(readyMs = READY_MS): Promise<void> {
    if (this.child) throw new Error(`${this.name} is still running`);
    await this.spawnReady(readyMs);
  }

  /** The last lines of the instance's output (stdout and stderr), for failure reports. */
  logTail(lines = 20): string {
    try {
      const text = readFileSync(join(this.dir, 'out.log'), 'utf8');
      return text.split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }

  private async spawnReady(readyMs: number): Promise<void> {
    const deadline = Date.now() + readyMs;
    for (;;) {
      const child = this.spawn();
      // Poll until it answers, or its process exits first (Redis not reachable yet: try again).
      while (this.child === child && !(await answers(this.url))) {
        if (Date.now() > deadline) throw new Error(`${this.name} did not answer within ${readyMs} ms:\n${this.logTail()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (this.child === child) return;
      if (Date.now() > deadline) throw new Error(`${this.name} did not start within ${readyMs} ms:\n${this.logTail()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Spawns the process. */
  private spawn(): ChildProcess {
    this.starts += 1;
    const log = openSync(join(this.dir, 'out.log'), 'a');
    const child = spawn(process.execPath, [MAIN], {
      env: { ...process.env, ...this.env, PORT: String(this.port), NO_COLOR: '1' },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    live.add(child);
    this.child = child;
    this.exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        live.delete(child);
        if (this.child === child) this.child = undefined;
        resolve();
      }),
    );
    return child;
  }
}

/** True if `GET /` answers with any status within a second. */
function answers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get(url + '/', { agent: false, timeout: 1_000 }, (response) => {
      response.resume();
      resolve(true);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}
