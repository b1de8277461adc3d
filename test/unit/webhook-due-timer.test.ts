/**
 * The embedded loop's timer for retries it knows of (due-timer.ts), on a fake clock: the loop's
 * wait ends at the earliest noted due time (within its periodic look's `idleMs`), never before it,
 * and the look that due time calls for is asked for once.
 */
import { describe, expect, it } from 'vitest';
import { createDueTimer } from '../../src/pipeline/webhooks/due-timer.ts';

const IDLE_MS = 1_000;

describe('the embedded loop’s due timer', () => {
  it('ends the wait at the earliest noted due time, not before, and asks for one look then', () => {
    let clock = 10_000;
    const timer = createDueTimer(() => clock);
    expect(timer.waitMs(IDLE_MS)).toBe(IDLE_MS);
    expect(timer.takeDue()).toBe(false);

    timer.note(10_600);
    timer.note(10_250);
    timer.note(10_900);
    expect(timer.next()).toBe(10_250);
    expect(timer.waitMs(IDLE_MS)).toBe(250);
    // Past the periodic look's interval: that look comes first.
    expect(timer.waitMs(100)).toBe(100);

    clock = 10_249;
    expect(timer.takeDue()).toBe(false);
    expect(timer.waitMs(IDLE_MS)).toBe(1);
    clock = 10_250;
    expect(timer.takeDue()).toBe(true);
    expect(timer.takeDue()).toBe(false);
    // Taken by that look; the later ones stay noted: the wait now ends at the next.
    expect(timer.next()).toBe(10_600);
    expect(timer.waitMs(IDLE_MS)).toBe(350);
    timer.note(10_400);
    expect(timer.waitMs(IDLE_MS)).toBe(150);
    clock = 10_950;
    expect(timer.takeDue()).toBe(true);
    expect(timer.next()).toBeUndefined();
    expect(timer.waitMs(IDLE_MS)).toBe(IDLE_MS);
  });

  it('does not cut the wait to nothing for a due time that came while the loop had no room to look', () => {
    let clock = 0;
    const timer = createDueTimer(() => clock);
    timer.note(500);
    clock = 800;
    expect(timer.waitMs(IDLE_MS)).toBe(IDLE_MS);
    expect(timer.takeDue()).toBe(true);
  });
});
