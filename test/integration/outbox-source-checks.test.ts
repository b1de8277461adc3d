/**
 * `setOutboxSource` checks the table it is pointed at, on a real application database: a table
 * that is not an outbox (a business table, an outbox missing a column) is refused, even with
 * `createTable: true`, and so is an outbox the role cannot claim, mark and delete rows of (in WAL
 * mode too: its reader deletes routed rows with that role) — BAD_USER_INPUT on the field `table`,
 * saying what is missing, and nothing saved. Otherwise every poll or clean-up would fail, seen only
 * in `outboxStatus.lastError`.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { type SetOutboxSourceInput } from '../../src/pipeline/outbox/outbox-admin.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { testOutboxAdmin } from '../helpers/outbox-source.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';

const SCOPE = { app: 'app', env: 'env', tenant: undefined };

async function setUp() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const appDb = await createTestDatabase();
  const app = openTestPool(appDb.url);
  const outbox = testOutboxAdmin(fixture.db, { checkReplication: async () => {} });
  /** What `setSource` rejects with, or the saved source's table and mode. */
  const set = async (input: SetOutboxSourceInput) => {
    try {
      const saved = await outbox.setSource(SCOPE, input);
      return { saved: `${saved.table} ${saved.readMode}` };
    } catch (error) {
      return { refused: error };
    }
  };
  return { appDb, app, outbox, set };
}

describe('setOutboxSource checks the table', () => {
  it('refuses a table that is not an outbox, naming the columns it lacks, with or without createTable', async () => {
    const { appDb, app, outbox, set } = await setUp();
    await app.query('CREATE TABLE orders (id int PRIMARY KEY, total int, created_at timestamptz)');
    for (const createTable of [false, true]) {
      const { refused } = await set({ databaseUrl: appDb.url, table: 'orders', mode: 'POLL', createTable });
      expect(refused).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'table' } });
      expect((refused as Error).message).toContain('has no column topic, event_type, payload, tenant, entity, table_name, operation, processed_at, dead_reason');
    }
    expect(await outbox.getSource(SCOPE)).toBeUndefined();
    // Nothing was built on it.
    expect((await app.query("SELECT indexname FROM pg_indexes WHERE tablename = 'orders'")).rows).toEqual([{ indexname: 'orders_pkey' }]);
  });

  it('refuses createTable in a schema that does not exist on the field table, and saves nothing', async () => {
    const { appDb, outbox, set } = await setUp();
    const { refused } = await set({ databaseUrl: appDb.url, table: 'nowhere.event_outbox', mode: 'POLL', createTable: true });
    expect(refused).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'table' } });
    expect((refused as Error).message).toBe('The schema of nowhere.event_outbox does not exist in that database; create it first, or name a table in an existing schema');
    expect(await outbox.getSource(SCOPE)).toBeUndefined();
  });

  it('refuses an outbox missing one column, and takes it once the column is there', async () => {
    const { appDb, app, set } = await setUp();
    await app.query(outboxTableDdl(outboxTable('event_outbox')));
    await app.query('ALTER TABLE event_outbox DROP COLUMN dead_reason');
    const { refused } = await set({ databaseUrl: appDb.url, mode: 'POLL' });
    expect(refused).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'table' } });
    expect((refused as Error).message).toContain('has no column dead_reason;');

    await app.query('ALTER TABLE event_outbox ADD COLUMN dead_reason text');
    expect(await set({ databaseUrl: appDb.url, mode: 'POLL' })).toEqual({ saved: 'event_outbox POLL' });
  });

  it('refuses an outbox whose columns have types its statements cannot use, naming each, and takes it once they do', async () => {
    const { appDb, app, set } = await setUp();
    // A uuid key and a short reason: every batch would be routed, then fail its mark, at every pass.
    await app.query(`CREATE TABLE event_outbox (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(), topic text NOT NULL, event_type text NOT NULL, payload text NOT NULL,
      tenant text, entity text, table_name text, operation text, created_at timestamptz NOT NULL DEFAULT now(),
      processed_at timestamptz, dead_reason varchar(20))`);
    const { refused } = await set({ databaseUrl: appDb.url, mode: 'POLL' });
    expect(refused).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'table' } });
    expect((refused as Error).message).toBe(
      'The table event_outbox is not an outbox: its id is uuid, not an integer (bigserial); payload is text, not json or jsonb; ' +
        'dead_reason is character varying(20), not text (or a varchar of 100 characters or more); create the outbox with the DDL of npm run outbox:sql',
    );

    await app.query('DROP TABLE event_outbox');
    await app.query(outboxTableDdl(outboxTable('event_outbox')));
    await app.query('ALTER TABLE event_outbox ALTER COLUMN dead_reason TYPE varchar(255), ALTER COLUMN payload TYPE json');
    expect(await set({ databaseUrl: appDb.url, mode: 'POLL' })).toEqual({ saved: 'event_outbox POLL' });
  });

  it.each(['POLL', 'WAL'] as const)('refuses %s mode for a role that cannot update and delete the outbox rows, and takes it once granted', async (mode) => {
    const { appDb, app, outbox, set } = await setUp();
    await app.query(outboxTableDdl(outboxTable('event_outbox')));
    const role = uniqueName('outbox_role');
    await app.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    onTestFinished(async () => {
      await app.query(`DROP OWNED BY ${role}`);
      await app.query(`DROP ROLE ${role}`);
    });
    await app.query(`GRANT SELECT, INSERT ON event_outbox TO ${role}`);
    const url = new URL(appDb.url);
    url.username = role;
    url.password = 'pw';

    const { refused } = await set({ databaseUrl: url.toString(), mode });
    expect(refused).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'table' } });
    expect((refused as Error).message).toContain('lacks UPDATE, DELETE on the table event_outbox');
    expect(await outbox.getSource(SCOPE)).toBeUndefined();

    await app.query(`GRANT UPDATE, DELETE ON event_outbox TO ${role}`);
    // WAL mode also has the reader create its publication and add the table (outbox-wal-privileges.test.ts).
    if (mode === 'WAL') await app.query(`GRANT CREATE ON DATABASE "${appDb.name}" TO ${role}; ALTER TABLE event_outbox OWNER TO ${role}`);
    expect(await set({ databaseUrl: url.toString(), mode })).toEqual({ saved: `event_outbox ${mode}` });
  });
});
