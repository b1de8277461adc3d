/**
 * Checking a mapping against its table's catalog entry, on save: what would make it misbehave on
 * this table, each problem with its fix.
 */
import { compiled } from './mapping-compile.ts';
import { type DomainMapping, mappingTable } from './mapping.ts';
import { quoteIdent } from './quote-ident.ts';

/** What `checkMappingAgainstTable` needs to know about the table, from the catalog. */
export interface TableShape {
  readonly replicaIdentity: 'default' | 'full' | 'nothing' | 'index';
  /** The replica identity's columns: the primary key's (with `index`: the identity index's). */
  readonly keyColumns: readonly string[];
  /**
   * The primary key's columns, empty when the table has none: the entity key of a mapping without
   * `key` (pass the same list to `evaluateMapping` as `primaryKey`).
   */
  readonly primaryKey: readonly string[];
  readonly columns: readonly string[];
  /**
   * Columns whose values Postgres may store out of line (TOAST: variable-length types whose
   * storage is not PLAIN), which an update that leaves them unchanged does not send without
   * REPLICA IDENTITY FULL. @default none
   */
  readonly toastableColumns?: readonly string[];
  /**
   * Generated columns, which pgoutput does not send (before Postgres 18, or without
   * `publish_generated_columns`): their absence from a change is no schema drift
   * (`mapping-drift.ts`). @default none
   */
  readonly generatedColumns?: readonly string[];
}

/**
 * Problems that would make the mapping misbehave on this table, each with its fix; empty when it
 * is fine. Save a mapping only when this is empty. Beyond unknown columns, it refuses a mapping
 * without an entity key (no `key` and no primary key) and what Postgres would not send
 * (ARCHITECTURE §6: without REPLICA IDENTITY FULL an update carries no old row and a delete only
 * the key): a tenant, topic value, condition or entity key that deletes cannot provide, and
 * `$old`/`changed` on non-key columns of updates. Updates always carry the whole new row, so a
 * key-changing update still yields the tenant (a row that moves to another tenant is announced
 * to the new one only). Payload values a delete lacks are merely left out (`mapping-evaluate.ts`)
 * and not a problem.
 */
export function checkMappingAgainstTable(mapping: DomainMapping, table: TableShape): string[] {
  const plan = compiled(mapping);
  const problems: string[] = [];
  const ref = mappingTable(mapping);
  const name = `${ref.schema}.${ref.name}`;
  const fullFix = `run \`ALTER TABLE ${quoteIdent(ref.schema)}.${quoteIdent(ref.name)} REPLICA IDENTITY FULL;\``;

  const columns = new Set(table.columns);
  const missing = new Map<string, string[]>();
  const note = (column: string, path: string) => {
    if (!columns.has(column)) missing.set(column, [...(missing.get(column) ?? []), path]);
  };
  for (const use of plan.uses) note(use.column, use.path);
  if (mapping.tenantColumn !== undefined) note(mapping.tenantColumn, 'tenantColumn');
  if (mapping.softDeleteColumn !== undefined) note(mapping.softDeleteColumn, 'softDeleteColumn');
  mapping.key?.forEach((column, i) => note(column, `key[${i}]`));
  for (const [column, paths] of missing) {
    problems.push(`column "${column}" does not exist in ${name} (used at ${paths.join(', ')})`);
  }

  const full = table.replicaIdentity === 'full';
  // What Postgres sends of an updated or deleted row besides the new row: the identity columns.
  const identity = full ? table.columns : table.replicaIdentity === 'nothing' ? [] : table.keyColumns;
  const handlesUpdate = mapping.events.includes('update');
  const handlesDelete = mapping.events.includes('delete');
  // The entity key falls back to the change's key columns: none without a replica identity, and
  // every column with FULL, which would change the key, and per-entity ordering, on every update.
  const keyless = mapping.key === undefined && table.primaryKey.length === 0 && (full || identity.length === 0);
  const keyFix = `Fix: add a primary key to ${name}, or set "key" to the columns that identify a row`;

  if (identity.length === 0) {
    if (handlesUpdate || handlesDelete) {
      const how = table.replicaIdentity === 'nothing' ? 'REPLICA IDENTITY NOTHING' : 'no primary key';
      problems.push(
        `${name} has no replica identity (${how}): Postgres refuses UPDATE and DELETE on a published table ` +
          `without one, so this mapping's update and delete events cannot happen. Fix: add a primary key, or ${fullFix}`,
      );
    }
    if (keyless) problems.push(`${name} has no primary key and the mapping sets no "key", so rows have no entity key. ${keyFix}`);
    return problems;
  }
  if (full) {
    if (keyless) {
      problems.push(
        `${name} has no primary key and the mapping sets no "key": with REPLICA IDENTITY FULL Postgres reports ` +
          `every column as the key, so the entity key, and with it per-entity ordering, would change with every update. ${keyFix}`,
      );
    }
    return problems;
  }

  const known = new Set(identity);
  const softDelete = mapping.softDeleteColumn;
  if (softDelete !== undefined && !known.has(softDelete)) {
    problems.push(
      `softDeleteColumn: updates on ${name} carry no old row without REPLICA IDENTITY FULL, so setting or clearing ` +
        `"${softDelete}" cannot be told from another update (no DELETED or CREATED would be announced). Fix: ${fullFix}`,
    );
  }
  const deletes = `without REPLICA IDENTITY FULL, deletes on ${name} carry only the key (${identity.join(', ')})`;
  if (handlesDelete) {
    const tenant = mapping.tenantColumn;
    if (tenant !== undefined && !known.has(tenant)) {
      problems.push(
        `tenantColumn: ${deletes}, not the tenant column "${tenant}", so a deleted row could not be routed to its ` +
          `tenant. Fix: ${fullFix} or make "${tenant}" part of the key (a primary key, or a unique index used with ` +
          'REPLICA IDENTITY USING INDEX, that includes it), or remove "delete" from events',
      );
    }
    mapping.key?.forEach((column, i) => {
      if (known.has(column)) return;
      problems.push(
        `key[${i}]: ${deletes}, so the entity key column "${column}" is unknown for deleted rows. ` +
          `Fix: ${fullFix} or use key columns among (${identity.join(', ')})`,
      );
    });
    // With REPLICA IDENTITY USING INDEX the default key, the primary key, may lie outside the index.
    if (mapping.key === undefined) {
      for (const column of table.primaryKey) {
        if (known.has(column)) continue;
        problems.push(
          `key: ${deletes}, so the primary key column "${column}", the default entity key, is unknown for deleted ` +
            `rows. Fix: ${fullFix} or set "key" to columns among (${identity.join(', ')})`,
        );
      }
    }
    for (const use of plan.uses) {
      if (use.in === 'payload' || use.source === 'changed' || known.has(use.column)) continue;
      const effect =
        use.in === 'topic' ? 'the topic cannot be built' : 'the condition can never hold and deletes would never be emitted';
      problems.push(
        `${use.path}: ${deletes}, so "${use.column}" is unknown for deleted rows: ${effect}. ` +
          `Fix: ${fullFix} or map deletes in a separate mapping that does not read "${use.column}"`,
      );
    }
  }
  if (handlesUpdate) {
    for (const use of plan.uses) {
      if (use.source === 'row' || known.has(use.column)) continue;
      const effect =
        use.source === 'changed' ? '"changed" would hold for every update' : `$old.${use.column} is never known on updates`;
      const updates = `updates on ${name} carry no old row without REPLICA IDENTITY FULL`;
      problems.push(`${use.path}: ${updates}, so ${effect}. Fix: ${fullFix}`);
    }
  }
  return [...new Set(problems)];
}

/** Always quoted: exact for any catalog name, reserved words (`user`, `order`) included. */

/**
 * What the mapping will do on this table that its admin may not expect, without being wrong
 * enough to refuse it: saved anyway, answered and logged. Without REPLICA IDENTITY FULL an update
 * does not send a large (TOASTed) value it left unchanged: the change's record then lacks the
 * column and lists it in `unchangedColumns` (subscribers keep the value they hold).
 */
export function checkMappingWarnings(mapping: DomainMapping, table: TableShape): string[] {
  const columns = table.toastableColumns ?? [];
  // FULL sends every value; with NOTHING Postgres refuses updates of a published table (a problem, above).
  if (table.replicaIdentity === 'full' || table.replicaIdentity === 'nothing' || columns.length === 0 || !mapping.events.includes('update')) return [];
  const ref = mappingTable(mapping);
  const name = `${ref.schema}.${ref.name}`;
  const listed = columns.map((column) => `"${column}"`).join(', ');
  return [
    `${name} is not REPLICA IDENTITY FULL, so an update that leaves a large (TOASTed, over about 2 KB) value of ` +
      `${listed} unchanged does not send it: the change's record lacks the column and lists it in unchangedColumns ` +
      '(subscribers keep the value they hold), a payload reference to it is left out, a "when" comparing it emits ' +
      'nothing, and a topic template reading it cannot be built. ' +
      `To always send whole rows, run \`ALTER TABLE ${quoteIdent(ref.schema)}.${quoteIdent(ref.name)} REPLICA IDENTITY FULL;\` ` +
      '(every update and delete then logs the old row: more WAL)',
  ];
}
