/**
 * The publication a reader streams, over a normal connection. Tributary's own lists only the
 * tables its mappings and WAL-mode outboxes read: Postgres refuses UPDATE and DELETE on a
 * published table that has no replica identity (no primary key, REPLICA IDENTITY NOTHING), so a
 * publication FOR ALL TABLES would break the application's writes to any such table of its own.
 * It is created with the tables mapped then (none: an empty publication), a table joins it when a
 * mapping of it is saved (`ensurePublicationIncludes`), and a comment marks it as Tributary's, so
 * that `removeCdcSource` may drop it (`publication-removal.ts`) — and only it.
 */
import pg from 'pg';
import { ErrorCode, InternalError, SqlState, TributaryError, sqlStateOf } from '../../../errors.ts';
import type { Logger } from '../../../logger.ts';

/** The comment on a publication Tributary created (`COMMENT ON PUBLICATION`). */
export const OWN_PUBLICATION_COMMENT = 'tributary: created by its CDC reader; dropped by removeCdcSource once no source reads the database';

const VIA_ROOT = 'publish_via_partition_root = true';

/**
 * Creates the publication when missing: for `tables` (`name` or `schema.name`, case-sensitive)
 * that exist, or, without `tables` (a reader used on its own, never a source's), FOR ALL TABLES —
 * publishing a partitioned table's changes under its own name (`publish_via_partition_root`):
 * otherwise pgoutput names each change's partition (`orders_eu`), which a mapping of `orders`
 * never matches. An existing publication is used as it is; `viaRoot` says whether it publishes
 * partitions that way.
 */
export async function ensurePublication(
  client: pg.ClientBase,
  name: string,
  tables: readonly string[] | undefined,
): Promise<{ created: boolean; viaRoot: boolean }> {
  const existing = await client.query<{ via_root: boolean }>('SELECT pubviaroot AS via_root FROM pg_publication WHERE pubname = $1', [name]);
  const row = existing.rows[0];
  if (row) return { created: false, viaRoot: row.via_root };
  let target = 'ALL TABLES ';
  if (tables !== undefined) {
    // A mapping of a table dropped since would fail the whole statement: it joins when it exists again and its mapping is saved.
    const { rows } = await client.query<{ table: string }>('SELECT t AS table FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL', [tables.map(quoteTableName)]);
    target = rows.length === 0 ? '' : `TABLE ${rows.map((r) => r.table).join(', ')} `;
  }
  const create = `CREATE PUBLICATION ${pg.escapeIdentifier(name)} ${target === '' ? '' : `FOR ${target}`}WITH (${VIA_ROOT})`;
  try {
    // One simple-protocol query, one transaction: never a publication of ours without its mark.
    await client.query(`${create}; COMMENT ON PUBLICATION ${pg.escapeIdentifier(name)} IS ${pg.escapeLiteral(OWN_PUBLICATION_COMMENT)}`);
    return { created: true, viaRoot: true };
  } catch (error) {
    // Another reader created it between our check and our CREATE.
    if (sqlStateOf(error) === SqlState.DUPLICATE_OBJECT) return { created: false, viaRoot: true };
    const message = error instanceof Error ? error.message : String(error);
    throw new TributaryError(
      ErrorCode.MISCONFIGURED,
      `could not create publication "${name}" (${message}); create it as a superuser or the tables' owner: ${create};` +
        (target === '' ? ' (it lists the mapped tables, none yet: a table joins it when its mapping is saved, or run ALTER PUBLICATION … ADD TABLE …)' : ''),
      { cause: error },
    );
  }
}

/**
 * Makes a publication Tributary created before it set `publish_via_partition_root` publish
 * partitioned tables under their own name (see `ensurePublication`). Needs the publication's owner.
 */
async function publishViaPartitionRoot(client: pg.ClientBase, name: string): Promise<void> {
  await client.query(`ALTER PUBLICATION ${pg.escapeIdentifier(name)} SET (${VIA_ROOT})`);
}

/** `publishViaPartitionRoot`, not fatal: only mappings of partitioned tables need it, and saving one says what to run then. */
export async function tryPublishViaPartitionRoot(client: pg.ClientBase, publication: string, logger: Logger): Promise<void> {
  try {
    await publishViaPartitionRoot(client, publication);
    logger.info({ publication }, 'publication now publishes partitioned tables under their own name');
  } catch (error) {
    logger.warn({ err: error, publication }, 'could not set publish_via_partition_root on the publication: changes of partitioned tables keep their partition names');
  }
}

/** Whether a publication streams a table's changes under the table's own name. */
export interface PublicationCoverage {
  /** The publication exists (a reader creates a missing one with the mapped tables). */
  readonly exists: boolean;
  /** Its changes arrive under this table's name (`pg_publication_tables` lists it). */
  readonly published: boolean;
  /** It publishes partitions' changes under their root table's name. */
  readonly viaRoot: boolean;
  /** The table is partitioned (its rows, and their changes, are in its partitions). */
  readonly partitioned: boolean;
  /** `schema.table` of the partitioned table this one is a partition of, or null. */
  readonly root: string | null;
  /** The publication is FOR ALL TABLES (an earlier version's, or a DBA's). @default false */
  readonly allTables?: boolean;
  /**
   * The columns its column list names (`pg_publication_tables.attnames`, Postgres 15+: pgoutput
   * sends the table as if it had only these); null when it publishes the table without a list, does
   * not publish it, or before Postgres 15. @default null
   */
  readonly columns?: readonly string[] | null;
  /** Its row filter of the table (`pg_publication_tables.rowfilter`, Postgres 15+), or null. @default null */
  readonly rowFilter?: string | null;
}

export async function publicationCoverage(client: pg.ClientBase, name: string, table: { schema: string; name: string }): Promise<PublicationCoverage> {
  const { rows } = await client.query<{
    exists: boolean;
    published: boolean;
    via_root: boolean;
    partitioned: boolean;
    root: string | null;
    all_tables: boolean;
    columns: string[] | null;
    row_filter: string | null;
  }>(
    // attnames through to_jsonb: the column is new in Postgres 15, and naming it would fail before.
    `SELECT p.oid IS NOT NULL AS exists, coalesce(p.pubviaroot, false) AS via_root, coalesce(p.puballtables, false) AS all_tables,
            EXISTS (SELECT 1 FROM pg_publication_tables t WHERE t.pubname = $1 AND t.schemaname = $2 AND t.tablename = $3) AS published,
            -- attnames names the published columns with a list or without one; prattrs is set only with one.
            CASE WHEN EXISTS (SELECT 1 FROM pg_publication_rel pr WHERE pr.prpubid = p.oid AND pr.prrelid = c.oid AND jsonb_typeof(to_jsonb(pr) -> 'prattrs') = 'array')
              THEN (SELECT to_jsonb(t) -> 'attnames' FROM pg_publication_tables t WHERE t.pubname = $1 AND t.schemaname = $2 AND t.tablename = $3) END AS columns,
            (SELECT to_jsonb(t) ->> 'rowfilter' FROM pg_publication_tables t WHERE t.pubname = $1 AND t.schemaname = $2 AND t.tablename = $3) AS row_filter,
            coalesce(c.relkind = 'p', false) AS partitioned,
            (SELECT format('%s.%s', rn.nspname, r.relname) FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace
              WHERE c.relispartition AND r.oid = pg_partition_root(c.oid)) AS root
       FROM (SELECT 1) AS one
       LEFT JOIN pg_publication p ON p.pubname = $1
       LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace) ON n.nspname = $2 AND c.relname = $3`,
    [name, table.schema, table.name],
  );
  const row = rows[0]!;
  return { exists: row.exists, published: row.published, viaRoot: row.via_root, partitioned: row.partitioned, root: row.root, allTables: row.all_tables, columns: row.columns, rowFilter: row.row_filter };
}

/**
 * Adds `schema.table` to an existing publication that does not publish it yet (a publication FOR
 * ALL TABLES already does). Changes committed after this are streamed for the table. Needs the
 * publication's and the table's owner (or a superuser): otherwise MISCONFIGURED with the statement.
 */
export async function ensurePublicationIncludes(client: pg.ClientBase, name: string, table: { schema: string; name: string }): Promise<{ added: boolean }> {
  const { rows } = await client.query<{ all_tables: boolean; included: boolean }>(
    `SELECT p.puballtables AS all_tables,
            EXISTS (SELECT 1 FROM pg_publication_tables t WHERE t.pubname = p.pubname AND t.schemaname = $2 AND t.tablename = $3) AS included
       FROM pg_publication p WHERE p.pubname = $1`,
    [name, table.schema, table.name],
  );
  const row = rows[0];
  if (!row) throw new InternalError('CDC_SETUP', `publication "${name}" does not exist`);
  if (row.all_tables || row.included) return { added: false };
  const target = `${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.name)}`;
  try {
    await client.query(`ALTER PUBLICATION ${pg.escapeIdentifier(name)} ADD TABLE ${target}`);
    return { added: true };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new TributaryError(
      ErrorCode.MISCONFIGURED,
      `could not add ${table.schema}.${table.name} to publication "${name}" (${message}); as its owner run: ALTER PUBLICATION ${pg.escapeIdentifier(name)} ADD TABLE ${target};`,
      { cause: error },
    );
  }
}

/**
 * The tables (`schema.table`, quoted as SQL needs, at most `limit`) on whose UPDATE and DELETE
 * Postgres fails because the publication, FOR ALL TABLES, publishes them and they have no replica
 * identity; empty for a publication of listed tables, or one that publishes neither.
 */
export async function unidentifiedPublishedTables(client: pg.ClientBase, name: string, limit = 20): Promise<string[]> {
  const { rows } = await client.query<{ table: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS table
       FROM pg_publication p, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE p.pubname = $1 AND p.puballtables AND (p.pubupdate OR p.pubdelete)
        AND c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
        AND (c.relreplident = 'n'
          OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
          OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
      ORDER BY 1 LIMIT $2`,
    [name, limit],
  );
  return rows.map((row) => row.table);
}

/** The warning of a publication FOR ALL TABLES that publishes `tables` (`unidentifiedPublishedTables`), with the fixes; undefined for none. */
export function allTablesWarning(name: string, tables: readonly string[]): string | undefined {
  if (tables.length === 0) return undefined;
  return (
    `publication "${name}" is FOR ALL TABLES, so Postgres refuses UPDATE and DELETE on every table of the database ` +
    `that has no replica identity, mapped or not: ${tables.join(', ')}. Fix: give each a primary key or run ` +
    `\`ALTER TABLE … REPLICA IDENTITY FULL;\`; or have the publication list the mapped tables only — one FOR ALL TABLES cannot ` +
    `be altered to (ALTER PUBLICATION … SET TABLE is refused), and its slot's pending changes need it: run removeCdcSource, ` +
    `then \`DROP PUBLICATION ${pg.escapeIdentifier(name)};\` as its owner, then setCdcSource, which creates it with the mapped tables`
  );
}

function quoteTableName(table: string): string {
  const dot = table.indexOf('.');
  if (dot < 0) return pg.escapeIdentifier(table);
  return `${pg.escapeIdentifier(table.slice(0, dot))}.${pg.escapeIdentifier(table.slice(dot + 1))}`;
}
