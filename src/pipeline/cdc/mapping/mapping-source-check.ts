/**
 * Checking a mapping against the source database it will be read from, on save: its table's
 * catalog entry (`mapping-check.ts`: problems, and warnings of what is saved anyway), and whether
 * the source's publication streams the table's changes under the name the mapping matches —
 * pgoutput names a change by the table it is published as, so a table left out of a user's
 * publication, or a partitioned table whose partitions are published under their own names,
 * would be accepted and then never deliver.
 */
import type pg from 'pg';
import { ErrorCode, TributaryError } from '../../../errors.ts';
import type { TableRef } from '../row-change.ts';
import { identifyDatabase, type DatabaseIdentity } from '../wal/replication-names.ts';
import { allTablesWarning, ensurePublication, ensurePublicationIncludes, publicationCoverage, unidentifiedPublishedTables, type PublicationCoverage } from '../wal/publication.ts';
import { checkMappingAgainstTable, checkMappingWarnings, type TableShape } from './mapping-check.ts';
import { listColumns, missingColumns } from './mapping-drift.ts';
import { mappingTable, type DomainMapping } from './mapping.ts';
import { quoteIdent } from './quote-ident.ts';
import { describePartitions, describeTable } from './table-catalog.ts';

/** The mapping checked against its source database. */
export interface SourceCheck {
  /** What would make it misbehave, each with its fix: save it only when this is empty. */
  readonly problems: readonly string[];
  /** What it will do that its admin may not expect (`checkMappingWarnings`): said, not refused. */
  readonly warnings: readonly string[];
}

/**
 * The mapping checked against the source `client` is connected to. `publicationOf` names the
 * publication its reader uses on that database. With `publish`, a table the publication leaves
 * out joins it when the role may (otherwise a problem names the statement): pass it only when
 * nothing else refuses the mapping. @throws MISCONFIGURED when the role may not read the table.
 */
export async function checkSource(
  client: pg.ClientBase,
  mapping: DomainMapping,
  publicationOf: (identity: DatabaseIdentity) => string,
  publish = true,
): Promise<SourceCheck> {
  const table = mappingTable(mapping);
  const shape = await describeTable(client, table);
  if (!shape) return { problems: [`table ${mapping.table} does not exist in the source database`], warnings: [] };
  await assertReadable(client, table);
  const publicationName = publicationOf(await identifyDatabase(client));
  const coverage = await publicationCoverage(client, publicationName, table);
  const partitions = await describePartitions(client, table);
  const problems = [...checkMappingAgainstTable(mapping, shape), ...partitionProblems(mapping, table, partitions)];
  const warnings = [...checkMappingWarnings(mapping, shape), ...partitions.flatMap((p) => checkMappingWarnings(asPartition(mapping, p.table), p.shape))];
  // A table the publication leaves out, and may take, joins it below: no problem of its own unless that fails.
  if (!isAddable(coverage)) problems.push(...publicationProblems(mapping, publicationName, coverage));
  // Published, an identity-less table makes Postgres refuse the application's UPDATE and DELETE on it, whatever the
  // mapping reads (one that maps updates or deletes is refused for it above already).
  const unidentified = [{ table, shape }, ...partitions].filter((entry) => !hasReplicaIdentity(entry.shape)).map((entry) => `${entry.table.schema}.${entry.table.name}`);
  const insertsOnly = !mapping.events.includes('update') && !mapping.events.includes('delete');
  if (!coverage.published && insertsOnly && unidentified.length > 0) {
    problems.push(
      `publishing ${unidentified.join(', ')}, which has no replica identity, would make Postgres refuse every UPDATE and DELETE on it. ` +
        'Fix: add a primary key, or run `ALTER TABLE … REPLICA IDENTITY FULL;`',
    );
  }
  problems.push(...columnListProblems(mapping, publicationName, coverage, partitions.length > 0 ? partitions.map((p) => p.shape) : [shape]));
  warnings.push(...columnListWarnings(mapping, publicationName, coverage, shape));
  if (coverage.allTables === true) {
    const warning = allTablesWarning(publicationName, await unidentifiedPublishedTables(client, publicationName));
    if (warning !== undefined) warnings.push(warning);
  }
  // No publication yet: its reader, setting up on its own schedule, would create it with the tables
  // mapped when it looks — this one is not, until its save is loaded — and then never add it. The
  // save creates it with this table (or, the reader first, adds the table to the reader's). A role
  // that may create neither leaves it to the reader, whose status then says what to run.
  if (problems.length === 0 && publish && !coverage.exists) {
    await ensurePublication(client, publicationName, [`${table.schema}.${table.name}`])
      .then(() => ensurePublicationIncludes(client, publicationName, table))
      .catch(() => undefined);
  }
  if (problems.length === 0 && publish && isAddable(coverage)) {
    try {
      await ensurePublicationIncludes(client, publicationName, table);
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      const [problem] = publicationProblems(mapping, publicationName, coverage);
      problems.push(`${problem} (the role may not add it: ${cause}), as the publication's and the table's owner`);
    }
  }
  return { problems: [...new Set(problems)], warnings: [...new Set(warnings)] };
}

/** What prefixes a problem found after the save (`savedMappingWarnings`). */
const TABLE_CHANGED = 'the table changed since the mapping was saved: ';

/**
 * A saved mapping's warnings read from its table now (`CdcMapping.warnings` after the save): what
 * its save would refuse now — a column dropped or renamed, a replica identity lost, also on a
 * partition — each prefixed with {@link TABLE_CHANGED} (a saved mapping had none: the table changed
 * since), then the warnings of its save (`checkMappingWarnings`). Undefined when there is no such table.
 */
export async function savedMappingWarnings(client: pg.ClientBase, mapping: DomainMapping): Promise<string[] | undefined> {
  const table = mappingTable(mapping);
  const shape = await describeTable(client, table);
  if (!shape) return undefined;
  const problems = [...checkMappingAgainstTable(mapping, shape), ...partitionProblems(mapping, table, await describePartitions(client, table))];
  return [...new Set([...problems.map((problem) => `${TABLE_CHANGED}${problem}`), ...checkMappingWarnings(mapping, shape)])];
}

/** `records` and snapshots read the table as the source's role: without SELECT they would fail at every read. */
async function assertReadable(client: pg.ClientBase, table: TableRef): Promise<void> {
  const { rows } = await client.query<{ readable: boolean; role: string }>(
    `SELECT has_table_privilege(format('%I.%I', $1::text, $2::text), 'SELECT') AS readable, current_user AS role`,
    [table.schema, table.name],
  );
  const row = rows[0]!;
  if (row.readable) return;
  const grant = `GRANT SELECT ON ${quoteIdent(table.schema)}.${quoteIdent(table.name)} TO ${quoteIdent(row.role)};`;
  throw new TributaryError(
    ErrorCode.MISCONFIGURED,
    `role "${row.role}" may not read ${table.schema}.${table.name}, so \`records\` of its model would fail. Fix: run \`${grant}\` as the table's owner`,
    { details: { field: 'mapping', reason: 'NO_SELECT_PRIVILEGE', role: row.role } },
  );
}

/**
 * A publication's column list (Postgres 15+) that leaves out a column Postgres or the mapping needs:
 * a replica identity column of a table whose rows it publishes (a partitioned table's partitions,
 * each with its own identity) — Postgres then refuses every UPDATE and DELETE there; with REPLICA
 * IDENTITY FULL every column is one, and a generated column, which no list may name, leaves only
 * publishing the table without one —, or a column the mapping routes or judges a change by, or
 * builds its topic from — every change would be unroutable (`column-missing`, `mapping-drift.ts`),
 * or lose its topic's event. Each with the statements that fix the list, its row filter kept.
 */
function columnListProblems(mapping: DomainMapping, publication: string, coverage: PublicationCoverage, rowTables: readonly TableShape[]): string[] {
  const listed = coverage.published ? coverage.columns : undefined;
  if (!listed) return [];
  const [shape] = rowTables;
  if (!shape) return [];
  const present = new Set([...listed, ...(shape.generatedColumns ?? [])]);
  const identityOf = (table: TableShape) => (table.replicaIdentity === 'full' ? table.columns : table.replicaIdentity === 'nothing' ? [] : table.keyColumns);
  const unlistable = rowTables.some((table) => table.replicaIdentity === 'full' && (table.generatedColumns ?? []).length > 0);
  const identity = [...new Set(rowTables.flatMap((table) => identityOf(table).filter((column) => !present.has(column))))];
  const routing = missingColumns(mapping, listed, shape);
  const topic = missingColumns(mapping, listed, shape, 'topic');
  if (!unlistable && identity.length + routing.size + topic.size === 0) return [];
  const ref = mappingTable(mapping);
  const needed = new Set([...listed, ...identity, ...routing.keys(), ...topic.keys()]);
  const fix = columnListFix(publication, ref, unlistable ? undefined : shape.columns.filter((column) => needed.has(column)), coverage.rowFilter ?? null);
  const leaves = `publication "${publication}" publishes ${ref.schema}.${ref.name} with a column list that leaves out`;
  const problems: string[] = [];
  if (unlistable) {
    problems.push(
      `publication "${publication}" publishes ${ref.schema}.${ref.name} with a column list, and REPLICA IDENTITY FULL of a table with generated columns ` +
        `needs every column, which no list may name: Postgres refuses every UPDATE and DELETE on the table. ${fix}`,
    );
  } else if (identity.length > 0) {
    problems.push(`${leaves} ${identity.map((column) => `"${column}"`).join(', ')} of its rows' replica identity, so Postgres refuses every UPDATE and DELETE on them. ${fix}`);
  }
  if (routing.size > 0) problems.push(`${leaves} ${listColumns(routing)}, so every change would be unroutable (column-missing) and none delivered. ${fix}`);
  if (topic.size > 0) problems.push(`${leaves} ${listColumns(topic)}, so no change could build its topic and none would be published on it. ${fix}`);
  return problems;
}

/**
 * The fix of a column list: one transaction, so that no change is committed while the table is out
 * of the publication, with `columns` (none: without a list) and the row filter it had.
 */
function columnListFix(publication: string, table: TableRef, columns: readonly string[] | undefined, rowFilter: string | null): string {
  const target = `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
  const list = columns === undefined ? '' : ` (${columns.map(quoteIdent).join(', ')})`;
  const where = rowFilter === null ? '' : ` WHERE (${rowFilter})`;
  const added = columns === undefined ? 'without a column list' : '(or add the table back without a column list)';
  return (
    `Fix: run \`BEGIN; ALTER PUBLICATION ${quoteIdent(publication)} DROP TABLE ${target}; ` +
    `ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${target}${list}${where}; COMMIT;\`` +
    (columns === undefined ? ` (the table ${added})` : ` ${added}`)
  );
}

/** The columns only the payload reads that a column list leaves out: the payload never has them. */
function columnListWarnings(mapping: DomainMapping, publication: string, coverage: PublicationCoverage, shape: TableShape): string[] {
  if (!coverage.published || !coverage.columns) return [];
  const missing = missingColumns(mapping, coverage.columns, shape, 'payload');
  if (missing.size === 0) return [];
  const ref = mappingTable(mapping);
  return [`publication "${publication}" publishes ${ref.schema}.${ref.name} with a column list that leaves out ${listColumns(missing)}: no change carries its value, and the payload leaves it out`];
}

/** Postgres sends each partition's changes with that partition's replica identity: the root's checks, for each. */
function partitionProblems(mapping: DomainMapping, root: TableRef, partitions: readonly { table: TableRef; shape: TableShape }[]): string[] {
  const rootName = `${root.schema}.${root.name}`;
  return partitions.flatMap(({ table, shape }) =>
    checkMappingAgainstTable(asPartition(mapping, table), shape).map(
      (problem) => `partition ${table.schema}.${table.name} of ${rootName} (REPLICA IDENTITY is each partition's own, set on every one, future ones too): ${problem}`,
    ),
  );
}

function asPartition(mapping: DomainMapping, table: TableRef): DomainMapping {
  return { ...mapping, table: `${table.schema}.${table.name}` };
}

function hasReplicaIdentity(shape: TableShape): boolean {
  return shape.replicaIdentity === 'full' || (shape.replicaIdentity !== 'nothing' && shape.keyColumns.length > 0);
}

/** A table the publication leaves out that `ALTER PUBLICATION … ADD TABLE` makes it stream under its own name. */
function isAddable(coverage: PublicationCoverage): boolean {
  return coverage.exists && !coverage.published && !(coverage.partitioned && !coverage.viaRoot) && !(coverage.root !== null && coverage.viaRoot);
}

/** Problems of a mapping whose table `coverage` describes in publication `publication`. */
export function publicationProblems(mapping: DomainMapping, publication: string, coverage: PublicationCoverage): string[] {
  // A missing publication is created by the reader with the mapped tables, partitions under their root.
  if (!coverage.exists || coverage.published) return [];
  const ref = mappingTable(mapping);
  const name = `${ref.schema}.${ref.name}`;
  const undelivered = 'so none of its changes would be delivered';
  if (coverage.partitioned && !coverage.viaRoot) {
    return [
      `${name} is partitioned, and publication "${publication}" publishes its changes under each partition's name, ` +
        `which this mapping does not match, ${undelivered}. Fix: run \`ALTER PUBLICATION ${quoteIdent(publication)} SET (publish_via_partition_root = true);\``,
    ];
  }
  if (coverage.root !== null && coverage.viaRoot) {
    return [`${name} is a partition of ${coverage.root}, and publication "${publication}" publishes its changes as ${coverage.root}'s, ${undelivered}. Fix: map ${coverage.root}`];
  }
  return [
    `publication "${publication}" does not include ${name}, ${undelivered}. ` +
      `Fix: run \`ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${quoteIdent(ref.schema)}.${quoteIdent(ref.name)};\``,
  ];
}

