/**
 * The look for late lane heads after an insert (`headsAmong`) locks one row per lane it looks at —
 * the lane's head, whose finish alone can make a new delivery the head — not every pending
 * delivery before the new ones: its work does not grow with the lane's depth, nor with how many of
 * a statement's deliveries share a lane.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { headsAmong, insertDeliveries } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';

let fixture: DeliveryFixture;
let db: Database;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  db = fixture.db;
});

afterAll(async () => {
  await fixture?.dispose();
});

/** Runs the look in a transaction of its own and counts the rows that transaction holds locked. */
async function rowsLockedLookingAt(ids: readonly string[]): Promise<{ locked: number; heads: string[] }> {
  return db.transaction(async (tx) => {
    const heads = await headsAmong(tx, ids);
    const { rows } = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE xmax = pg_current_xact_id()::xid`);
    return { locked: rows[0]!.n, heads: heads.map((head) => head.id) };
  });
}

describe('the look for late lane heads', () => {
  it('locks the head of a deep lane only, for one new delivery', async () => {
    for (let batch = 0; batch < 5; batch += 1) await insertDeliveries(db, Array.from({ length: 1000 }, () => fixture.delivery('deep')));
    const { inserted } = await insertDeliveries(db, [fixture.delivery('deep')]);
    expect(await rowsLockedLookingAt(inserted)).toEqual({ locked: 1, heads: [] });
  });

  it('locks one head per lane for a statement of many deliveries of one entity', async () => {
    await insertDeliveries(db, Array.from({ length: 1000 }, () => fixture.delivery('hot')));
    const hot = await insertDeliveries(db, Array.from({ length: 500 }, () => fixture.delivery('hot')));
    const cold = await insertDeliveries(db, [fixture.delivery('cold'), fixture.delivery('cold')]);
    const { locked, heads } = await rowsLockedLookingAt([...hot.inserted, ...cold.inserted.slice(1)]);
    expect({ locked, heads }).toEqual({ locked: 2, heads: [] });
  });
});
