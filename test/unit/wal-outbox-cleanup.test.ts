/** A WAL-mode outbox's clean-up queue: its bound, and a batch taken by a round against a trim meanwhile. */
import { describe, expect, it } from 'vitest';
import { createCleanUpQueue } from '../../src/pipeline/cdc/wal-outbox-cleanup.ts';

const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => String(from + index));

describe('the WAL outbox clean-up queue', () => {
  it('drops the oldest routed ids past its bound and says how many, keeping dead rows', () => {
    const queue = createCleanUpQueue(5);
    expect(queue.add(ids(1, 4), [{ id: '9', reason: 'tenant missing' }])).toBe(0);
    expect(queue.add(ids(5, 7), [])).toBe(2);
    expect(queue.take(10)).toEqual({ ids: ids(3, 7), dead: [{ id: '9', reason: 'tenant missing' }] });
    expect(queue.empty).toBe(true);
  });

  it('never drops a batch a round took, and puts a failed one back first in line', () => {
    const queue = createCleanUpQueue(5);
    queue.add(ids(1, 5), []);
    const batch = queue.take(3);
    expect(batch.ids).toEqual(ids(1, 3));
    // Routed while the round runs: the bound counts what is still queued.
    expect(queue.add(ids(6, 8), [])).toBe(0);
    queue.giveBack(batch);
    expect(queue.take(100).ids).toEqual(ids(1, 8));
  });
});
