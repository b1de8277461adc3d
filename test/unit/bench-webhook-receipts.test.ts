import { describe, expect, it } from 'vitest';
import { deliveredBody } from '../../bench/lib/webhook-payload.ts';
import { createReceiptBook } from '../../bench/lib/webhook-receipts.ts';

/** The body a sender POSTs for event `seq` (sent at 0 on the book's clock). */
const body = (seq: number) => Buffer.from(deliveredBody(seq, 0));

/** A book on a clock of its own, and the steps' completions it signalled. */
function book() {
  let clock = 0;
  const completions: number[] = [];
  const receipts = createReceiptBook({ now: () => (clock += 1), cpuMicros: () => 0, onComplete: () => completions.push(clock) });
  return { receipts, completions };
}

describe('bench webhook receipts', () => {
  it('counts a retry that lands in the next step as a late duplicate of its own step, by sender', () => {
    const { receipts } = book();
    receipts.expect({ firstSeq: 1, count: 2, receivers: 1, sender: 'tributary-embedded' });
    receipts.book(0, body(1));
    receipts.book(0, body(2));
    expect(receipts.report()).toMatchObject({ received: 2, duplicates: 0, complete: true });

    // The other mode's step; meanwhile the first mode retries event 2.
    receipts.expect({ firstSeq: 3, count: 1, receivers: 1, sender: 'tributary-bullmq' });
    receipts.book(0, body(2));
    receipts.book(0, body(3));
    expect(receipts.report()).toMatchObject({ received: 1, duplicates: 0, stray: 0, complete: true });
    expect(receipts.late()).toEqual({
      steps: [{ sender: 'tributary-embedded', firstSeq: 1, count: 2, complete: true, duplicates: 1, misrouted: 0 }],
      stray: 0,
    });
  });

  it('counts a copy that arrives after the step was collected, while no other step started, as late', () => {
    const { receipts } = book();
    receipts.expect({ firstSeq: 10, count: 3, receivers: 1, sender: 'tributary-bullmq' });
    for (const seq of [10, 11, 12]) receipts.book(0, body(seq));
    expect(receipts.report()).toMatchObject({ received: 3, duplicates: 0 });
    receipts.book(0, body(11));
    expect(receipts.late().steps).toEqual([{ sender: 'tributary-bullmq', firstSeq: 10, count: 3, complete: true, duplicates: 1, misrouted: 0 }]);
  });

  it('books an earlier step’s event arriving late for the first time, and counts its next copy', () => {
    const { receipts } = book();
    receipts.expect({ firstSeq: 1, count: 2, receivers: 2, sender: 'tributary-embedded' });
    for (const receiver of [0, 1]) receipts.book(receiver, body(1));
    receipts.book(0, body(2));
    // Cut short: receiver 1 never got event 2 in time.
    expect(receipts.report()).toMatchObject({ received: 3, missing: 1, complete: false });

    receipts.expect({ firstSeq: 3, count: 1, receivers: 2, sender: 'tributary-bullmq' });
    receipts.book(1, body(2)); // the first copy, late: neither this step's nor a duplicate
    receipts.book(1, body(2)); // and its second
    for (const receiver of [0, 1]) receipts.book(receiver, body(3));
    expect(receipts.report()).toMatchObject({ received: 2, duplicates: 0, stray: 0, complete: true });
    expect(receipts.late().steps).toEqual([{ sender: 'tributary-embedded', firstSeq: 1, count: 2, complete: false, duplicates: 1, misrouted: 0 }]);
  });

  it('counts a spread step’s event reaching the wrong receiver after its step as late and misrouted', () => {
    const { receipts } = book();
    receipts.expect({ firstSeq: 10, count: 2, receivers: 2, spread: true, sender: 'tributary-embedded' });
    receipts.book(0, body(10));
    receipts.book(1, body(11));
    expect(receipts.report()).toMatchObject({ received: 2, misrouted: 0, complete: true });
    receipts.expect({ firstSeq: 12, count: 2, receivers: 2, spread: true, sender: 'tributary-bullmq' });
    receipts.book(1, body(10)); // event 10 is receiver 0's
    expect(receipts.late().steps).toEqual([{ sender: 'tributary-embedded', firstSeq: 10, count: 2, complete: true, duplicates: 0, misrouted: 1 }]);
  });

  it('still counts a second copy within the step, and calls what belongs to no step stray', () => {
    const { receipts, completions } = book();
    receipts.expect({ firstSeq: 1, count: 2, receivers: 1, sender: 'plain-post-loop' });
    receipts.book(0, body(1));
    receipts.book(0, body(1));
    receipts.book(0, body(99)); // no step has it
    receipts.book(0, Buffer.from('{"not":"an event"}'));
    receipts.book(3, body(2)); // a receiver the step does not expect
    expect(completions).toHaveLength(0);
    receipts.book(0, body(2));
    expect(completions).toHaveLength(1);
    expect(receipts.report()).toMatchObject({ received: 2, duplicates: 1, stray: 3, complete: true });
    expect(receipts.late()).toEqual({ steps: [], stray: 3 });
  });

  it('refuses a step whose numbers overlap an earlier one’s: they are the run’s, each used once', () => {
    const { receipts } = book();
    receipts.expect({ firstSeq: 1, count: 10, receivers: 1 });
    expect(() => receipts.expect({ firstSeq: 5, count: 10, receivers: 1 })).toThrow(/overlaps/);
  });
});
