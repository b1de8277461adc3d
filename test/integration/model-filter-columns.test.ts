import { createServer, type Socket } from 'node:net';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { isTributaryError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { parseMapping, type DomainMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { createSourceConnections, type SourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { assertFilterColumns, closestColumn, type FilterColumnsOptions } from '../../src/pipeline/cdc/model-filter-columns.ts';
import { parseModelFilter } from '../../src/pipeline/filters/model-filter.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';

/*
 * The column lists behind `assertFilterColumns`, against a real source database: what is read
 * when, what a list kept in memory may and may not decide, and what happens when the catalog does
 * not answer.
 */

const logger = createLogger({ level: 'silent' });
const CONTACTS = parseMapping({ name: 'contacts', table: 'contacts', events: ['insert'], topic: 'crm.contact-events', module: 'crm', model: 'contacts' });

/** Source connections on a fresh database with `contacts (id, status, name)`, counting the connections taken. */
async function sourceDatabase(): Promise<{ connections: SourceConnections & { readonly taken: number }; pool: pg.Pool }> {
  const database = await createTestDatabase();
  const pool = openTestPool(database.url);
  await pool.query('CREATE TABLE contacts (id serial PRIMARY KEY, status text, name text)');
  const real = createSourceConnections(database.url, { logger });
  onTestFinished(() => real.dispose());
  let taken = 0;
  const connections = {
    ...real,
    withClient<T>(use: (client: pg.ClientBase) => Promise<T>): Promise<T> {
      taken += 1;
      return real.withClient(use);
    },
    get taken() {
      return taken;
    },
  };
  return { connections, pool };
}

function check(connections: SourceConnections, filter: Record<string, string>, options: FilterColumnsOptions = {}, mappings: readonly DomainMapping[] = []): Promise<void> {
  return assertFilterColumns(
    { filter: parseModelFilter(filter), model: 'contacts', source: () => Promise.resolve({ mapping: CONTACTS, connections }), mappings: () => Promise.resolve(mappings), logger },
    options,
  );
}

async function refusal(promise: Promise<void>): Promise<Record<string, unknown>> {
  const error: unknown = await promise.then(() => undefined, (caught: unknown) => caught);
  if (!isTributaryError(error)) throw new Error(`expected a refusal, got ${String(error)}`);
  return { code: error.code, message: error.message, ...error.details };
}

describe('assertFilterColumns', () => {
  it('reads the catalog once for filters on known columns, and again for a column it has not seen before refusing it', async () => {
    const { connections, pool } = await sourceDatabase();
    await check(connections, { status: 'eq.active' });
    await check(connections, { name: 'eq.Ann', id: 'gt.1' });
    await check(connections, {});
    expect(connections.taken).toBe(1);

    expect(await refusal(check(connections, { stauts: 'eq.active' }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter', column: 'stauts', closest: 'status' });
    expect(connections.taken).toBe(2);
    await pool.query('ALTER TABLE contacts ADD COLUMN stauts text');
    await check(connections, { stauts: 'eq.active' });
    expect(connections.taken).toBe(3);
  });

  it('refuses a dropped column only once its kept list is older than the time to live', async () => {
    const { connections, pool } = await sourceDatabase();
    let now = 1_000_000;
    const options = { now: () => now, ttlMs: 60_000 };
    await check(connections, { name: 'eq.Ann' }, options);
    await pool.query('ALTER TABLE contacts DROP COLUMN name');
    now += 59_999;
    await check(connections, { name: 'eq.Ann' }, options);
    now += 1;
    expect(await refusal(check(connections, { name: 'eq.Ann' }, options))).toMatchObject({ column: 'name' });
  });

  it('shares reads among callers arriving together: one running, one queued behind it for those who came later', async () => {
    const { connections } = await sourceDatabase();
    const refusals = await Promise.all(Array.from({ length: 20 }, () => refusal(check(connections, { nosuch: 'eq.1' }))));
    expect(refusals.every((refused) => refused['column'] === 'nosuch' && !('closest' in refused))).toBe(true);
    expect(connections.taken).toBeLessThanOrEqual(2);
  });

  it('takes the columns of every table mapped to the same model stream, and only of those', async () => {
    const { connections, pool } = await sourceDatabase();
    await pool.query('CREATE TABLE leads (id serial PRIMARY KEY, score int)');
    await pool.query('CREATE TABLE deals (id serial PRIMARY KEY, amount int)');
    const leads = parseMapping({ ...CONTACTS, name: 'leads', table: 'leads' });
    const deals = parseMapping({ ...CONTACTS, name: 'deals', table: 'deals', model: 'deals' });
    await check(connections, { score: 'gte.5', status: 'eq.active' }, {}, [CONTACTS, leads, deals]);
    expect(await refusal(check(connections, { amount: 'gt.0' }, {}, [CONTACTS, leads, deals]))).toMatchObject({ column: 'amount' });
    expect(await refusal(check(connections, { scroe: 'gt.0' }, {}, [CONTACTS, leads, deals]))).toMatchObject({ column: 'scroe', closest: 'score' });
  });

  it('lets the filter through unchecked when the catalog does not answer in time, or the table does not exist', async () => {
    // A server that accepts connections and never says a word.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const address = silent.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const away = createSourceConnections(`postgres://tributary@127.0.0.1:${address.port}/source`, { logger, connectTimeoutMs: 60_000 });
    onTestFinished(() => away.dispose());
    await check(away, { nosuch: 'eq.1' }, { waitMs: 50 });

    const { connections, pool } = await sourceDatabase();
    await pool.query('DROP TABLE contacts');
    await check(connections, { nosuch: 'eq.1' });
  });

  it('fails a catalog read unanswered for long, so the next caller reads again instead of queueing behind it for good', async () => {
    const { connections } = await sourceDatabase();
    let reads = 0;
    // The first read's statement never answers (a half-open connection TCP has not given up yet).
    const hanging: SourceConnections = {
      ...connections,
      withClient<T>(use: (client: pg.ClientBase) => Promise<T>): Promise<T> {
        reads += 1;
        if (reads > 1) return connections.withClient(use);
        return use({ query: () => new Promise(() => undefined) } as unknown as pg.ClientBase);
      },
    };
    const options = { waitMs: 50, readTimeoutMs: 300 };
    await check(hanging, { nosuch: 'eq.1' }, options);
    // Still in its time: a caller who came later queues behind it, unchecked.
    await check(hanging, { nosuch: 'eq.1' }, options);
    expect(reads).toBe(1);
    // Failed once its time is up: the queued read runs, and a later caller is answered from it.
    await waitFor(() => reads === 2);
    expect(await refusal(check(hanging, { nosuch: 'eq.1' }, { readTimeoutMs: 300 }))).toMatchObject({ column: 'nosuch' });
  });

  it('suggests the column of the same name in another case, else the nearest within a few edits', () => {
    const columns = ['id', 'tenant_id', 'status', 'created_at', 'Name'];
    expect(closestColumn('Status', columns)).toBe('status');
    expect(closestColumn('name', columns)).toBe('Name');
    expect(closestColumn('stauts', columns)).toBe('status');
    expect(closestColumn('createdat', columns)).toBe('created_at');
    expect(closestColumn('tenant', columns)).toBeUndefined();
    expect(closestColumn('nosuch', columns)).toBeUndefined();
    expect(closestColumn('ib', columns)).toBeUndefined();
  });
});
