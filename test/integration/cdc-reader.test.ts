/**
 * The WAL reader against a real Postgres: pgoutput decoding, chunking, the acknowledgement rule
 * (a transaction comes again until its handling finished, across crashes, restarts and killed
 * walsenders), the slot's life cycle, retained WAL, and the set-up errors.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode, isTributaryError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { compareLsn } from '../../src/pipeline/cdc/wal/lsn.ts';
import type { RowChange, TransactionChunk } from '../../src/pipeline/cdc/row-change.ts';
import { createWalReader } from '../../src/pipeline/cdc/wal/wal-reader.ts';
import type { WalReader, WalReaderOptions } from '../../src/pipeline/cdc/wal/wal-reader.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createTestDatabase, startPrivatePostgres, uniqueName } from '../helpers/services.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

/** A plain client for writing and inspecting, closed when the test ends. */
async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {}); // the server may be restarted under it
  await client.connect();
  onTestFinished(() => client.end());
  return client;
}

interface TestReader {
  readonly reader: WalReader;
  /** Every chunk handed to the default `handle`, in order. */
  readonly chunks: TransactionChunk[];
  readonly slotName: string;
}

/** A reader with a slot of its own (slots are cluster-wide), stopped when the test ends. */
function openReader(url: string, options: Partial<WalReaderOptions> = {}): TestReader {
  const chunks: TransactionChunk[] = [];
  const slotName = options.slotName ?? uniqueName('slot');
  const connections = createSourceConnections(url);
  const reader = createWalReader({
    connections,
    logger,
    reconnectMaxDelayMs: 1000,
    statusIntervalMs: 100,
    handle: (chunk) => {
      chunks.push(chunk);
      return Promise.resolve();
    },
    ...options,
    slotName,
    publicationName: options.publicationName ?? 'tributary_test_pub',
  });
  onTestFinished(async () => {
    await reader.stop();
    await connections.dispose();
  });
  return { reader, chunks, slotName };
}

const changesOf = (chunks: readonly TransactionChunk[]): RowChange[] => chunks.flatMap((chunk) => chunk.changes);
const idsOf = (chunks: readonly TransactionChunk[]): number[] =>
  changesOf(chunks).map((change) => Number((change.new ?? change.old)?.['id']));

/** The ids in first-seen order, each once: what a consumer keeps after dropping redeliveries. */
function firstSeen(ids: readonly number[]): number[] {
  return [...new Set(ids)];
}

async function insertEach(client: pg.Client, table: string, from: number, to: number): Promise<void> {
  for (let id = from; id <= to; id += 1) await client.query(`INSERT INTO ${table} (id) VALUES ($1)`, [id]);
}

async function slotRow(client: pg.Client, slotName: string) {
  const { rows } = await client.query<{ active_pid: number | null; confirmed_flush_lsn: string; restart_lsn: string }>(
    'SELECT active_pid, confirmed_flush_lsn::text, restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1',
    [slotName],
  );
  return rows[0];
}

async function currentWalLsn(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return rows[0]!.lsn;
}

describe('WAL reader', () => {
  it('decodes inserts, updates and deletes, with the key-only old row by default and the full old row with REPLICA IDENTITY FULL', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query(`
      CREATE TABLE items (id int PRIMARY KEY, name text, price numeric, tags jsonb);
      CREATE TABLE audited (id int PRIMARY KEY, name text);
      ALTER TABLE audited REPLICA IDENTITY FULL`);
    const slotCreated: { recreated: boolean }[] = [];
    const { reader, chunks, slotName } = openReader(db.url, { onSlotCreated: (info) => void slotCreated.push(info) });
    await reader.start();
    expect(slotCreated).toEqual([{ recreated: false }]);
    expect(reader.status().state).toBe('streaming');

    await sql.query(`INSERT INTO items VALUES (1, 'a', 1.50, '{"x": 1}')`);
    await sql.query(`UPDATE items SET name = 'b' WHERE id = 1`);
    await sql.query(`UPDATE items SET id = 2 WHERE id = 1`);
    await sql.query(`DELETE FROM items WHERE id = 2`);
    await sql.query(`INSERT INTO audited VALUES (1, 'a')`);
    await sql.query(`UPDATE audited SET name = 'b' WHERE id = 1`);
    await sql.query(`DELETE FROM audited WHERE id = 1`);
    await waitFor(() => chunks.length === 7, { message: 'seven transactions' });

    for (const chunk of chunks) {
      expect(chunk.final).toBe(true);
      expect(chunk.changes).toHaveLength(1);
      expect(chunk.commitLsn).toMatch(/^[0-9A-F]{8}\/[0-9A-F]{8}$/);
      expect(chunk.commitTime).toBeInstanceOf(Date);
      expect(chunk.changes[0]!.lsn).toMatch(/^[0-9A-F]{8}\/[0-9A-F]{8}$/);
    }
    for (let i = 1; i < chunks.length; i += 1) expect(compareLsn(chunks[i - 1]!.commitLsn, chunks[i]!.commitLsn)).toBe(-1);

    const items = { schema: 'public', name: 'items' };
    const audited = { schema: 'public', name: 'audited' };
    const common = { unchangedToastColumns: [], lsnIndex: 0 }; // one change per transaction, alone at its LSN
    expect(changesOf(chunks).map(({ lsn: _lsn, ...change }) => change)).toEqual([
      { ...common, operation: 'insert', table: items, keyColumns: ['id'], old: undefined, new: { id: 1, name: 'a', price: '1.50', tags: { x: 1 } } },
      // Key unchanged: Postgres sends no old row at all.
      { ...common, operation: 'update', table: items, keyColumns: ['id'], old: undefined, new: { id: 1, name: 'b', price: '1.50', tags: { x: 1 } } },
      { ...common, operation: 'update', table: items, keyColumns: ['id'], old: { id: 1 }, new: { id: 2, name: 'b', price: '1.50', tags: { x: 1 } } },
      { ...common, operation: 'delete', table: items, keyColumns: ['id'], old: { id: 2 }, new: undefined },
      // With REPLICA IDENTITY FULL the whole row is the identity: every column is a key column.
      { ...common, operation: 'insert', table: audited, keyColumns: ['id', 'name'], old: undefined, new: { id: 1, name: 'a' } },
      { ...common, operation: 'update', table: audited, keyColumns: ['id', 'name'], old: { id: 1, name: 'a' }, new: { id: 1, name: 'b' } },
      { ...common, operation: 'delete', table: audited, keyColumns: ['id', 'name'], old: { id: 1, name: 'b' }, new: undefined },
    ]);

    // The last handled transaction is confirmed to Postgres, and status() says where.
    await waitFor(async () => {
      const slot = await slotRow(sql, slotName);
      const acknowledged = reader.status().lastAcknowledgedLsn;
      return slot !== undefined && acknowledged !== null && compareLsn(slot.confirmed_flush_lsn, acknowledged) === 0;
    });
    expect(compareLsn(reader.status().lastAcknowledgedLsn!, chunks.at(-1)!.commitLsn)).toBe(1);

    await reader.stop();
    await reader.stop();
    expect(reader.status().state).toBe('stopped');
    await waitFor(async () => (await slotRow(sql, slotName))?.active_pid === null, { message: 'walsender gone after stop' });
  });

  it('reports an unchanged TOASTed column as unchanged, never as null', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    // EXTERNAL: stored out of line without compression, so a 10 kB value is surely TOASTed.
    await sql.query(`
      CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
      ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL`);
    const { reader, chunks } = openReader(db.url);
    await reader.start();

    await sql.query(`INSERT INTO docs VALUES (1, 'first', repeat('x', 10000))`);
    await sql.query(`UPDATE docs SET title = 'second' WHERE id = 1`);
    await sql.query(`UPDATE docs SET body = NULL WHERE id = 1`);
    await waitFor(() => chunks.length === 3);

    const [insert, untouched, nulled] = changesOf(chunks);
    expect(insert!.new?.['body']).toBe('x'.repeat(10000));
    expect(untouched!.new).toEqual({ id: 1, title: 'second' });
    expect(untouched!.new).not.toHaveProperty('body');
    expect(untouched!.unchangedToastColumns).toEqual(['body']);
    expect(nulled!.new).toEqual({ id: 1, title: 'second', body: null });
    expect(nulled!.unchangedToastColumns).toEqual([]);
  });

  it('emits nothing for a rolled-back transaction', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const { reader, chunks } = openReader(db.url);
    await reader.start();

    await sql.query('BEGIN');
    await sql.query('INSERT INTO items VALUES (1)');
    await sql.query('ROLLBACK');
    await sql.query('INSERT INTO items VALUES (2)');
    await waitFor(() => chunks.length > 0);

    expect(idsOf(chunks)).toEqual([2]);
  });

  it('hands a transaction larger than the chunk size over in several chunks, final only on the last', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const { reader, chunks } = openReader(db.url, { maxChunkChanges: 100 });
    await reader.start();

    await sql.query('INSERT INTO items SELECT g FROM generate_series(1, 250) g');
    await sql.query('INSERT INTO items SELECT g FROM generate_series(251, 450) g');
    await waitFor(() => chunks.filter((chunk) => chunk.final).length === 2);

    expect(chunks.map((chunk) => [chunk.changes.length, chunk.final])).toEqual([
      [100, false],
      [100, false],
      [50, true],
      [100, false],
      [100, true],
    ]);
    expect(new Set(chunks.slice(0, 3).map((chunk) => `${chunk.xid}@${chunk.commitLsn}`)).size).toBe(1);
    expect(new Set(chunks.slice(3).map((chunk) => `${chunk.xid}@${chunk.commitLsn}`)).size).toBe(1);
    expect(idsOf(chunks)).toEqual(Array.from({ length: 450 }, (_, i) => i + 1));
  });

  it('delivers a transaction again to a new reader when the old one stopped before handle() resolved', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const received = deferred<TransactionChunk>();
    const publish = deferred();
    // The crash window: received, not yet published.
    const first = openReader(db.url, {
      handle: (chunk) => {
        received.resolve(chunk);
        return publish.promise;
      },
    });
    await first.reader.start();

    await sql.query('INSERT INTO items VALUES (1)');
    const seen = await received.promise;
    await first.reader.stop();
    publish.resolve(); // finishing after the stop must not confirm anything
    const slot = await slotRow(sql, first.slotName);
    expect(compareLsn(slot!.confirmed_flush_lsn, seen.commitLsn)).toBeLessThanOrEqual(0);

    const slotCreated: unknown[] = [];
    const second = openReader(db.url, {
      slotName: first.slotName,
      expectExistingSlot: true,
      onSlotCreated: (info) => void slotCreated.push(info),
    });
    await second.reader.start();
    await waitFor(() => second.chunks.length === 1);
    expect(second.chunks[0]).toEqual(seen);
    expect(slotCreated).toEqual([]);
  });

  it('receives a transaction again when handle() rejects, and reports the error', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const attempts: TransactionChunk[] = [];
    const { reader } = openReader(db.url, {
      handle: (chunk) => {
        attempts.push(chunk);
        return attempts.length === 1 ? Promise.reject(new Error('publish failed')) : Promise.resolve();
      },
    });
    await reader.start();

    await sql.query('INSERT INTO items VALUES (1)');
    await sql.query('INSERT INTO items VALUES (2)');
    await waitFor(() => idsOf(attempts).includes(2), { message: 'the second transaction after the redelivery' });

    expect(idsOf(attempts)).toEqual([1, 1, 2]);
    expect(attempts[1]).toEqual(attempts[0]);
    // Overcome by the reconnect that received it again: not reported beside `streaming` as if current.
    expect(reader.status().lastError).toBeNull();
    expect(reader.status().state).toBe('streaming');
  });

  it('hands later transactions over while one is still handled, but confirms only up to the oldest unfinished one', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const release = deferred();
    const commitLsns = new Map<number, string>();
    const { reader, slotName } = openReader(db.url, {
      handle: async (chunk) => {
        const [id] = idsOf([chunk]);
        commitLsns.set(id!, chunk.commitLsn);
        if (id === 5) await release.promise;
      },
    });
    await reader.start();
    await insertEach(sql, 'items', 1, 10);
    await waitFor(() => commitLsns.has(10), { message: 'transactions after the slow one are handed over' });
    // 6…10 are handled, 5 is not: nothing from 5 on is confirmed, to Postgres either.
    await waitFor(() => reader.status().lastAcknowledgedLsn !== null && compareLsn(reader.status().lastAcknowledgedLsn!, commitLsns.get(4)!) > 0, {
      message: 'transactions before the slow one confirmed',
    });
    expect(compareLsn(reader.status().lastAcknowledgedLsn!, commitLsns.get(5)!)).toBeLessThanOrEqual(0);
    expect(compareLsn((await slotRow(sql, slotName))!.confirmed_flush_lsn, commitLsns.get(5)!)).toBeLessThanOrEqual(0);
    release.resolve();
    await waitFor(() => compareLsn(reader.status().lastAcknowledgedLsn!, commitLsns.get(10)!) > 0, { message: 'all confirmed once the slow one is done' });
  });

  it('loses nothing and keeps the order when the walsender is terminated mid-stream', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const blocked = deferred();
    const release = deferred();
    const ids: number[] = [];
    const { reader, slotName } = openReader(db.url, {
      // One transaction at a time, recorded once handled: what is recorded was confirmable.
      maxPendingTransactions: 1,
      handle: async (chunk) => {
        const [id] = idsOf([chunk]);
        if (id === 10 && !blocked.settled) {
          blocked.resolve();
          await release.promise;
        }
        ids.push(id!);
      },
    });
    await reader.start();

    await insertEach(sql, 'items', 1, 30);
    await blocked.promise;
    const before = (await slotRow(sql, slotName))!.active_pid;
    await sql.query('SELECT pg_terminate_backend($1)', [before]);
    await waitFor(async () => (await slotRow(sql, slotName))?.active_pid !== before, { message: 'old walsender gone' });
    release.resolve();
    await insertEach(sql, 'items', 31, 40);

    const all = Array.from({ length: 40 }, (_, i) => i + 1);
    await waitFor(() => ids.includes(40), { timeoutMs: 15_000, message: 'every row after the walsender was terminated' });
    expect(firstSeen(ids)).toEqual(all);
    await waitFor(async () => {
      const pid = (await slotRow(sql, slotName))?.active_pid;
      return typeof pid === 'number' && pid !== before;
    });
    // Streaming again (its walsender a new one): the error that ended the stream is not kept.
    await waitFor(() => reader.status().state === 'streaming' && reader.status().lastError === null, { message: 'streaming again, without the error it overcame' });
  });

  it('loses nothing and keeps the order across a Postgres crash and a clean restart', async () => {
    const server = await startPrivatePostgres({ settings: { synchronous_commit: true } });
    let sql = await connect(server.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const blocked = deferred();
    const release = deferred();
    const ids: number[] = [];
    const { reader } = openReader(server.url, {
      // One transaction at a time, recorded once handled: what is recorded was confirmable.
      maxPendingTransactions: 1,
      handle: async (chunk) => {
        const [id] = idsOf([chunk]);
        if (id === 15 && !blocked.settled) {
          blocked.resolve();
          await release.promise;
        }
        ids.push(id!);
      },
    });
    await reader.start();

    await insertEach(sql, 'items', 1, 20);
    await blocked.promise;
    await server.stop('immediate');
    release.resolve();
    await server.start();
    sql = await connect(server.url);
    await insertEach(sql, 'items', 21, 30);
    await waitFor(() => ids.includes(30), { timeoutMs: 20_000, message: 'every row after the crash' });

    // And a clean (fast) restart, with the reader idle.
    await server.stop('fast');
    await server.start();
    sql = await connect(server.url);
    await insertEach(sql, 'items', 31, 40);
    await waitFor(() => ids.includes(40), { timeoutMs: 20_000, message: 'every row after the restart' });

    const { rows } = await sql.query<{ id: number }>('SELECT id FROM items ORDER BY id');
    expect(rows.map((row) => row.id)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(firstSeen(ids)).toEqual(rows.map((row) => row.id));
    expect(reader.status().state).toBe('streaming');
  });

  it('keeps going through TRUNCATE and ALTER TABLE ADD COLUMN, and decodes the new column', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
    const { reader, chunks } = openReader(db.url);
    await reader.start();

    await sql.query(`INSERT INTO items VALUES (1, 'a')`);
    await sql.query('TRUNCATE items');
    await sql.query(`INSERT INTO items VALUES (2, 'b')`);
    await sql.query(`ALTER TABLE items ADD COLUMN color text DEFAULT 'red'`);
    await sql.query(`INSERT INTO items VALUES (3, 'c', 'blue')`);
    await sql.query(`UPDATE items SET name = 'bb' WHERE id = 2`);
    await waitFor(() => changesOf(chunks).length === 4);
    expect(chunks.filter((chunk) => chunk.truncate).map((chunk) => chunk.truncate?.tables)).toEqual([[{ schema: 'public', name: 'items' }]]);

    expect(changesOf(chunks).map((change) => [change.operation, change.new])).toEqual([
      ['insert', { id: 1, name: 'a' }],
      ['insert', { id: 2, name: 'b' }],
      ['insert', { id: 3, name: 'c', color: 'blue' }],
      ['update', { id: 2, name: 'bb', color: 'red' }],
    ]);
    expect(reader.status()).toMatchObject({ state: 'streaming', lastError: null });
  });

  it('recreates a slot dropped by hand while stopped and says it was recreated', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const first = openReader(db.url);
    await first.reader.start();
    await sql.query('INSERT INTO items VALUES (1)');
    await waitFor(() => first.chunks.length === 1);
    await first.reader.stop();
    await waitFor(async () => (await slotRow(sql, first.slotName))?.active_pid === null);
    await sql.query('SELECT pg_drop_replication_slot($1)', [first.slotName]);
    await sql.query('INSERT INTO items VALUES (2)'); // committed while no slot exists: missed

    const slotCreated: { recreated: boolean }[] = [];
    const second = openReader(db.url, {
      slotName: first.slotName,
      expectExistingSlot: true,
      onSlotCreated: (info) => void slotCreated.push(info),
    });
    await second.reader.start();
    expect(slotCreated).toEqual([{ recreated: true }]);
    await sql.query('INSERT INTO items VALUES (3)');
    await waitFor(() => second.chunks.length === 1);
    expect(idsOf(second.chunks)).toEqual([3]);
  });

  it('says what a slot creation waits for, and stop() ends that start without creating the slot', async () => {
    const db = await createTestDatabase();
    const sql = await connect(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    // Creating a slot waits for every transaction holding an id to end: this one stays open.
    const open = await connect(db.url);
    await open.query('BEGIN');
    await open.query('INSERT INTO items VALUES (1)');
    const openPid = (await open.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const { reader, slotName } = openReader(db.url);
    const starting = reader.start();
    const waiting = await waitFor(() => reader.status().lastError?.startsWith('waiting for open transactions to create the slot') && reader.status(), {
      timeoutMs: 10_000,
      message: 'the status says the slot creation waits',
    });
    expect(waiting).toMatchObject({ state: 'starting' });
    expect(waiting && waiting.lastError).toContain(`backends ${openPid}`);

    await reader.stop();
    await starting;
    expect(reader.status()).toMatchObject({ state: 'stopped' });
    await open.query('COMMIT');
    expect(await slotRow(sql, slotName)).toBeUndefined();
  });

  it('confirms idle WAL so retained WAL does not grow when only unpublished tables change', async () => {
    const server = await startPrivatePostgres();
    const sql = await connect(server.url);
    await sql.query('CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE unpublished (id int, pad text)');
    const { reader, chunks, slotName } = openReader(server.url, { tables: ['published'] });
    await reader.start();
    await sql.query('INSERT INTO published VALUES (1)');
    await waitFor(() => chunks.length === 1);

    const before = await currentWalLsn(sql);
    await sql.query(`INSERT INTO unpublished SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g`);
    const after = await currentWalLsn(sql);

    // restart_lsn moves at a running-transactions record, which a checkpoint writes.
    await waitFor(
      async () => {
        await sql.query('CHECKPOINT');
        const slot = await slotRow(sql, slotName);
        return slot && compareLsn(slot.restart_lsn, after) >= 0 && compareLsn(slot.confirmed_flush_lsn, after) >= 0;
      },
      { timeoutMs: 20_000, intervalMs: 200, message: 'the slot released the WAL of the unpublished writes' },
    );
    const status = await reader.inspect();
    const written = await sql.query<{ bytes: string }>('SELECT pg_wal_lsn_diff($1, $2)::text AS bytes', [after, before]);
    expect(status.retainedWalBytes).toBeLessThan(Number(written.rows[0]!.bytes));
    expect(status.lagBytes).toBeGreaterThanOrEqual(0);
    expect(idsOf(chunks)).toEqual([1]);
  });

  it('reports no lag or retained WAL, rather than the last figures, once the source cannot be inspected', async () => {
    const server = await startPrivatePostgres();
    const sql = await connect(server.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const { reader } = openReader(server.url);
    await reader.start();
    const measured = await reader.inspect();
    expect(measured.lagBytes).not.toBeNull();
    expect(measured.retainedWalBytes).not.toBeNull();

    await server.stop('immediate');
    await expect(reader.inspect()).rejects.toThrow();
    expect(reader.status()).toMatchObject({ lagBytes: null, retainedWalBytes: null });
  });

  it('refuses to start with a clear error when wal_level is not logical', async () => {
    const server = await startPrivatePostgres({ settings: { wal_level: 'replica' } });
    const { reader } = openReader(server.url);

    const error = await reader.start().then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(isTributaryError(error)).toBe(true);
    // The operator's setup, not a caller's input nor an outage: said once, never retried as if transient.
    expect(error).toMatchObject({ code: ErrorCode.MISCONFIGURED, details: { reason: 'WAL_LEVEL_NOT_LOGICAL' } });
    expect((error as Error).message).toMatch(/wal_level = replica/);
    expect((error as Error).message).toMatch(/ALTER SYSTEM SET wal_level = logical; .*restart Postgres/);
    expect(reader.status()).toMatchObject({ state: 'failed', lastError: (error as Error).message });
    const sql = await connect(server.url);
    expect((await sql.query('SELECT 1 FROM pg_replication_slots')).rowCount).toBe(0);
  });

  it('refuses to start with a clear error when the role may not replicate', async () => {
    const server = await startPrivatePostgres();
    const sql = await connect(server.url);
    const role = uniqueName('reader');
    await sql.query(`CREATE ROLE ${role} LOGIN`);
    const url = new URL(server.url);
    url.username = role;
    const { reader } = openReader(url.toString());

    const error = await reader.start().then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(new RegExp(`role "${role}" lacks it: run ALTER ROLE "${role}" REPLICATION`));
    expect(error).toMatchObject({ code: ErrorCode.MISCONFIGURED, details: { reason: 'ROLE_CANNOT_REPLICATE' } });
    expect(reader.status().state).toBe('failed');
  });
});
