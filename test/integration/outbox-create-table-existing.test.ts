/**
 * `setOutboxSource(createTable: true)` on an outbox that exists builds nothing on it: a plain
 * CREATE INDEX — even IF NOT EXISTS, even when the index exists — takes a SHARE lock on the table,
 * queued behind the application's open writers and blocking every INSERT queued behind it. Its
 * missing indexes are reported instead, as CREATE INDEX CONCURRENTLY statements to run.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { testOutboxAdmin } from '../helpers/outbox-source.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';

const SCOPE = { app: 'shop', env: 'prod', tenant: undefined };

interface LogLine {
  readonly msg: string;
  readonly statements?: string[];
}

async function setUp() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const appDb = await createTestDatabase();
  const app = openTestPool(appDb.url, { max: 4 });
  await app.query(outboxTableDdl(outboxTable('event_outbox')));
  const lines: LogLine[] = [];
  const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } });
  const outbox = testOutboxAdmin(fixture.db, { checkReplication: async () => {}, logger });
  const set = () => outbox.setSource(SCOPE, { databaseUrl: appDb.url, mode: 'POLL', createTable: true });
  return { appDb, app, lines, set };
}

describe('createTable: true on an existing outbox', () => {
  it('takes no lock that an open writer holds up: the source is set while the writer’s transaction is open', async () => {
    const { appDb, app, lines, set } = await setUp();
    // An application transaction that wrote to the outbox and is still open (ROW EXCLUSIVE held).
    const writer = new pg.Client({ connectionString: appDb.url });
    await writer.connect();
    onTestFinished(() => writer.end());
    await writer.query('BEGIN');
    await writer.query(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('orders', 'x', '{}')`);

    // Before, this waited for the writer's COMMIT (or failed on the pool's query timeout).
    await expect(set()).resolves.toMatchObject({ table: 'event_outbox', readMode: 'POLL' });
    await app.query(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('orders', 'y', '{}')`);
    await writer.query('COMMIT');
    const { rows } = await app.query<{ count: string }>('SELECT count(*) FROM event_outbox');
    expect(rows[0]!.count).toBe('2');
    // Every index there: nothing to report.
    expect(lines).toEqual([]);
  });

  it('reports the indexes it lacks as CREATE INDEX CONCURRENTLY statements that build them', async () => {
    const { app, lines, set } = await setUp();
    await app.query('DROP INDEX event_outbox_pending_idx; DROP INDEX event_outbox_dead_idx');

    await set();
    expect(lines).toHaveLength(1);
    expect(lines[0]!.statements).toEqual([
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS "event_outbox_pending_idx" ON "event_outbox" (id) WHERE processed_at IS NULL;',
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS "event_outbox_dead_idx" ON "event_outbox" (id) WHERE dead_reason IS NOT NULL;',
    ]);
    // Nothing was built meanwhile.
    const before = await app.query(`SELECT 1 FROM pg_indexes WHERE indexname IN ('event_outbox_pending_idx', 'event_outbox_dead_idx')`);
    expect(before.rowCount).toBe(0);

    // What the operator runs, then nothing more to report.
    for (const statement of lines[0]!.statements!) await app.query(statement);
    await set();
    expect(lines).toHaveLength(1);
  });
});
