/**
 * Books, per client, which events it was handed and checks them against what it should get:
 * event `seq` belongs to topic `seq mod topics` and client i listens to topic `i mod topics`, so
 * client i must receive every such `seq` from the ledger's `firstSeq` on, once each, in order.
 * A jump forward books the skipped events as lost (they come off again if they arrive late, as
 * out of order); an event at or below one already received is a duplicate.
 */
import type { DeliveryReport } from './reconnect-protocol.ts';

/** Most skipped events remembered per client (beyond that they only count as lost). */
const MAX_SKIPPED = 10_000;

export interface SequenceLedger {
  /** Client `client` was handed event `seq`. Events before `firstSeq` are ignored. */
  book(client: number, seq: number): void;
  /** True once every client has received every event up to `lastSeq` (or skipped past it). */
  complete(lastSeq: number): boolean;
  /** Delivery so far, counting what is still missing up to `lastSeq` as lost. */
  report(lastSeq: number): DeliveryReport;
}

export function createSequenceLedger(clients: number, topics: number, firstSeq: number): SequenceLedger {
  /** Per client: the next sequence number it should receive. */
  const next = new Float64Array(clients);
  const skipped: Set<number>[] = [];
  let received = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let overflowLost = 0;
  for (let client = 0; client < clients; client += 1) {
    const topic = client % topics;
    next[client] = firstSeq + ((topic - (firstSeq % topics) + topics) % topics);
    skipped.push(new Set());
  }

  const countUpTo = (from: number, lastSeq: number) => (from > lastSeq ? 0 : Math.floor((lastSeq - from) / topics) + 1);

  return {
    book(client, seq) {
      const expected = next[client];
      const gaps = skipped[client];
      if (expected === undefined || gaps === undefined || seq < firstSeq) return;
      if (seq === expected) {
        received += 1;
        next[client] = expected + topics;
      } else if (seq > expected) {
        for (let missing = expected; missing < seq; missing += topics) {
          if (gaps.size < MAX_SKIPPED) gaps.add(missing);
          else overflowLost += 1;
        }
        received += 1;
        next[client] = seq + topics;
      } else if (gaps.delete(seq)) {
        received += 1;
        outOfOrder += 1;
      } else {
        duplicates += 1;
      }
    },
    complete(lastSeq) {
      for (let client = 0; client < clients; client += 1) if ((next[client] ?? 0) <= lastSeq) return false;
      return true;
    },
    report(lastSeq) {
      let expected = 0;
      let lost = overflowLost;
      let clientsWithLoss = 0;
      for (let client = 0; client < clients; client += 1) {
        const topic = client % topics;
        const first = firstSeq + ((topic - (firstSeq % topics) + topics) % topics);
        expected += countUpTo(first, lastSeq);
        const clientLost = (skipped[client]?.size ?? 0) + countUpTo(next[client] ?? 0, lastSeq);
        lost += clientLost;
        if (clientLost > 0) clientsWithLoss += 1;
      }
      return { clients, expected, received, lost, duplicates, outOfOrder, clientsWithLoss };
    },
  };
}
