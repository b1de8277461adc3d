import { describe, expect, it } from 'vitest';
import { createBackoff, pause } from '../../src/pipeline/coordination/backoff.ts';
import { createKeyedCoalescer, createKeyedSerial } from '../../src/pipeline/coordination/keyed-serial.ts';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('backoff', () => {
  it('doubles from the first delay up to the cap, and starts over after a reset', () => {
    const backoff = createBackoff({ initialMs: 100, maxMs: 1000 });
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([100, 200, 400, 800, 1000]);
    expect(backoff.failures).toBe(5);
    backoff.reset();
    expect(backoff.next()).toBe(100);
  });

  it('keeps jitter within its spread', () => {
    const backoff = createBackoff({ initialMs: 1000, maxMs: 1000, jitterMs: 500 });
    for (let i = 0; i < 200; i += 1) {
      const delay = backoff.next();
      expect(delay).toBeGreaterThanOrEqual(500);
      expect(delay).toBeLessThanOrEqual(1500);
    }
  });

  it('pause ends at once, reporting false, when its signal aborts', async () => {
    const controller = new AbortController();
    const paused = pause(60_000, controller.signal);
    controller.abort();
    await expect(paused).resolves.toBe(false);
    await expect(pause(60_000, controller.signal)).resolves.toBe(false);
    await expect(pause(0)).resolves.toBe(true);
  });
});

describe('keyed serial execution', () => {
  it('runs one key in reservation order even when later work is ready first', async () => {
    const serial = createKeyedSerial();
    const order: string[] = [];
    const first = serial.reserve(['a']);
    const second = serial.reserve(['a']);
    const gate = deferred();
    const secondDone = second.run(() => Promise.resolve(void order.push('second')));
    const firstDone = first.run(async () => {
      await gate.promise;
      order.push('first');
    });
    gate.resolve();
    await Promise.all([firstDone, secondDone]);
    expect(order).toEqual(['first', 'second']);
    expect(serial.pendingKeys).toBe(0);
  });

  it('lets other keys pass, waits for every key a slot names, and survives a failing slot', async () => {
    const serial = createKeyedSerial();
    const order: string[] = [];
    const gate = deferred();
    const blockedA = serial.run(['a'], async () => {
      await gate.promise;
      order.push('a1');
      throw new Error('boom');
    });
    await serial.run(['b'], () => Promise.resolve(void order.push('b1')));
    const both = serial.run(['a', 'b'], () => Promise.resolve(void order.push('ab')));
    gate.resolve();
    await expect(blockedA).rejects.toThrow('boom');
    await both;
    expect(order).toEqual(['b1', 'a1', 'ab']);
  });

  it('a cancelled slot releases the ones behind it', async () => {
    const serial = createKeyedSerial();
    const slot = serial.reserve(['a']);
    const after = serial.run(['a'], () => Promise.resolve('ran'));
    slot.cancel();
    await expect(after).resolves.toBe('ran');
    await expect(slot.run(() => Promise.resolve(1))).rejects.toThrow('slot already used');
  });
});

describe('keyed coalescer', () => {
  it('queues one more run behind a running one, shared by every request meanwhile', async () => {
    const coalescer = createKeyedCoalescer();
    const gate = deferred();
    let runs = 0;
    const work = async () => {
      runs += 1;
      if (runs === 1) await gate.promise;
    };
    const first = coalescer.request('k', work);
    const second = coalescer.request('k', work);
    const third = coalescer.request('k', work);
    expect(second).toBe(third);
    gate.resolve();
    await Promise.all([first, second, third]);
    expect(runs).toBe(2);
    await coalescer.request('k', work);
    expect(runs).toBe(3);
  });
});
