/**
 * Replication slots no environment reads any more (`retired-slots.ts`), against a real source
 * database: dropped once nobody streams them, kept while one does or when claimed again, never
 * through a URL that now reaches another database.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createCdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import { sourceIdOf } from '../../src/pipeline/cdc/cdc-source.ts';
import { createRetiredSlots, identityOfKey, type RetiredSlots, type SlotOwner } from '../../src/pipeline/cdc/retired-slots.ts';
import { identifyDatabase, identityKey } from '../../src/pipeline/cdc/wal/replication-names.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly slot?: string;
  readonly database?: string;
  readonly reached?: string;
  readonly host?: string;
}

/** A logger at info level, and the lines it wrote. */
function capturingLogger() {
  const lines: LogLine[] = [];
  return { lines, logger: createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } }) };
}

/** The identity key of the database a pool reaches (what a retired slot's `database` holds). */
async function identityOf(pool: pg.Pool): Promise<string> {
  const client = await pool.connect();
  try {
    return identityKey(await identifyDatabase(client));
  } finally {
    client.release();
  }
}

/** One pass over the noted slots, `owner` saying who settles each (by default: no reader left, this instance drops). */
async function drop(retired: RetiredSlots, owner: (slot: { slotName: string }) => SlotOwner = () => 'none'): Promise<boolean> {
  return retired.drop(await retired.list(), owner);
}

/** A source database with a logical slot, a platform database with the slot's reader status, and the slots to drop. */
async function setUp() {
  const source = await createTestDatabase();
  const pool = openTestPool(source.url);
  const slotName = uniqueName('slot');
  await pool.query('CREATE PUBLICATION retired_pub FOR ALL TABLES');
  await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slotName]);
  const platform = await createTestDatabase();
  const db = createPostgresDatabase({ url: platform.url, logger });
  onTestFinished(() => db.close());
  await migrate(db, { logger });
  const store = createCdcStore(db);
  const database = await identityOf(pool);
  const sourceId = sourceIdOf(identityOfKey(database));
  await store.saveStatus({ source: sourceId, state: 'streaming', leader: null, lastLsn: '0/1', lagBytes: 0, retainedWalBytes: 0, lastError: null });
  const connections = createSourceConnections(source.url);
  onTestFinished(() => connections.dispose());
  const retired = createRetiredSlots({ connectionsOf: () => connections, identityOf: () => Promise.resolve(database), store, logger });
  const slot = { database, url: source.url, slotName };
  const slotExists = async () => (await pool.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slotName])).rowCount === 1;
  return { source, pool, slotName, store, retired, slot, slotExists, sourceId };
}

/** Retired slots whose URL now reaches the database at `url` (the source moved behind it), the slot noted, their log captured. */
async function retiredBehind(url: string, store: ReturnType<typeof createCdcStore>, slot: { database: string; url: string; slotName: string }) {
  const connections = createSourceConnections(url);
  onTestFinished(() => connections.dispose());
  const { lines, logger: capturing } = capturingLogger();
  const retired = createRetiredSlots({ connectionsOf: () => connections, identityOf: () => Promise.resolve(slot.database), store, logger: capturing });
  await retired.retire({ ...slot, url });
  return { lines, retired };
}

/** Streams the slot over a replication connection of the test's own (as a reader of another instance would); resolves once it is active. */
async function streamSlot(url: string, slotName: string, check: pg.Pool): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, replication: 'database' } as pg.ClientConfig);
  client.on('error', () => {});
  await client.connect();
  onTestFinished(() => client.end().catch(() => undefined));
  client.query(`START_REPLICATION SLOT ${slotName} LOGICAL 0/0 (proto_version '1', publication_names 'retired_pub')`).catch(() => undefined);
  await waitFor(async () => (await check.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slotName])).rowCount === 1, {
    message: 'the slot is streamed',
  });
  return client;
}

describe('retired replication slots', () => {
  it('keeps a slot another reader still streams, and drops it (with its reader status) at a later call once it stopped', async () => {
    const { source, slotName, store, retired, slot, slotExists, sourceId } = await setUp();
    const streaming = await streamSlot(source.url, slotName, openTestPool(source.url));
    await retired.retire(slot);

    expect(await drop(retired)).toBe(false);
    expect(await slotExists()).toBe(true);
    expect(retired.urls()).toEqual([source.url]);

    await streaming.end();
    await waitFor(async () => (await drop(retired)) && !(await slotExists()), { message: 'the slot is dropped' });
    expect(retired.urls()).toEqual([]);
    expect(await store.getStatus(sourceId)).toBeUndefined();
  });

  it('keeps a slot an environment reads again, and forgets it', async () => {
    const { retired, slot, slotExists, store, sourceId } = await setUp();
    await retired.retire(slot);
    expect(await drop(retired, (candidate) => (candidate.slotName === slot.slotName ? 'claimed' : 'none'))).toBe(true);
    expect(await slotExists()).toBe(true);
    expect(await store.getStatus(sourceId)).toMatchObject({ lastLsn: '0/1' });
    // Forgotten: a later call drops nothing.
    expect(retired.urls()).toEqual([]);
    expect(await drop(retired)).toBe(false);
    expect(await slotExists()).toBe(true);
  });

  it('counts a slot dropped meanwhile (by another instance) as done', async () => {
    const { source, slotName, retired, slot, slotExists } = await setUp();
    await retired.retire(slot);
    await openTestPool(source.url).query('SELECT pg_drop_replication_slot($1)', [slotName]);
    expect(await drop(retired)).toBe(true);
    expect(await slotExists()).toBe(false);
    expect(retired.urls()).toEqual([]);
  });

  it('drops nothing through a URL that now reaches another database (the source moved behind it), and says which slot to drop by hand', async () => {
    const { pool, slotName, store, slot } = await setUp();
    // The URL now reaches another database, whose own reader uses a slot of the same name (slot
    // names are per cluster, so "another database" is here one of the same cluster, the slot its own).
    const moved = await createTestDatabase();
    const movedPool = openTestPool(moved.url);
    await pool.query('SELECT pg_drop_replication_slot($1)', [slotName]);
    await movedPool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slotName]);
    const { lines, retired } = await retiredBehind(moved.url, store, slot);

    expect(await drop(retired)).toBe(true);
    // The other database's slot is left alone (dropped before the fix), and the note is settled.
    expect((await movedPool.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()', [slotName])).rowCount).toBe(1);
    expect(retired.urls()).toEqual([]);
    expect(lines.filter((line) => line.msg.startsWith('dropped'))).toEqual([]);
    const warning = lines.find((line) => line.level === 40 && line.slot === slotName);
    expect(warning).toMatchObject({ database: slot.database, reached: await identityOf(movedPool) });
    expect(warning?.msg).toContain(`retired replication slot ${slotName} now reaches another database`);
    expect(warning?.msg).toContain('drop it by hand');
  });

  it('does not count a slot as dropped when the URL reaches another database without it', async () => {
    const { slotName, store, slot, slotExists } = await setUp();
    const moved = await createTestDatabase();
    const { lines, retired } = await retiredBehind(moved.url, store, slot);

    expect(await drop(retired)).toBe(true);
    expect(await slotExists()).toBe(true);
    expect(lines.map((line) => line.msg)).toEqual([expect.stringContaining(`retired replication slot ${slotName} now reaches another database`)]);
  });
  it('gives up, telling where, a note saved without its database whose URL stays out of reach for an hour, and keeps it before', async () => {
    const { store } = await setUp();
    const unreachable = 'postgres://reader:secret@127.0.0.1:1/crm';
    await store.noteRetiredSlot({ database: null, databaseUrl: unreachable, slotName: null });
    let clock = 1_000_000;
    const { lines, logger: capturing } = capturingLogger();
    const retired = createRetiredSlots({
      connectionsOf: (url) => createSourceConnections(url),
      identityOf: () => Promise.resolve(undefined),
      store,
      logger: capturing,
      now: () => clock,
    });

    expect(await drop(retired)).toBe(false);
    clock += 3_599_000;
    expect(await drop(retired)).toBe(false);
    expect(await store.listRetiredSlots()).toHaveLength(1);
    expect(retired.urls()).toEqual([unreachable]);

    clock += 1_000;
    expect(await drop(retired)).toBe(true);
    expect(await store.listRetiredSlots()).toEqual([]);
    expect(retired.urls()).toEqual([]);
    expect(lines).toEqual([expect.objectContaining({ level: 40, host: '127.0.0.1:1', database: 'crm', msg: expect.stringContaining('drop it by hand') as unknown })]);
    expect(JSON.stringify(lines)).not.toContain('secret');
  });
});
