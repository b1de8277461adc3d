/**
 * When the embedded loop looks at the table next for deliveries coming due: its periodic look
 * (`idleMs`) found a retry up to that long after its `nextAttemptAt` (0.4–1.05 s late, where BullMQ's
 * delayed jobs come on time). The loop notes the due time of every delivery it postponed or whose
 * retry it recorded (the earliest 1,000): its wait ends at the earliest (its one timer — the wait's — armed
 * for the earlier of that and `idleMs`), and that look reads the table however recently the last
 * one did. Deliveries another process stored or postponed are found by the periodic look, as before.
 */

export interface DueTimer {
  /** A delivery this loop knows of comes due at `at` (ms since the epoch, as `clock` tells). */
  note(at: number): void;
  /** How long the loop may wait, in ms: until the earliest noted due time still to come, `idleMs` at most. */
  waitMs(idleMs: number): number;
  /** A noted due time has come: true once for it (the look it calls for forgets every one that has come; later ones stay noted). */
  takeDue(): boolean;
  /** The earliest noted due time, if any. */
  next(): number | undefined;
}

/** Due times kept at most: the earliest ones (a later one dropped is found by the periodic look). */
const MAX_NOTED = 1000;

/** `clock`: ms since the epoch, the clock `nextAttemptAt` is written by. @default Date.now */
export function createDueTimer(clock: () => number = Date.now): DueTimer {
  /** The due times noted and not yet taken, earliest first, at most MAX_NOTED. */
  const noted: number[] = [];
  return {
    note(at) {
      // Binary search for the first later time: equal times are kept once.
      let low = 0;
      let high = noted.length;
      while (low < high) {
        const middle = (low + high) >>> 1;
        if (noted[middle]! <= at) low = middle + 1;
        else high = middle;
      }
      if (low > 0 && noted[low - 1] === at) return;
      noted.splice(low, 0, at);
      if (noted.length > MAX_NOTED) noted.pop();
    },
    waitMs(idleMs) {
      const earliest = noted[0];
      const left = earliest === undefined ? idleMs : earliest - clock();
      // Come already (the loop had no room to look for it): the next claim looks — a freed slot
      // wakes the loop — so the wait is not cut to nothing over and over meanwhile.
      return left <= 0 ? idleMs : Math.min(idleMs, left);
    },
    takeDue() {
      const now = clock();
      let come = 0;
      while (come < noted.length && noted[come]! <= now) come += 1;
      if (come === 0) return false;
      noted.splice(0, come);
      return true;
    },
    next: () => noted[0],
  };
}
