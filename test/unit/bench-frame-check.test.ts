import { describe, expect, it } from 'vitest';
import { createDeliveryLedger } from '../../bench/lib/fanout-ledger.ts';
import { payloadJson } from '../../bench/lib/fanout-payload.ts';
import { frameCheck } from '../../bench/lib/frame-checks.ts';

const extra = { closes: {}, clientCpuMicros: 0, timedOut: false };

/** The frame every fan-out peer sends for event `seq` (the payload re-serialized, as a GraphQL server does). */
const goodFrame = (seq: number, sentAt = 1234.5) => {
  const payload = JSON.stringify(JSON.parse(payloadJson(seq, sentAt)) as unknown);
  return Buffer.from(`{"id":"0","type":"next","payload":{"data":{"events":{"id":"evt_AbC-12_xyzAbC-12_x","payload":${payload},"cursor":"MTIzNDU2OjE"}}}}`);
};

describe('bench frame check', () => {
  it('books a frame that is the published event, byte for byte but for id, cursor and sentAt', async () => {
    const ledger = createDeliveryLedger({ check: frameCheck('fanout-event') });
    const account = ledger.open();
    ledger.expect(1, 1);
    ledger.record(account, goodFrame(1));
    ledger.record(account, goodFrame(2, 98765.432));
    await ledger.collect(2, 'every', 1000);
    expect(ledger.report(extra)).toMatchObject({ received: 2, complete: 1, mismatched: 0, checked: 2 });
  });

  it('does not book a frame of another subscription that merely carries "seq" and "sentAt", and says so', async () => {
    const ledger = createDeliveryLedger({ check: frameCheck('fanout-event') });
    const account = ledger.open();
    // Only one frame in 101 is matched whole: the prefix is what catches this one.
    ledger.expect(7, 101);
    ledger.record(account, goodFrame(6)); // an earlier event, whole: takes the step's first full check
    ledger.record(account, Buffer.from('{"id":"999","type":"next","payload":{"data":{"wrong":{"seq":7,"sentAt":1.5}}}}'));
    await ledger.collect(7, 'every', 10);
    const report = ledger.report(extra);
    expect(report).toMatchObject({ received: 0, missing: 1, complete: 0, mismatched: 1 });
    expect(report.firstMismatch).toContain('"id":"999"');
  });

  it('does not book a frame whose payload is not the one published (padding cut), when it is matched whole', async () => {
    const ledger = createDeliveryLedger({ check: frameCheck('fanout-event') });
    const account = ledger.open();
    ledger.expect(3, 1);
    const cut = goodFrame(3).toString('utf8').replace('xxxxxxxxxx"', '"');
    ledger.record(account, Buffer.from(cut));
    await ledger.collect(3, 'every', 10);
    const report = ledger.report(extra);
    expect(report).toMatchObject({ received: 0, mismatched: 1 });
    expect(report.firstMismatch).toContain('is not the published');
  });

  it('checks a document change frame: the seq it is booked under must be the one in its data', async () => {
    const ledger = createDeliveryLedger({ check: frameCheck('document-change') });
    const account = ledger.open();
    ledger.expect(5, 1);
    const frame = (seq: number, dataSeq: number) =>
      Buffer.from(`{"id":"0","type":"next","payload":{"data":{"document":{"operation":"UPDATED","revision":9,"data":{"seq":${dataSeq},"sentAt":12.25}}}}}`);
    ledger.record(account, frame(5, 5));
    ledger.record(account, Buffer.from(frame(6, 6).toString('utf8').replace('"UPDATED"', '"DELETED"')));
    await ledger.collect(6, 'every', 10);
    expect(ledger.report(extra)).toMatchObject({ received: 1, missing: 1, mismatched: 1 });
  });
});
