import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

/**
 * The servers tests start themselves (redis-server, nats-server, nginx, sample apps) and their
 * temporary directories. Each launcher adds what it starts and removes what it stops; whatever is
 * left is killed and removed when the test process exits, or is interrupted (Ctrl-C, a runner's
 * timeout: clean up, then die of the same signal).
 */
export const live = new Set<ChildProcess>();
export const dirs = new Set<string>();

function cleanUp(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}
process.once('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp();
    process.kill(process.pid, signal);
  });
}
