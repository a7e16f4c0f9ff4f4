/**
 * Waits for `work`, or `'timeout'` after `ms`, whichever comes first; rejects when `work` does.
 * The timer does not hold the process open. Several promises: pass `Promise.allSettled(list)`.
 */
export async function settleWithin(work: Promise<unknown>, ms: number): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work.then(() => 'done' as const), giveUp]);
  } finally {
    clearTimeout(timer);
  }
}
