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
    it(`${what}: instance kills, ${kind === 'nats' ? 'NATS' : 'Redis'} losses and client drops`, { timeout }, async (t) => {
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
