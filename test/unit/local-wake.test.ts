import { describe, expect, it } from 'vitest';
import { createLocalWake } from '../../src/pipeline/webhooks/delivery-scheduler.ts';

/** Whether `wait` had resolved by the time a promise resolved at once does: a wake it kept, not its timeout. */
async function returnsAtOnce(waiting: Promise<void>): Promise<boolean> {
  return Promise.race([waiting.then(() => true), Promise.resolve().then(() => false)]);
}

describe('local wake (the embedded loop’s wake-up)', () => {
  it('keeps a wake that comes while the loop is busy, also after a wait that timed out', async () => {
    const wake = createLocalWake();
    const stop = new AbortController();
    try {
      // A wait that runs out: its waiter must not linger and swallow the next wake.
      await wake.wait(1, stop.signal);
      await wake.schedule([{ id: '1', endpointId: 'e' }]);
      expect(await returnsAtOnce(wake.wait(60_000, stop.signal))).toBe(true);
      // Consumed: the next wait waits.
      const next = wake.wait(60_000, stop.signal);
      expect(await returnsAtOnce(next)).toBe(false);
      wake.poke();
      await next;
    } finally {
      stop.abort();
    }
  });

  it('wakes the loop waiting now, and leaves no wake behind for the wait after', async () => {
    const wake = createLocalWake();
    const stop = new AbortController();
    try {
      const waiting = wake.wait(60_000, stop.signal);
      wake.poke();
      await waiting;
      expect(await returnsAtOnce(wake.wait(60_000, stop.signal))).toBe(false);
    } finally {
      stop.abort();
    }
  });

  it('returns at once once the loop is stopping', async () => {
    const wake = createLocalWake();
    const stop = new AbortController();
    stop.abort();
    expect(await returnsAtOnce(wake.wait(60_000, stop.signal))).toBe(true);
  });
});
