import { describe, expect, it } from 'vitest';
import { createSlowEndpoints } from '../../src/pipeline/webhooks/slow-endpoints.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** Begins an attempt and resolves once it moved to the slow share. */
function movedWhenSlow(slow: ReturnType<typeof createSlowEndpoints>, endpointId: string) {
  let watch: ReturnType<typeof slow.begin>;
  const moved = new Promise<void>((resolve) => (watch = slow.begin(endpointId, resolve)));
  return { watch: watch!, moved };
}

describe('slow endpoints', () => {
  it('moves an attempt that waits too long to the share, marks its endpoint slow, and starts the endpoint’s next ones there', async () => {
    const slow = createSlowEndpoints({ slowAfterMs: 5, capacity: 2 });
    const first = movedWhenSlow(slow, 'hanging');
    expect(slow.isSlow('hanging')).toBe(false);
    await first.moved;
    expect(slow.isSlow('hanging')).toBe(true);
    // A slow endpoint's attempt is in the share from the start.
    let movedAtOnce = false;
    const second = slow.begin('hanging', () => (movedAtOnce = true));
    expect(movedAtOnce).toBe(true);
    // The share (2) is full: the next waits.
    expect(slow.begin('hanging', () => undefined)).toBeUndefined();
    // One ends unanswered: room again, the endpoint still slow.
    second!.end(undefined);
    expect(slow.isSlow('hanging')).toBe(true);
    const third = slow.begin('hanging', () => undefined);
    expect(third).toBeDefined();
    // An answer within slowAfterMs ends the endpoint's slowness.
    third!.end(1);
    first.watch.end(undefined);
    expect(slow.isSlow('hanging')).toBe(false);
  });

  it('keeps an attempt answered in time out of the share, and its endpoint not slow', async () => {
    const slow = createSlowEndpoints({ slowAfterMs: 60_000, capacity: 1 });
    let moved = false;
    const watch = slow.begin('quick', () => (moved = true));
    watch!.end(3);
    expect(moved).toBe(false);
    expect(slow.isSlow('quick')).toBe(false);
    // A slow endpoint that cannot move (the share full) is still marked slow.
    const full = createSlowEndpoints({ slowAfterMs: 1, capacity: 1 });
    const occupant = movedWhenSlow(full, 'a');
    await occupant.moved;
    const stuck = full.begin('b', () => undefined);
    await waitFor(() => full.isSlow('b'), { intervalMs: 1, message: 'b marked slow' });
    expect(full.begin('b', () => undefined)).toBeUndefined();
    stuck!.end(undefined);
    occupant.watch.end(undefined);
  });

  it('holds a slow endpoint to what the share leaves it, one attempt at least, while others keep their maxConcurrency', async () => {
    const slow = createSlowEndpoints({ slowAfterMs: 1, capacity: 3 });
    expect(slow.limit('fine', 10)).toBe(10);
    const first = movedWhenSlow(slow, 'a');
    await first.moved;
    // In the share: 1 of 3; it may have its one and the two free places.
    expect(slow.limit('a', 10)).toBe(3);
    expect(slow.limit('a', 2)).toBe(2);
    const second = slow.begin('a', () => undefined);
    const third = slow.begin('a', () => undefined);
    // The share full: what it has there.
    expect(slow.limit('a', 10)).toBe(3);
    // b's attempt turns slow with the share full: it stays where it is, and b is held to one.
    const other = slow.begin('b', () => undefined);
    await waitFor(() => slow.isSlow('b'), { intervalMs: 1, message: 'b marked slow' });
    expect(slow.limit('b', 10)).toBe(1);
    second!.end(undefined);
    // One place free: b may have its (waiting) one plus it; a its two left plus it.
    expect(slow.limit('b', 10)).toBe(1);
    expect(slow.limit('a', 10)).toBe(3);
    expect(slow.limit('fine', undefined)).toBeUndefined();
    for (const watch of [first.watch, third, other]) watch!.end(undefined);
  });
});
