/**
 * When the embedded loop looks at the table next for deliveries coming due: its periodic look
 * (`idleMs`) found a retry up to that long after its `nextAttemptAt` (0.4–1.05 s late, where BullMQ's
 * delayed jobs come on time). The loop notes the due time of every delivery it postponed or whose
 * retry it recorded, and keeps the earliest: its wait ends then (its one timer — the wait's — armed
 * for the earlier of that and `idleMs`), and that look reads the table however recently the last
 * one did. Deliveries another process stored or postponed are found by the periodic look, as before.
 */

export interface DueTimer {
  /** A delivery this loop knows of comes due at `at` (ms since the epoch, as `clock` tells). */
  note(at: number): void;
  /** How long the loop may wait, in ms: until the earliest noted due time still to come, `idleMs` at most. */
  waitMs(idleMs: number): number;
  /** A noted due time has come: true once for it (the look it calls for forgets it; later ones stay noted). */
  takeDue(): boolean;
  /** The earliest noted due time, if any. */
  next(): number | undefined;
}

/** `clock`: ms since the epoch, the clock `nextAttemptAt` is written by. @default Date.now */
export function createDueTimer(clock: () => number = Date.now): DueTimer {
  /** The earliest due time noted and not yet come (undefined: none). */
  let earliest: number | undefined;
  return {
    note(at) {
      if (earliest === undefined || at < earliest) earliest = at;
    },
    waitMs(idleMs) {
      const left = earliest === undefined ? idleMs : earliest - clock();
      // Come already (the loop had no room to look for it): the next claim looks — a freed slot
      // wakes the loop — so the wait is not cut to nothing over and over meanwhile.
      return left <= 0 ? idleMs : Math.min(idleMs, left);
    },
    takeDue() {
      if (earliest === undefined || clock() < earliest) return false;
      earliest = undefined;
      return true;
    },
    next: () => earliest,
  };
}
