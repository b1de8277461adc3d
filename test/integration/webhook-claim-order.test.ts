/**
 * The order leased deliveries come back in, against a real Postgres: an endpoint's deliveries are
 * taken in (next_attempt_at, id) order — what the embedded loop's ready queue is filled in, so that
 * an endpoint of maxConcurrency 1 receives them in stored order — whatever order the rows are laid
 * out in the table (an UPDATE … RETURNING returns them in the order it met them).
 */
import { describe, expect, it } from 'vitest';
import { claimDeliveries, claimDue, insertDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { sharedDeliveryFixture } from '../helpers/delivery-fixture.ts';

const shared = sharedDeliveryFixture();
const COUNT = 20;

/** COUNT entity-less deliveries (each its own lane), all due at one time, the older half's rows moved behind the newer half's in the heap. */
async function storedOutOfPlace(): Promise<string[]> {
  const { fixture, db } = shared;
  const endpointId = await fixture.endpoint('claim order');
  const deliveries = Array.from({ length: COUNT }, (_, index) => ({ ...fixture.delivery(`event:claim-${index}`), endpointId }));
  const { inserted } = await insertDeliveries(db, deliveries);
  // New row versions go at the heap's end: the first half now lies after the second.
  await db.query(`UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 minute' WHERE endpoint_id = $1`, [endpointId]);
  await db.query(`UPDATE webhook_deliveries SET body = body WHERE id = ANY($1::bigint[])`, [inserted.slice(0, COUNT / 2)]);
  return inserted;
}

describe('leasing deliveries', () => {
  it('returns the deliveries claimed by id in (due time, id) order', async () => {
    const inserted = await storedOutOfPlace();
    const claimed = await claimDeliveries(shared.db, [...inserted].reverse(), 60_000);
    expect(claimed.map((delivery) => delivery.id)).toEqual(inserted);
  });

  it('returns the due deliveries a look leases in (due time, id) order', async () => {
    const inserted = await storedOutOfPlace();
    // Every other endpoint's deliveries are out of the way: this look sees only these.
    await shared.db.query(`UPDATE webhook_deliveries SET state = 'delivered', finished_at = now() WHERE NOT (id = ANY($1::bigint[])) AND state = 'pending'`, [inserted]);
    const claimed = await claimDue(shared.db, COUNT, 60_000, []);
    expect(claimed.map((delivery) => delivery.id)).toEqual(inserted);
  });
});
