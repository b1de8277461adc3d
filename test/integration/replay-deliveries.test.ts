/**
 * What a replay takes from an endpoint's own deliveries, against a real Postgres: with `onlyFailed`
 * the dead letters of events that have not been delivered since, counted against the replay's room
 * only when they are replayed — an event redelivered and delivered since is neither — and each
 * event's oldest delivery in the order of the events' times.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttemptOutcome } from '../../src/pipeline/webhooks/attempt-outcome.ts';
import { claimDeliveries, insertDeliveries, recordAttempts, type NewDelivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { deliveriesToReplay } from '../../src/pipeline/webhooks/replay-deliveries.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';

const LEASE_MS = 30_000;
const HOUR_MS = 3_600_000;

let fixture: DeliveryFixture;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
});

afterAll(async () => {
  await fixture?.dispose();
});

/** Stores `deliveries`, attempts each once and finishes it (`failed`: dead); resolves with their ids. */
async function finish(deliveries: readonly NewDelivery[], outcome: AttemptOutcome): Promise<string[]> {
  const { db } = fixture;
  const claimed = await claimDeliveries(db, (await insertDeliveries(db, deliveries)).inserted, LEASE_MS);
  await recordAttempts(
    db,
    claimed.map((delivery) => ({ delivery, outcome, status: outcome === 'delivered' ? 204 : 500, durationMs: 1, error: null, responseExcerpt: null, nextAttemptAt: null })),
  );
  return claimed.map((delivery) => delivery.id);
}

describe('the deliveries a replay takes', () => {
  it('leaves out, and does not count, dead letters whose events were delivered since', async () => {
    const endpointId = await fixture.endpoint('replayed');
    const range = { since: new Date(Date.now() - HOUR_MS), until: new Date(Date.now() + HOUR_MS), onlyFailed: true };
    const originals = ['a', 'b', 'c'].map((lane) => ({ ...fixture.delivery(`replay-${lane}`), endpointId }));
    await finish(originals, 'failed');
    // Two of the three events redelivered since, and delivered.
    await finish(
      originals.slice(0, 2).map((delivery) => ({ ...delivery, trigger: 'manual' as const })),
      'delivered',
    );

    // Room for one event: only the third is still failed, so it fits.
    const replayed = await deliveriesToReplay(fixture.db, endpointId, range, new Set(), 1);
    expect(replayed?.map((delivery) => delivery.eventId)).toEqual([originals[2]!.eventId]);
    // Not room for it: refused.
    expect(await deliveriesToReplay(fixture.db, endpointId, range, new Set(), 0)).toBeUndefined();
    // Every event, failed or not, without onlyFailed: three.
    const all = await deliveriesToReplay(fixture.db, endpointId, { ...range, onlyFailed: false }, new Set(), 3);
    expect(new Set(all?.map((delivery) => delivery.eventId))).toEqual(new Set(originals.map((delivery) => delivery.eventId)));
  });

  it('pages through more dead letters than one statement reads, counting only the events not mended since', async () => {
    const endpointId = await fixture.endpoint('replayed, many');
    const range = { since: new Date(Date.now() - HOUR_MS), until: new Date(Date.now() + HOUR_MS), onlyFailed: true };
    // 1,200 failed events (more than two pages of the listing), all but two delivered since.
    const originals = Array.from({ length: 1_200 }, (_, n) => ({ ...fixture.delivery(`many-${n}`), endpointId }));
    await finish(originals, 'failed');
    const failedStill = [originals[0]!, originals[700]!];
    await finish(
      originals.filter((delivery) => !failedStill.includes(delivery)).map((delivery) => ({ ...delivery, trigger: 'manual' as const })),
      'delivered',
    );
    const replayed = await deliveriesToReplay(fixture.db, endpointId, range, new Set(), 2);
    expect(replayed?.map((delivery) => delivery.eventId)).toEqual(failedStill.map((delivery) => delivery.eventId));
    expect(await deliveriesToReplay(fixture.db, endpointId, range, new Set(), 1)).toBeUndefined();
  });

  it('lists each event’s oldest delivery in its events’ order, whatever order the deliveries were made in', async () => {
    const endpointId = await fixture.endpoint('replayed in event order');
    const now = Date.now();
    const range = { since: new Date(now - HOUR_MS), until: new Date(now + HOUR_MS), onlyFailed: false };
    // The newer event reached the endpoint first (routing); the older one only later, by a replay's copy.
    const newer = { ...fixture.delivery('|order-1'), endpointId, eventTime: new Date(now - 10 * 60_000) };
    const older = { ...fixture.delivery('|order-1'), endpointId, eventTime: new Date(now - 30 * 60_000), trigger: 'replay' as const };
    // Two of the same millisecond go in the order they were made.
    const [sameA, sameB] = ['a', 'b'].map((lane) => ({ ...fixture.delivery(`|same-${lane}`), endpointId, eventTime: new Date(now - 20 * 60_000) }));
    const { inserted } = await insertDeliveries(fixture.db, [newer, older, sameA!, sameB!]);
    expect(inserted).toHaveLength(4);
    await fixture.db.query(`UPDATE webhook_deliveries SET state = 'delivered', finished_at = now() WHERE endpoint_id = $1`, [endpointId]);

    const replayed = await deliveriesToReplay(fixture.db, endpointId, range, new Set(), 4);
    expect(replayed?.map((copy) => copy.eventId)).toEqual([older.eventId, sameA!.eventId, sameB!.eventId, newer.eventId]);
  });
});
