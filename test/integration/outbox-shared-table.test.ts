/**
 * One outbox table per environment: `setOutboxSource` refuses a table another environment's outbox
 * reads (the same database and table, whatever the URL's text) — each outbox has its own readers,
 * and each row went to one of the two environments only, silently (of 200 rows, 20 to one and 180
 * to the other). BAD_USER_INPUT on the field `table`, naming the other environment only when it is
 * the same app's, and nothing saved. Two saves at once cannot both pass.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { type SetOutboxSourceInput } from '../../src/pipeline/outbox/outbox-admin.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { testOutboxAdmin } from '../helpers/outbox-source.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';

const scope = (app: string, env: string) => ({ app, env, tenant: undefined });

async function setUp() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const appDb = await createTestDatabase();
  const app = openTestPool(appDb.url);
  await app.query(outboxTableDdl(outboxTable('event_outbox')));
  const outbox = testOutboxAdmin(fixture.db, { checkReplication: async () => {} });
  const set = async (app: string, env: string, input: Partial<SetOutboxSourceInput> = {}) => {
    try {
      const saved = await outbox.setSource(scope(app, env), { databaseUrl: appDb.url, mode: 'POLL', ...input });
      return { saved: saved.table };
    } catch (error) {
      return { refused: error as Error & { code?: string; details?: Record<string, unknown> } };
    }
  };
  return { appDb, app, outbox, set };
}

describe('setOutboxSource on a table another environment reads', () => {
  it("refuses the same app's other environment, naming it, whatever the URL's text; takes another table, or the table once freed", async () => {
    const { appDb, outbox, set } = await setUp();
    expect(await set('shop', 'prod')).toEqual({ saved: 'event_outbox' });

    for (const input of [{}, { databaseUrl: `${appDb.url}?application_name=staging` }, { table: 'public.event_outbox' }]) {
      const { refused } = await set('shop', 'staging', input);
      expect(refused).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'table', reason: 'OUTBOX_TABLE_SHARED' } });
      expect(refused!.message).toContain('is read by the outbox of environment "prod" of this app');
      expect(refused!.message).toContain('Use one table per environment');
      expect(refused!.message).toContain('npm run outbox:sql');
    }
    expect(await outbox.getSource(scope('shop', 'staging'))).toBeUndefined();
    // The environment that has it may set it again.
    expect(await set('shop', 'prod', { mode: 'AUTO' })).toEqual({ saved: 'event_outbox' });

    expect(await set('shop', 'staging', { table: 'staging_outbox', createTable: true })).toEqual({ saved: 'staging_outbox' });
    // Moving onto the other's table is refused too, and leaves the source as it was.
    expect((await set('shop', 'staging')).refused).toMatchObject({ code: ErrorCode.BAD_USER_INPUT });
    expect((await outbox.getSource(scope('shop', 'staging')))?.table).toBe('staging_outbox');

    await outbox.removeSource(scope('shop', 'prod'));
    expect(await set('shop', 'staging')).toEqual({ saved: 'event_outbox' });
  });

  it("refuses another app's environment without naming it", async () => {
    const { set } = await setUp();
    expect(await set('shop', 'prod')).toEqual({ saved: 'event_outbox' });
    const { refused } = await set('crm', 'prod');
    expect(refused).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'table' } });
    expect(refused!.message).toContain("is read by another environment's outbox");
    expect(refused!.message).not.toMatch(/shop|"prod"/);
  });

  it('lets one of several environments saving the same table at once have it', async () => {
    const { outbox, set } = await setUp();
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((env) => set('shop', env)));
    expect(results.filter((result) => 'saved' in result)).toHaveLength(1);
    expect(results.filter((result) => result.refused?.code === ErrorCode.BAD_USER_INPUT)).toHaveLength(3);
    const saved = await Promise.all(['a', 'b', 'c', 'd'].map((env) => outbox.getSource(scope('shop', env))));
    expect(saved.filter(Boolean)).toHaveLength(1);
  });
});
