import { describe, expect, it } from 'vitest';
import { createDeliveryLedger } from '../../bench/lib/fanout-ledger.ts';

/** A `next` frame of the shape the fan-out client reads, carrying event `seq`. */
const frame = (seq: number) => Buffer.from(`{"id":"0","type":"next","payload":{"data":{"events":{"payload":{"seq":${seq},"sentAt":1.5}}}}}`);

const extra = { closes: {}, clientCpuMicros: 0, timedOut: false };

describe('bench fan-out ledger', () => {
  it('counts a second copy of an earlier step’s event, arriving in the next step, as a duplicate', async () => {
    const ledger = createDeliveryLedger();
    const account = ledger.open();
    ledger.expect(1);
    ledger.record(account, frame(1));
    ledger.record(account, frame(2));
    expect(await ledger.collect(2, 'every', 1000)).toBe(false);
    expect(ledger.report(extra)).toMatchObject({ received: 2, duplicates: 0, complete: 1 });

    ledger.expect(3);
    ledger.record(account, frame(2)); // the earlier step's event again
    ledger.record(account, frame(3));
    await ledger.collect(3, 'every', 1000);
    const report = ledger.report(extra);
    expect(report).toMatchObject({ received: 1, missing: 0, duplicates: 1, lateDuplicates: 1 });
    // Not a clean subscriber: the step must not read as "every event exactly once".
    expect(report.complete).toBe(0);
  });

  it('books an earlier step’s event arriving late for the first time, and counts its next copy as a duplicate', async () => {
    const ledger = createDeliveryLedger();
    const account = ledger.open();
    ledger.expect(1);
    ledger.record(account, frame(1));
    // Event 2 is still on its way when the step ends.
    expect(await ledger.collect(2, 'every', 10)).toBe(true);

    ledger.expect(3);
    ledger.record(account, frame(2)); // first copy, late: not this step's, not a duplicate
    ledger.record(account, frame(3));
    await ledger.collect(3, 'every', 1000);
    expect(ledger.report(extra)).toMatchObject({ received: 1, duplicates: 0, lateDuplicates: 0, complete: 1 });

    ledger.expect(4);
    ledger.record(account, frame(2)); // its second copy, two steps on
    ledger.record(account, frame(4));
    await ledger.collect(4, 'every', 1000);
    expect(ledger.report(extra)).toMatchObject({ received: 1, duplicates: 1, lateDuplicates: 1, complete: 0 });
  });

  it('still counts a second copy within the step once, as before', async () => {
    const ledger = createDeliveryLedger();
    const account = ledger.open();
    ledger.expect(10);
    ledger.record(account, frame(10));
    ledger.record(account, frame(10));
    ledger.record(account, frame(11));
    await ledger.collect(11, 'every', 1000);
    expect(ledger.report(extra)).toMatchObject({ received: 2, duplicates: 1, lateDuplicates: 0, complete: 0 });
  });

  it('counts an earlier step’s event of another topic as misrouted whenever it arrives', async () => {
    const ledger = createDeliveryLedger();
    const account = ledger.open(2, 0);
    ledger.expect(1);
    ledger.record(account, frame(2));
    await ledger.collect(2, 'every', 1000);
    ledger.expect(3);
    ledger.record(account, frame(1)); // topic 1's event, from before the step
    ledger.record(account, frame(4));
    await ledger.collect(4, 'every', 1000);
    expect(ledger.report(extra)).toMatchObject({ received: 1, misrouted: 1 });
  });
});
