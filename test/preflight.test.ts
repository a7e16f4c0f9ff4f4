import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { within } from './support/wait.js';

/** The repository root (this file runs as build/test/preflight.test.js). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs a script of scripts/ with Node by its absolute path, so that `PATH` is only what the test says. */
async function run(script: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [join(ROOT, 'scripts', script)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await within(new Promise<number | null>((done) => child.once('exit', (c) => done(c))), 20_000, `${script} to exit`).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  return { code, output };
}

describe('pre-flight of npm test: names what is missing and how to install it, before any test runs', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  function emptyDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'pushlet-preflight-'));
    dirs.push(dir);
    return dir;
  }

  it('with none of the programs: one line each naming it and its apt-get install command, exit 1', async () => {
    const { code, output } = await run('preflight.mjs', { PATH: emptyDir(), CHROMIUM_PATH: '/nonexistent/chromium' });
    assert.equal(code, 1);
    const lines = output.trim().split('\n');
    const expected: Array<[string, string]> = [
      ['redis-server', 'redis-server'],
      ['redis-cli', 'redis-tools'],
      ['chromium', 'chromium'],
      ['nats-server', 'nats-server'],
      ['nginx', 'nginx'],
    ];
    for (const [program, pkg] of expected) {
      const line = lines.filter((l) => l.startsWith(`missing: ${program} `));
      assert.equal(line.length, 1, `one line for ${program}:\n${output}`);
      assert.match(line[0]!, new RegExp(`install it with: apt-get install -y ${pkg}$`));
    }
    assert.match(
      lines.at(-1)!,
      /^npm test did not start: 5 program\(s\) missing \(or install all at once: apt-get install -y redis-server redis-tools chromium nats-server nginx\)$/,
    );
  });

  it('names only what is missing, and passes silently when everything is there', async () => {
    const bin = emptyDir();
    for (const program of ['redis-server', 'redis-cli', 'nats-server', 'nginx', 'chromium']) {
      writeFileSync(join(bin, program), '#!/bin/sh\nexit 0\n');
      chmodSync(join(bin, program), 0o755);
    }
    const all = await run('preflight.mjs', { PATH: bin, CHROMIUM_PATH: join(bin, 'chromium') });
    assert.deepEqual(all, { code: 0, output: '' });
    rmSync(join(bin, 'redis-cli'));
    const one = await run('preflight.mjs', { PATH: bin, CHROMIUM_PATH: join(bin, 'chromium') });
    assert.equal(one.code, 1);
    assert.deepEqual(
      one.output
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[1]),
      ['redis-cli', 'test'],
      one.output,
    );
  });

  it('npm test (scripts/run-tests.mjs) stops at the pre-flight: no test file is run', async () => {
    const { code, output } = await run('run-tests.mjs', { PATH: emptyDir(), CHROMIUM_PATH: '/nonexistent/chromium' });
    assert.equal(code, 1);
    assert.match(output, /^missing: redis-server /);
    assert.doesNotMatch(output, /ℹ tests|▶|✔|no test files/, 'the suite never started');
  });
});
