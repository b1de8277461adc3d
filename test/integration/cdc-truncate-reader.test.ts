/**
 * The WAL reader and TRUNCATE, against a real Postgres: a TRUNCATE ends its chunk (the changes
 * before it, then it), the transaction's later changes follow in a final chunk (empty if none),
 * CASCADE and partitioned roots name the tables as the publication sends them, and a transaction
 * whose TRUNCATE failed in the handler comes again, from its first chunk, until it is handled.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { TransactionChunk } from '../../src/pipeline/cdc/row-change.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createWalReader, type WalReaderOptions } from '../../src/pipeline/cdc/wal/wal-reader.ts';
import { createTestDatabase, openTestClient, uniqueName } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });


/** A reader with a slot and publication of its own; `handle` defaults to recording the chunks. */
async function startReader(url: string, handle?: WalReaderOptions['handle']) {
  const chunks: TransactionChunk[] = [];
  const connections = createSourceConnections(url);
  const reader = createWalReader({
    connections,
    logger,
    reconnectInitialDelayMs: 10,
    reconnectMaxDelayMs: 100,
    statusIntervalMs: 100,
    slotName: uniqueName('slot'),
    publicationName: uniqueName('pub'),
    handle:
      handle ??
      ((chunk) => {
        chunks.push(chunk);
        return Promise.resolve();
      }),
  });
  onTestFinished(async () => {
    await reader.stop();
    await connections.dispose();
  });
  await reader.start();
  return { reader, chunks };
}

/** A chunk as the test compares it: inserted ids, the truncated tables, final. */
function shapeOf(chunk: TransactionChunk) {
  return {
    ids: chunk.changes.map((change) => change.new?.['id']),
    truncated: chunk.truncate?.tables.map((table) => `${table.schema}.${table.name}`),
    final: chunk.final,
  };
}

describe('WAL reader: TRUNCATE', () => {
  it('ends the chunk at the TRUNCATE and hands on the rest of the transaction in a final chunk, empty or not', async () => {
    const db = await createTestDatabase();
    const sql = await openTestClient(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const { chunks } = await startReader(db.url);

    await sql.query('BEGIN');
    await sql.query('INSERT INTO items VALUES (1)');
    await sql.query('TRUNCATE items');
    await sql.query('INSERT INTO items VALUES (2)');
    await sql.query('COMMIT');
    await sql.query('TRUNCATE items');
    await sql.query('INSERT INTO items VALUES (3)');
    await waitFor(() => chunks.some((chunk) => chunk.changes.some((change) => change.new?.['id'] === 3)), { message: 'the last insert arrives' });

    expect(chunks.map(shapeOf)).toEqual([
      { ids: [1], truncated: ['public.items'], final: false },
      { ids: [2], truncated: undefined, final: true },
      { ids: [], truncated: ['public.items'], final: false },
      { ids: [], truncated: undefined, final: true },
      { ids: [3], truncated: undefined, final: true },
    ]);
    // One transaction's chunks share it; the TRUNCATE has its own position inside it.
    expect(chunks[0]!.commitLsn).toBe(chunks[1]!.commitLsn);
    expect(chunks[0]!.truncate!.lsn).toMatch(/^[0-9A-F]{8}\/[0-9A-F]{8}$/);
  });

  it('names every table a CASCADE emptied, and a partitioned table by its root', async () => {
    const db = await createTestDatabase();
    const sql = await openTestClient(db.url);
    await sql.query('CREATE TABLE accounts (id int PRIMARY KEY)');
    await sql.query('CREATE TABLE contacts (id int PRIMARY KEY, account_id int REFERENCES accounts (id))');
    await sql.query('CREATE TABLE orders (id int, region text, PRIMARY KEY (region, id)) PARTITION BY LIST (region)');
    await sql.query(`CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu')`);
    await sql.query('CREATE TABLE orders_rest PARTITION OF orders DEFAULT');
    const { chunks } = await startReader(db.url);

    await sql.query('TRUNCATE accounts CASCADE');
    await sql.query('TRUNCATE orders');
    await waitFor(() => chunks.length === 4, { message: 'both TRUNCATEs arrive' });
    const truncated = chunks.filter((chunk) => chunk.truncate).map((chunk) => shapeOf(chunk).truncated?.toSorted());
    expect(truncated).toEqual([['public.accounts', 'public.contacts'], ['public.orders']]);
  });

  it('receives a transaction whose TRUNCATE failed in the handler again, from its first chunk, and confirms it once handled', async () => {
    const db = await createTestDatabase();
    const sql = await openTestClient(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY)');
    const chunks: TransactionChunk[] = [];
    let failures = 0;
    const { reader } = await startReader(db.url, (chunk) => {
      chunks.push(chunk);
      if (chunk.truncate && failures === 0) {
        failures += 1;
        return Promise.reject(new Error('the log is away'));
      }
      return Promise.resolve();
    });

    await sql.query('BEGIN');
    await sql.query('INSERT INTO items VALUES (1)');
    await sql.query('TRUNCATE items');
    await sql.query('INSERT INTO items VALUES (2)');
    await sql.query('COMMIT');
    const { rows } = await sql.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    await waitFor(() => chunks.filter((chunk) => chunk.final).length === 1, { message: 'the transaction is handled' });

    expect(chunks.map(shapeOf)).toEqual([
      { ids: [1], truncated: ['public.items'], final: false },
      { ids: [1], truncated: ['public.items'], final: false },
      { ids: [2], truncated: undefined, final: true },
    ]);
    await waitFor(
      async () => {
        const { rows: slot } = await sql.query<{ done: boolean }>('SELECT confirmed_flush_lsn >= $1::pg_lsn AS done FROM pg_replication_slots WHERE database = current_database()', [rows[0]!.lsn]);
        return slot[0]?.done === true;
      },
      { message: 'the slot confirms the transaction' },
    );
    expect(reader.status().state).toBe('streaming');
  });
});
