/**
 * `setOutboxSource` in WAL mode checks what the WAL reader will do to its database's publication,
 * with the outbox URL's login, not only that the login may replicate: create the publication when
 * it is missing (CREATE on the database) and add the table to it (owning the publication and the
 * table). A login with REPLICATION and SELECT, UPDATE, DELETE on the table alone was accepted,
 * and its reader never started (nothing routed, the poller stopped, the cause in
 * `outboxStatus.lastError` only). WAL asked for is refused (MISCONFIGURED on the field `mode`,
 * with the statements to run); AUTO settles on POLL and logs why; once the statement said is run,
 * WAL is taken.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { type SetOutboxSourceInput } from '../../src/pipeline/outbox/outbox-admin.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { gql } from '../helpers/cdc.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { eventOf } from '../helpers/events.ts';
import { testOutboxAdmin } from '../helpers/outbox-source.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const SCOPE = { app: 'app', env: 'env', tenant: undefined };

async function setUp() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const appDb = await createTestDatabase();
  // The owner of the table and of the database: the test cluster's superuser.
  const owner = openTestPool(appDb.url);
  await owner.query(outboxTableDdl(outboxTable('event_outbox')));
  // A login as the README's Needs row asked for: REPLICATION, and SELECT, UPDATE, DELETE on the table.
  const role = uniqueName('outbox_wal');
  await owner.query(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD 'pw'`);
  onTestFinished(async () => {
    await owner.query(`DROP OWNED BY ${role}`);
    await owner.query(`DROP ROLE ${role}`);
  });
  await owner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON event_outbox TO ${role}`);
  const url = new URL(appDb.url);
  url.username = role;
  url.password = 'pw';
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
  const outbox = testOutboxAdmin(fixture.db, { logger });
  const set = async (input: Partial<SetOutboxSourceInput>) => {
    try {
      const saved = await outbox.setSource(SCOPE, { databaseUrl: url.toString(), ...input });
      return { saved: saved.readMode };
    } catch (error) {
      return { refused: error as Error & { code?: string; details?: Record<string, unknown> } };
    }
  };
  return { appDb, owner, role, url: url.toString(), outbox, set, lines, db: fixture.db };
}

describe('setOutboxSource WAL mode checks the publication its reader needs', () => {
  it('refuses WAL for a login that may neither create the publication nor own the table, names the statements, and takes WAL once one is run', async () => {
    const { appDb, owner, role, outbox, set, lines } = await setUp();

    const { refused } = await set({ mode: 'WAL' });
    expect(refused).toMatchObject({ code: ErrorCode.MISCONFIGURED, details: { field: 'mode', reason: 'PUBLICATION_CREATE_NOT_PERMITTED' } });
    const message = refused!.message;
    expect(message).toMatch(/^WAL mode is not possible on this database: the WAL reader reads the outbox through publication "tributary_[0-9a-f]{20}", which does not exist/);
    expect(message).toContain(`role "${role}" lacks CREATE on database "${appDb.name}" (to create the publication) and ownership of public.event_outbox`);
    expect(message).toContain(`GRANT CREATE ON DATABASE "${appDb.name}" TO "${role}";`);
    // The table's owner is a superuser here: its role is never suggested, the table's ownership is.
    expect(message).toContain(`ALTER TABLE "public"."event_outbox" OWNER TO "${role}";`);
    expect(message).toMatch(/; or use mode POLL$/);
    expect(await outbox.getSource(SCOPE)).toBeUndefined();

    // AUTO settles on POLL, and says why.
    expect(await set({ mode: 'AUTO' })).toEqual({ saved: 'POLL' });
    expect(lines.some((line) => line.includes('outbox mode AUTO settled on POLL') && line.includes('CREATE PUBLICATION'))).toBe(true);

    // The publication created as the message says, by the superuser: WAL is taken.
    const create = /CREATE PUBLICATION [^;]+;/.exec(message)![0];
    await owner.query(create);
    expect(await set({ mode: 'WAL' })).toEqual({ saved: 'WAL' });
    expect(await set({ mode: 'AUTO' })).toEqual({ saved: 'WAL' });
  });

  it('takes WAL for a login granted CREATE on the database that owns the table', async () => {
    const { appDb, owner, role, set } = await setUp();
    await owner.query(`GRANT CREATE ON DATABASE "${appDb.name}" TO ${role}`);
    const { refused } = await set({ mode: 'WAL' });
    // CREATE alone: it still could not add a table it does not own.
    expect(refused).toMatchObject({ code: ErrorCode.MISCONFIGURED, details: { field: 'mode' } });
    expect(refused!.message).toContain(`lacks ownership of public.event_outbox`);
    expect(refused!.message).not.toContain('GRANT CREATE ON DATABASE');

    await owner.query(`ALTER TABLE event_outbox OWNER TO ${role}`);
    expect(await set({ mode: 'WAL' })).toEqual({ saved: 'WAL' });
  });

  it("leaves the publication to the database's CDC source: its reader reads the outbox with that source's login and publication", async () => {
    const { appDb, db, set } = await setUp();
    // A CDC source on the same database (its URL the superuser's, which may create and alter the publication).
    await db.query('INSERT INTO cdc_sources (app, env, database_url) VALUES ($1, $2, $3)', ['app', 'cdc-env', appDb.url]);
    expect(await set({ mode: 'WAL' })).toEqual({ saved: 'WAL' });
  });

  it('refuses WAL when the publication exists without the table and the login owns neither, naming the ALTER PUBLICATION to run', async () => {
    const { owner, role, set } = await setUp();
    const { refused: first } = await set({ mode: 'WAL' });
    const publication = /publication "(tributary_[0-9a-f]{20})"/.exec(first!.message)![1]!;
    // The database's publication, made by a CDC reader (or a DBA) without the outbox table.
    await owner.query(`CREATE PUBLICATION ${publication} WITH (publish_via_partition_root = true)`);

    const { refused } = await set({ mode: 'WAL' });
    expect(refused).toMatchObject({ code: ErrorCode.MISCONFIGURED, details: { field: 'mode', reason: 'PUBLICATION_ALTER_NOT_PERMITTED' } });
    expect(refused!.message).toContain(`which does not publish public.event_outbox, and role "${role}" may not add it (it owns neither the publication nor the table`);
    const alter = /ALTER PUBLICATION [^;]+;/.exec(refused!.message)![0];
    expect(alter).toBe(`ALTER PUBLICATION "${publication}" ADD TABLE "public"."event_outbox";`);
    expect(await set({ mode: 'AUTO' })).toEqual({ saved: 'POLL' });

    await owner.query(alter);
    expect(await set({ mode: 'WAL' })).toEqual({ saved: 'WAL' });
  });

  it('routes from the WAL with that login once the publication is made as the refusal said (end to end)', { timeout: 90_000 }, async () => {
    const { owner, url } = await setUp();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200' });
    const token = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const setWal = () => gql(server, token, 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, mode: WAL) { mode } }', { url });

    const refused = await setWal();
    expect(refused.errors?.[0]).toMatchObject({ extensions: { code: 'MISCONFIGURED', field: 'mode' } });
    await owner.query(/CREATE PUBLICATION [^;]+;/.exec(refused.errors![0]!.message)![0]);
    expect((await setWal()).data).toEqual({ setOutboxSource: { mode: 'WAL' } });

    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ tenant: undefined, permissions: ['orders.read'] }));
    const before = server.stats().subscribers;
    client.send({ id: 'o', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id topic type payload } }' } });
    await waitFor(() => server.stats().subscribers === before + 1, { message: 'subscription dispatched' });
    await owner.query(`INSERT INTO event_outbox (topic, event_type, payload) VALUES ('orders', 'order.created', '{"n": 1}')`);
    expect(eventOf(await client.nextMessage())).toMatchObject({ topic: 'orders', type: 'order.created', payload: { n: 1 } });
    const status = await gql(server, token, '{ outboxStatus { mode lastError } }');
    expect(status.data).toEqual({ outboxStatus: { mode: 'WAL', lastError: null } });
  });
});
