/**
 * The `cdc` workload's writer: commits rows to a table of the source database over a connection
 * of its own, in the runner's process. Each row carries its sequence number and the time its
 * INSERT was due by the schedule (`clockMillis()`, as `publisher.ts` stamps events), in the columns `seq` and
 * `"sentAt"`, so the subscribers read both from the record in the `next` frame exactly as they
 * read a published event. It has the publisher's interface (`Publisher`), so a fan-out session
 * drives it like the HTTP publisher: one row per transaction (autocommit), paced by `runPaced`.
 * `bulk` commits many rows in one transaction.
 *
 * Row `seq` belongs to tenant `tenantOf(seq, topics)`: with several topics, consecutive rows go
 * to consecutive tenants, which is what the load client expects (`fanout-ledger.ts`).
 */
import pg from 'pg';
import { createCommitWriter } from './commit-writer.ts';
import { clockMillis } from './fanout-payload.ts';
import type { Publisher } from './publisher.ts';

export interface RowWriterOptions {
  /** `postgres://…` of the source database. */
  readonly databaseUrl: string;
  /** The table written to (`createContactsTable`'s shape), a plain lower-case name. */
  readonly table: string;
  /** Tenants the rows are spread over. @default 1 */
  readonly topics?: number;
}

export interface BulkCommit {
  /** Rows committed. */
  readonly rows: number;
  /** `clockMillis()` when the transaction began and when COMMIT was answered. */
  readonly startedAt: number;
  readonly committedAt: number;
  /** `pg_current_wal_lsn()` right after the commit: the slot is caught up once it confirmed this. */
  readonly walLsn: string;
}

export interface RowWriter extends Publisher {
  /** Inserts rows `firstSeq … firstSeq + count − 1` in one transaction; resolves once committed. */
  bulk(firstSeq: number, count: number): Promise<BulkCommit>;
}

/** The tenant of row `seq` when rows are spread over `topics` tenants. */
export function tenantOf(seq: number, topics: number): string {
  return `t${seq % topics}`;
}

/** The table every peer's rows go to (one per peer, the same shape): `seq` and `sentAt` come first after the key and tenant. */
export function contactsTableSql(table: string): string[] {
  const name = pg.escapeIdentifier(table);
  return [
    `CREATE TABLE ${name} (id serial PRIMARY KEY, tenant_id text NOT NULL, seq integer NOT NULL, "sentAt" double precision NOT NULL, name text NOT NULL, email text NOT NULL, status text NOT NULL)`,
    // Deletes routed by tenant need the old row (Tributary refuses such a mapping otherwise).
    `ALTER TABLE ${name} REPLICA IDENTITY FULL`,
  ];
}

export function createRowWriter(options: RowWriterOptions): RowWriter {
  const topics = options.topics ?? 1;
  const table = pg.escapeIdentifier(options.table);
  // Prepared once per connection by name: each insert is then one Bind/Execute round trip.
  const insert = {
    name: `bench_insert_${options.table}`,
    text: `INSERT INTO ${table} (tenant_id, seq, "sentAt", name, email, status) VALUES ($1, $2, $3, $4, $5, 'active')`,
  };
  const writer = createCommitWriter({
    databaseUrl: options.databaseUrl,
    applicationName: 'bench-row-writer',
    insert: (client, seq, sentAt) => client.query({ ...insert, values: [tenantOf(seq, topics), seq, sentAt, `Contact ${seq}`, `contact${seq}@example.com`] }),
  });

  return {
    connect: (connections) => writer.connect(connections),
    publishOne: (seq) => writer.publishOne(seq),
    run: (run) => writer.run(run),
    close: () => writer.close(),
    bulk: (firstSeq, count) =>
      writer.withClient(async (client) => {
        const startedAt = clockMillis();
        await client.query('BEGIN');
        try {
          await client.query(
            `INSERT INTO ${table} (tenant_id, seq, "sentAt", name, email, status)
               SELECT 't' || (s % $1::int), s, $2, 'Contact ' || s, 'contact' || s || '@example.com', 'active'
                 FROM generate_series($3::int, $4::int) AS s`,
            [topics, startedAt, firstSeq, firstSeq + count - 1],
          );
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
        const committedAt = clockMillis();
        const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        return { rows: count, startedAt, committedAt, walLsn: rows[0]?.lsn ?? '0/0' };
      }),
  };
}
