/**
 * The delivery store's lane rules against a real Postgres: only a lane's head is claimed, a finished
 * delivery names the next in its lane, and a delivery inserted while its predecessor finishes —
 * which neither statement can see — is found as a head once the insert is committed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { claimDeliveries, claimDue, headsAmong, insertDeliveries, recordAttempts, storeDeliveries, type NewDelivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/services.ts';

const logger = createLogger({ level: 'silent' });
const LEASE_MS = 30_000;

let database: TestDatabase;
let db: Database;
let endpointId: string;
let nextEvent = 0;

function delivery(lane: string): NewDelivery {
  nextEvent += 1;
  return { endpointId, eventId: `ev-${nextEvent}`, eventType: 'test.event', topic: 'orders', lane, body: '{}', trigger: 'initial', eventTime: new Date() };
}

const delivered = { outcome: 'delivered' as const, status: 204, durationMs: 3, error: null, responseExcerpt: null, nextAttemptAt: null };

beforeAll(async () => {
  database = await createTestDatabase({ autoDispose: false });
  db = createPostgresDatabase({ url: database.url, logger });
  await migrate(db, { logger });
  const endpoint = await insertEndpoint(db, {
    app: 'app',
    env: 'env',
    tenant: null,
    url: 'https://receiver.example/hook',
    description: '',
    events: ['*'],
    rateLimitPerSecond: null,
    maxConcurrency: 10,
    secret: newWebhookSecret(),
  });
  endpointId = endpoint.id;
});

afterAll(async () => {
  await db?.close();
  await database?.dispose();
});

describe('webhook delivery store', () => {
  it('claims lane heads only, and a finished delivery names its lane’s next', async () => {
    const { inserted, heads } = await storeDeliveries(db, [delivery('lane-a'), delivery('lane-a'), delivery('lane-b')]);
    expect(heads).toEqual([inserted[0], inserted[2]]);

    // The second of lane-a is not claimable while the first is pending.
    expect(await claimDeliveries(db, [inserted[1]!], LEASE_MS)).toEqual([]);
    const claimed = await claimDeliveries(db, [inserted[0]!, inserted[2]!], LEASE_MS);
    expect(claimed.map((each) => each.id)).toEqual([inserted[0], inserted[2]]);
    // Leased: neither is claimed again, by id or by a look at the table.
    expect(await claimDeliveries(db, [inserted[0]!], LEASE_MS)).toEqual([]);
    expect((await claimDue(db, 10, LEASE_MS, [])).map((each) => each.id)).not.toContain(inserted[0]);

    const results = await recordAttempts(
      db,
      claimed.map((each) => ({ ...delivered, delivery: each })),
    );
    expect(results).toEqual([{ nextInLane: inserted[1] }, { nextInLane: undefined }]);
    expect((await claimDeliveries(db, [inserted[1]!], LEASE_MS)).map((each) => each.id)).toEqual([inserted[1]]);
  });

  it('keeps a pending retry at the head of its lane, and records every attempt in the batch', async () => {
    const { inserted } = await storeDeliveries(db, [delivery('lane-c'), delivery('lane-c')]);
    const [first] = await claimDeliveries(db, [inserted[0]!], LEASE_MS);
    const retryAt = new Date(Date.now() + 60_000);
    const [result] = await recordAttempts(db, [{ ...delivered, delivery: first!, outcome: 'failed', status: 500, nextAttemptAt: retryAt }]);
    expect(result).toEqual({ nextInLane: undefined });
    expect(await headsAmong(db, inserted)).toEqual([inserted[0]]);
    const { rows } = await db.query<{ attempts: number; state: string }>(`SELECT attempts, state FROM webhook_deliveries WHERE id = $1::bigint`, [inserted[0]]);
    expect(rows[0]).toEqual({ attempts: 1, state: 'pending' });
  });

  it('finds a delivery inserted while its predecessor finished as a head once the insert committed', async () => {
    const { inserted: [firstId] } = await storeDeliveries(db, [delivery('lane-d')]);
    const [first] = await claimDeliveries(db, [firstId!], LEASE_MS);

    // The insert's transaction sees the first pending: the new delivery is not a head.
    let secondId: string | undefined;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let insertedInside!: () => void;
    const insertDone = new Promise<void>((resolve) => (insertedInside = resolve));
    const transaction = db.transaction(async (tx) => {
      const { inserted, heads } = await insertDeliveries(tx, [delivery('lane-d')]);
      secondId = inserted[0];
      expect(heads).toEqual([]);
      insertedInside();
      await held;
    });
    await insertDone;
    // The first finishes meanwhile: the uncommitted second is invisible to it.
    const [finished] = await recordAttempts(db, [{ ...delivered, delivery: first! }]);
    expect(finished).toEqual({ nextInLane: undefined });
    release();
    await transaction;

    // Nobody named it; looking again after the commit does.
    expect(await headsAmong(db, [secondId!])).toEqual([secondId]);
  });
});
