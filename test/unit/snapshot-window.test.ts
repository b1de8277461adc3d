import { describe, expect, it } from 'vitest';
import { sawCommitted, snapshotWindow } from '../../src/pipeline/cdc/wal/snapshot-window.ts';

describe('a snapshot in the WAL’s terms', () => {
  it('saw transactions before xmax that were not in progress, and none from xmax on', () => {
    const window = snapshotWindow('100:110:102,105', '0/16B3748');
    expect([99, 100, 101, 103, 109].map((xid) => sawCommitted(window, xid))).toEqual([true, true, true, true, true]);
    expect([102, 105, 110, 111, 4_000_000].map((xid) => sawCommitted(window, xid))).toEqual([false, false, false, false, false]);
    expect(window.endLsn).toBe(0x16b3748n);
  });

  it('compares 32-bit xids modulo 2^32 after the 64-bit epoch wraps', () => {
    // xmax just past a wraparound: epoch 1, low 32 bits 5.
    const window = snapshotWindow(`${2 ** 32 - 10}:${2 ** 32 + 5}:${2 ** 32 + 1}`, '1/0');
    expect(sawCommitted(window, 2 ** 32 - 3)).toBe(true); // before the wrap
    expect(sawCommitted(window, 3)).toBe(true); // after it, before xmax
    expect(sawCommitted(window, 1)).toBe(false); // in progress
    expect(sawCommitted(window, 5)).toBe(false); // xmax
    expect(sawCommitted(window, 6)).toBe(false); // later
  });
});
