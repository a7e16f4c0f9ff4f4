// Pre-flight of `npm test`: names each program the suite needs that this machine lacks, with the
// command that installs it, one line each, and exits non-zero before any test starts.
// Run on its own: `node scripts/preflight.mjs`. Chromium is looked for where the browser tests
// launch it: $CHROMIUM_PATH, else /usr/bin/chromium (test/support/browser.ts); nginx at
// $NGINX_PATH when set, else on PATH (test/support/nginx.ts; Debian puts it in /usr/sbin).
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** What the suite runs, and the Debian/Ubuntu package that brings it. */
export const REQUIRED = [
  { program: 'redis-server', package: 'redis-server', usedBy: 'the Redis tests' },
  { program: 'redis-cli', package: 'redis-tools', usedBy: 'the Redis Cluster tests' },
  { program: 'chromium', package: 'chromium', usedBy: 'the browser tests (playwright-core)', path: () => process.env.CHROMIUM_PATH ?? '/usr/bin/chromium' },
  { program: 'nats-server', package: 'nats-server', usedBy: 'the NATS JetStream tests' },
  { program: 'nginx', package: 'nginx', usedBy: 'the deployment test (deploy/nginx.conf)', path: () => process.env.NGINX_PATH },
];

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(program) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && executable(join(dir, program)));
}

/** The required programs this machine lacks. */
export function missingPrograms() {
  return REQUIRED.filter((r) => !(r.path?.() ? executable(r.path()) : onPath(r.program)));
}

/** One line per missing program; true when nothing is missing. */
export function preflight(write = (line) => console.error(line)) {
  const missing = missingPrograms();
  for (const m of missing) {
    const variable = m.program === 'chromium' ? 'CHROMIUM_PATH' : 'NGINX_PATH';
    const where = m.path?.() ? ` at ${m.path()} (set ${variable} to use another)` : ' on PATH';
    write(`missing: ${m.program}${where}, needed by ${m.usedBy}; install it with: apt-get install -y ${m.package}`);
  }
  if (missing.length > 0) write(`npm test did not start: ${missing.length} program(s) missing (or install all at once: apt-get install -y ${missing.map((m) => m.package).join(' ')})`);
  return missing.length === 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.exit(preflight() ? 0 : 1);
