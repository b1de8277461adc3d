/**
 * Migration 0040: a lane left stuck before it — its first pending delivery waiting at 'infinity'
 * (stored behind a head with a larger id), so that the reconciler's look for due heads, the safety
 * net for a scheduling lost, found nothing in it — is made due; a follower that waits behind its
 * lane's head keeps waiting.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { dueHeads } from '../../src/pipeline/webhooks/due-heads.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createTestDatabase } from '../helpers/index.ts';
import { migrateBefore } from '../helpers/migrate-before.ts';

const logger = createLogger({ level: 'silent' });
const MENDING = '0040_webhook_lane_inserts_in_turn.sql';

describe('migration 0040 (lane inserts in turn)', () => {
  it('makes due the first delivery of a stuck lane, and leaves a waiting follower waiting', async () => {
    const database = await createTestDatabase();
    const db = createPostgresDatabase({ url: database.url, logger });
    onTestFinished(async () => {
      await db.close();
      await database.dispose();
    });
    // The schema as it was before the migration, with a stuck lane and a sound one of that time —
    // stored as its follower trigger stored them: 1 found 2 pending and waits, with a smaller id.
    await migrateBefore(db, MENDING);
    const { id: endpointId } = await insertEndpoint(db, {
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
    const { rows } = await db.query<{ id: string; event_id: string }>(
      `INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, topic, lane, body, trigger, event_time, next_attempt_at) VALUES
         (2, $1, 'stuck-head', 't', 'orders', 'order:stuck', '{}', 'initial', now(), now()),
         (1, $1, 'stuck-first', 't', 'orders', 'order:stuck', '{}', 'initial', now(), now()),
         (3, $1, 'sound-head', 't', 'orders', 'order:sound', '{}', 'initial', now(), now()),
         (4, $1, 'sound-next', 't', 'orders', 'order:sound', '{}', 'initial', now(), 'infinity')
       RETURNING id::text, event_id`,
      [endpointId],
    );
    expect(rows).toHaveLength(4);
    const dueHeadIds = async () => (await dueHeads(db, 0, 100)).heads.map((head) => head.id).sort();
    // Stuck: the lane's first delivery is not due, the due one is not its lane's first.
    expect(await dueHeadIds()).toEqual(['3']);

    expect((await migrate(db, { logger })).applied).toContain(MENDING);
    const waiting = await db.query<{ id: string }>(`SELECT id::text FROM webhook_deliveries WHERE next_attempt_at = 'infinity' ORDER BY webhook_deliveries.id`);
    expect(waiting.rows).toEqual([{ id: '4' }]);
    expect(await dueHeadIds()).toEqual(['1', '3']);
  });
});
