import type pg from 'pg';
import type { TableShape } from './mapping-check.ts';
import type { TableRef } from '../row-change.ts';

/**
 * What a source database's catalog says about a table: its columns, primary key and replica
 * identity (what Postgres sends for updates and deletes), which columns may be TOASTed (a
 * variable-length type not stored PLAIN: `attlen = -1`, `attstorage <> 'p'`) and which are
 * generated. Undefined when there is no such table.
 */
export async function describeTable(client: pg.ClientBase, table: TableRef): Promise<TableShape | undefined> {
  const { rows } = await client.query<{ identity: string; columns: string[]; toastable: string[]; generated: string[]; primary_key: string[]; identity_index: string[] }>(
    `SELECT c.relreplident AS identity,
            array(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
            array(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attlen = -1 AND a.attstorage <> 'p'
                   ORDER BY a.attnum) AS toastable,
            array(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '' ORDER BY a.attnum) AS generated,
            array(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                   WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY a.attnum) AS primary_key,
            array(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                   WHERE i.indrelid = c.oid AND i.indisreplident ORDER BY a.attnum) AS identity_index
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [table.schema, table.name],
  );
  const row = rows[0];
  if (!row) return undefined;
  const replicaIdentity = ({ d: 'default', f: 'full', n: 'nothing', i: 'index' } as const)[row.identity as 'd' | 'f' | 'n' | 'i'];
  const keyColumns =
    replicaIdentity === 'default' ? row.primary_key : replicaIdentity === 'index' ? row.identity_index : replicaIdentity === 'full' ? row.columns : [];
  return { replicaIdentity, keyColumns, primaryKey: row.primary_key, columns: row.columns, toastableColumns: row.toastable, generatedColumns: row.generated };
}

/**
 * The leaf partitions of a partitioned table (none for another table), each with its catalog
 * entry: Postgres sends a change with the replica identity of the partition that holds the row,
 * not its root's, and REPLICA IDENTITY set on the root reaches no partition.
 */
export async function describePartitions(client: pg.ClientBase, table: TableRef): Promise<{ table: TableRef; shape: TableShape }[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_partition_tree(to_regclass(format('%I.%I', $1::text, $2::text))) AS t
       JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE t.isleaf AND t.level > 0 ORDER BY n.nspname, c.relname`,
    [table.schema, table.name],
  );
  const partitions: { table: TableRef; shape: TableShape }[] = [];
  for (const partition of rows) {
    const shape = await describeTable(client, partition);
    if (shape) partitions.push({ table: partition, shape });
  }
  return partitions;
}
