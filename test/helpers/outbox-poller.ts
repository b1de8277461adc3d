/**
 * A POLL-mode outbox on a fresh test database: the `event_outbox` table as the server's DDL makes
 * it, a poller scoped to app `shop` / env `prod` routing into an in-memory log, both stopped when
 * the test finishes. `appended` holds the routed events, in order.
 */
import { onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPoller, type OutboxPoller, type OutboxPollerOptions } from '../../src/pipeline/outbox/outbox-poller.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createTestDatabase, openTestPool } from './services.ts';

const logger = createLogger({ level: 'silent' });

export interface PollerFixture {
  readonly pool: ReturnType<typeof openTestPool>;
  readonly poller: OutboxPoller;
  readonly appended: RealtimeEvent[];
}

export async function startOutboxPoller(outboxId: string, options: Partial<Omit<OutboxPollerOptions, 'pool' | 'router' | 'outboxId'>> = {}): Promise<PollerFixture> {
  const db = await createTestDatabase();
  const pool = openTestPool(db.url);
  await pool.query(outboxTableDdl(outboxTable('event_outbox')));
  const appended: RealtimeEvent[] = [];
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: (_stream, event) => appended.push(event) });
  onTestFinished(() => log.close());
  const poller = createOutboxPoller({ pool, outboxId, scope: { app: 'shop', env: 'prod' }, router: createEventRouter({ log, logger }), logger, ...options });
  onTestFinished(() => poller.stop());
  return { pool, poller, appended };
}
