import { describe, expect, it } from 'vitest';
import { createProcessSetCpu } from '../../bench/lib/cpu.ts';

describe('bench CPU of a changing set of processes', () => {
  it('keeps a backend that ended between two readings at its last reading, so the difference is never negative', () => {
    const backends = createProcessSetCpu();
    const before = backends.record([
      ['101 t0', 100_000],
      ['102 t0', 500_000],
    ]);
    // 102 idled out and closed; 101 worked 50 ms more.
    const after = backends.record([['101 t0', 150_000]]);
    expect(before).toBe(600_000);
    expect(after - before).toBe(50_000);
  });

  it('counts a backend that appeared within the window whole, and a reused pid as another process', () => {
    const backends = createProcessSetCpu();
    const before = backends.record([['101 t0', 100_000]]);
    const after = backends.record([
      ['101 t0', 100_000],
      ['101 t9', 30_000],
    ]);
    expect(after - before).toBe(30_000);
  });

  it('ignores the 0 of a backend that exited between the listing and the read', () => {
    const backends = createProcessSetCpu();
    const before = backends.record([['101 t0', 100_000]]);
    expect(backends.record([['101 t0', 0]])).toBe(before);
  });

  it('is NaN when a reading is (no /proc)', () => {
    expect(createProcessSetCpu().record([['101 t0', Number.NaN]])).toBeNaN();
  });
});
