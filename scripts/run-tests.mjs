// Runs every compiled test file with Node's own test runner. Node 20's `--test` takes no globs,
// so the files are listed here. Each file runs in its own process.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { preflight } from './preflight.mjs';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...find(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

// Programs the suite needs (redis-server, redis-cli, chromium, nginx): one line each for the
// missing ones, with the command that installs them, and no test started.
if (!preflight()) process.exit(1);

const filter = process.argv.slice(2);
const files = find('build/test')
  .filter((file) => filter.length === 0 || filter.some((f) => file.includes(f)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under build/test');
  process.exit(1);
}
const child = spawn(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-timeout=300000', '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
