import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './redis.js';
import { eventually, within } from './wait.js';
import { live } from './spawned.js';

/** deploy/nginx.conf of this repository (this file runs as build/test/support/nginx.js). */
export const DEPLOY_CONFIG = resolve(dirname(fileURLToPath(import.meta.url)), '../../../deploy/nginx.conf');

export interface NginxOptions {
  /** The app ports that replace the config's two `server 127.0.0.1:300x` upstream lines. */
  readonly upstreams: readonly [number, number];
  /** Replaces the config's `proxy_read_timeout` and `proxy_send_timeout` (e.g. `3s`). */
  readonly timeout: string;
}

/**
 * Replaces `from` in `text`, which must occur exactly once: a change to deploy/nginx.conf that
 * the test no longer matches fails loudly instead of testing something else.
 */
function once(text: string, from: string | RegExp, to: string): string {
  const count = typeof from === 'string' ? text.split(from).length - 1 : (text.match(new RegExp(from, 'g')) ?? []).length;
  if (count !== 1) throw new Error(`deploy/nginx.conf: expected "${String(from)}" once, found ${count} times`);
  return text.replace(from, to);
}

/**
 * A real nginx running deploy/nginx.conf, changed only where a test must: a free port on
 * 127.0.0.1, the test's two app ports, the timeouts given, one worker, and pid, logs and temp
 * files in its own temporary directory (`nginx -c <its config> -p <dir> -e <its error log>`,
 * `daemon off`). `stop()` ends it and removes the directory.
 */
export class Nginx {
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly child: ChildProcess,
    private readonly log: () => string,
  ) {}

  static async start(options: NginxOptions): Promise<Nginx> {
    const dir = mkdtempSync(join(tmpdir(), 'pushlet-nginx-'));
    for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
    const port = await freePort();
    let config = readFileSync(DEPLOY_CONFIG, 'utf8');
    config = once(config, 'worker_processes auto;', `daemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log info;`);
    config = once(
      config,
      /http \{\n/,
      `http {\n    access_log ${dir}/access.log;\n` +
        ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
          .map((kind) => `    ${kind}_temp_path ${dir}/${kind === 'client_body' ? 'body' : kind};\n`)
          .join(''),
    );
    config = once(config, 'listen 8080;', `listen 127.0.0.1:${port};`);
    config = once(config, 'server 127.0.0.1:3001 ', `server 127.0.0.1:${options.upstreams[0]} `);
    config = once(config, 'server 127.0.0.1:3002 ', `server 127.0.0.1:${options.upstreams[1]} `);
    config = once(config, 'proxy_read_timeout 75s;', `proxy_read_timeout ${options.timeout};`);
    config = once(config, 'proxy_send_timeout 75s;', `proxy_send_timeout ${options.timeout};`);
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, config);

    const binary = process.env.NGINX_PATH ?? 'nginx';
    const child = spawn(binary, ['-c', file, '-p', dir, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`nginx exited with ${code}: ${output}`)));
    });
    exited.catch(() => undefined);
    const log = () => {
      try {
        return output + readFileSync(join(dir, 'error.log'), 'utf8');
      } catch {
        return output;
      }
    };
    const nginx = new Nginx(port, dir, child, log);
    try {
      // Ready once it answers (the apps' /health through it): nginx says nothing when it listens.
      await Promise.race([
        exited,
        eventually(
          async () => (await fetch(`${nginx.url}/health`, { signal: AbortSignal.timeout(1_000) })).status === 200,
          10_000,
          `nginx on :${port} proxying /health`,
        ),
      ]);
    } catch (error) {
      await nginx.stop();
      throw new Error(`${String(error)}\n${log().slice(-2_000)}`, { cause: error });
    }
    return nginx;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** nginx's own error log (and output), for assertion messages. */
  get errorLog(): string {
    return this.log();
  }

  /** Stops nginx (SIGTERM: fast shutdown, every connection closed), waits for it, removes its directory. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((done) => child.once('exit', () => done()));
      child.kill('SIGTERM');
      await within(exited, 5_000, 'nginx to exit').catch(() => {
        child.kill('SIGKILL');
      });
    }
    live.delete(child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
