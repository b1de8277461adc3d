import { Kind, type GraphQLResolveInfo, type ValueNode } from 'graphql';
import { canAccessTopic } from '../auth/permissions.ts';
import { badUserInput } from '../errors.ts';
import type { CdcSourceStatus } from '../pipeline/cdc/cdc-source.ts';
import type { CdcSourceRecord, StoredMapping } from '../pipeline/cdc/cdc-store.ts';
import { unchangedColumnsOf } from '../pipeline/cdc/mapping/mapped-events.ts';
import { savedMappingWarnings } from '../pipeline/cdc/mapping/mapping-source-check.ts';
import { modelTopic } from '../pipeline/cdc/mapping/mapping-topics.ts';
import { MAPPING_NAME, MAPPING_NAME_TEXT, parseMapping } from '../pipeline/cdc/mapping/mapping.ts';
import { isValidSlotName } from '../pipeline/cdc/wal/replication-setup.ts';
import { decodeSnapshotCursor, isSnapshotCursor, snapshotAdmission, type ModelSnapshot } from '../pipeline/cdc/model-snapshot-cursor.ts';
import { matchesModelFilter, parseModelFilter, type ModelFilter } from '../pipeline/filters/model-filter.ts';
import { assertFilterColumns } from '../pipeline/cdc/model-filter-columns.ts';
import type { RealtimeEvent } from '../pipeline/events/envelope.ts';
import { readModelChange, type ModelChangePayload } from '../pipeline/events/model-change.ts';
import { dispatchTicket, type DispatchTicket } from '../pipeline/dispatch/subscription-contract.ts';
import { scopeOf } from '../pipeline/scope.ts';
import { streamOf } from '../pipeline/stream.ts';
import type { ResolverContext } from './context.ts';
import { databaseLocation, parseDatabaseUrl } from './database-url.ts';
import { MODEL_NAME } from './model-name.ts';
import { requireEnvironmentAdmin } from './require-admin.ts';

/** A source as the API shows it: where it points, never its password. */
export interface CdcSourceView {
  readonly host: string;
  readonly database: string;
  readonly user: string;
  readonly updatedAt: Date;
  readonly status: CdcSourceStatus | undefined;
}

export interface SetCdcSourceInput {
  readonly databaseUrl: string;
  /** The source's own slot name; absent or null: derived from the database's identity. */
  readonly slotName?: string | null;
  /** The source's own publication name; absent or null: derived like the slot's. */
  readonly publicationName?: string | null;
}

/** `setCdcSource` (admin): points the caller's environment at a database, after checking it can replicate. */
export async function setCdcSource(context: ResolverContext, input: SetCdcSourceInput): Promise<CdcSourceView> {
  const { databaseUrl } = input;
  const { principal, services } = context;
  requireEnvironmentAdmin(principal);
  // Checked before anything connects: pg reads files the URL names, and lets it redirect the connection.
  parseDatabaseUrl(databaseUrl);
  const scope = scopeOf(principal);
  const saved = await services.cdc.setSource(scope, databaseUrl, { slotName: input.slotName ?? null, publicationName: input.publicationName ?? null });
  return viewOf(saved, await services.cdc.status(scope));
}

export async function removeCdcSource(context: ResolverContext): Promise<boolean> {
  requireEnvironmentAdmin(context.principal);
  const scope = scopeOf(context.principal);
  return context.services.cdc.removeSource(scope);
}

/** `dropCdcSlot` (admin): drops another Tributary slot of the environment's source database (`pipeline/cdc/other-slot-drop.ts`). */
export async function dropCdcSlot(context: ResolverContext, slotName: string): Promise<boolean> {
  requireEnvironmentAdmin(context.principal);
  if (!isValidSlotName(slotName)) throw badUserInput('slotName', 'slotName must be 1–63 lower-case letters, digits and underscores', { reason: 'NOT_TRIBUTARY_SLOT' });
  return context.services.cdc.dropSlot(scopeOf(context.principal), slotName);
}

export async function getCdcSource(context: ResolverContext): Promise<CdcSourceView | null> {
  requireEnvironmentAdmin(context.principal);
  const scope = scopeOf(context.principal);
  const source = await context.services.cdcStore.getSource(scope.app, scope.env);
  return source ? viewOf(source, await context.services.cdc.status(scope)) : null;
}

/** A mapping as the API shows it; `warnings` when the table was read for it (on save). */
export type CdcMappingView = StoredMapping & { readonly warnings?: readonly string[] };

/**
 * `saveCdcMapping` (admin): validated as JSON, then against the table in the source database.
 * What it will do there that its admin may not expect (`checkMappingWarnings`) is answered in
 * `warnings` and logged: saved anyway.
 */
export async function saveCdcMapping(context: ResolverContext, input: unknown): Promise<CdcMappingView> {
  requireEnvironmentAdmin(context.principal);
  const scope = scopeOf(context.principal);
  const mapping = parseMapping(input);
  const warnings = await context.services.cdc.checkMapping(scope, mapping);
  const saved = await context.services.cdcStore.saveMapping(scope.app, scope.env, mapping);
  await context.services.cdc.reload();
  if (warnings.length > 0) {
    const { app, env } = scope;
    context.services.logger.warn({ app, env, mapping: mapping.name, table: mapping.table, warnings }, 'CDC mapping saved with warnings');
  }
  return { ...saved, warnings };
}

/**
 * `CdcMapping.warnings`: those of its save, else read from its table now — what its save would
 * refuse now (the table changed since: a column dropped or renamed, the replica identity lost) and
 * what it would warn of (`savedMappingWarnings`); null when the table cannot be read now (no source,
 * a source not reached, the model not loaded yet, no such table).
 */
export async function mappingWarnings(context: ResolverContext, view: CdcMappingView): Promise<readonly string[] | null> {
  if (view.warnings !== undefined) return view.warnings;
  const { mapping } = view;
  const source = await context.services.cdc.modelSource(scopeOf(context.principal), mapping.model);
  if (source === undefined) return null;
  try {
    return (await source.connections.withClient((client) => savedMappingWarnings(client, mapping))) ?? null;
  } catch (error) {
    context.services.logger.debug({ err: error, mapping: mapping.name }, "a mapping's table could not be read for its warnings");
    return null;
  }
}

export async function deleteCdcMapping(context: ResolverContext, name: string): Promise<boolean> {
  requireEnvironmentAdmin(context.principal);
  if (!MAPPING_NAME.test(name)) throw badUserInput('name', `Invalid mapping name: ${MAPPING_NAME_TEXT}`);
  const scope = scopeOf(context.principal);
  const deleted = await context.services.cdcStore.deleteMapping(scope.app, scope.env, name);
  await context.services.cdc.reload();
  return deleted;
}

export async function listCdcMappings(context: ResolverContext): Promise<StoredMapping[]> {
  requireEnvironmentAdmin(context.principal);
  return context.services.cdcStore.listMappings(scopeOf(context.principal));
}

export interface ChangesInput {
  readonly model: string;
  readonly filter?: unknown;
  readonly after?: string | null;
}

/**
 * `changes(model)`: the model stream of the caller's tenant, filtered on the full record. Needs
 * `{module}.{model}.read`; without it — or for a model no mapping defines — the subscription is
 * silent, the same as a model without changes, and the refusal is logged and counted. `after`
 * takes an event's cursor, or the `cursor` of `records`: then the changes its snapshot already
 * reflects are skipped (`pipeline/cdc/model-snapshot-cursor.ts`). A filter on a column the model's
 * table does not have is refused (BAD_USER_INPUT) once the permission is granted, never before
 * (`pipeline/cdc/model-filter-columns.ts`).
 */
export async function subscribeChanges(context: ResolverContext, input: ChangesInput): Promise<DispatchTicket> {
  const { principal, services } = context;
  if (!MODEL_NAME.test(input.model)) throw badUserInput('model', 'model must be 1–63 letters, digits, _ or -, starting with a letter');
  const filter = parseModelFilter(input.filter ?? null);
  const scope = scopeOf(principal);
  const mapping = services.cdc.modelMapping(scope, input.model);
  const topic = mapping ? modelTopic(mapping) : `model.${input.model}`;
  const denied = !mapping || !canAccessTopic(principal, 'read', topic);
  if (denied) {
    services.metrics.subscriptionsDenied.inc({ field: 'changes' });
    services.logger.debug({ subject: principal.subject, tenant: principal.tenant, model: input.model }, 'subscription denied silently');
  } else {
    await assertFilterColumns({
      filter,
      model: input.model,
      source: () => services.cdc.modelSource(scope, input.model),
      mappings: async () => (await services.cdcStore.listMappings(scope)).map((stored) => stored.mapping),
      logger: services.logger,
    });
  }
  const snapshot = denied ? undefined : snapshotOf(input.after);
  return dispatchTicket({
    stream: streamOf(scope, topic),
    // Only the CDC reader's events, the only ones that carry their WAL transaction: neither a
    // socket `publish` nor an outbox row (source `database` too) on the same topic poses as a row change.
    filter: (event) => event.source === 'database' && event.metadata.transaction !== undefined && (filter.clauses.length === 0 || concerns(filter, event)),
    after: snapshot?.after ?? input.after ?? undefined,
    denied,
    admit: snapshot && snapshotAdmission(snapshot),
    readableBy: (next) => canAccessTopic(next, 'read', topic),
  });
}

/**
 * Whether a change concerns a filtered subscriber, who may hold the row: an insert that matches;
 * every update (`changeFor` tells how: one that matches, or that the filter cannot judge, is
 * UPDATED; one that is definitely outside the filter is LEFT — the row may have left it); every
 * delete.
 *
 * A delete is not judged by its record: for a soft delete (an UPDATE that sets the soft-delete
 * column) the record is the *new* row, which the same statement may have moved out of the filter
 * (`SET deleted_at = now(), status = 'archived'`) while the subscriber still holds the row as it
 * matched; a hard delete without REPLICA IDENTITY FULL carries the key only. Dropping such a
 * delete would leave a deleted row on the subscriber's list for good.
 *
 * An update may lack a filtered column: Postgres does not send a TOASTed (large) value the update
 * left unchanged unless the table has REPLICA IDENTITY FULL, and a column may have been added
 * later. Such an update is delivered, not dropped: dropping it would leave the subscriber's copy
 * of a row it holds stale, silently. A subscriber that does not hold the row gets an update or a
 * delete it can ignore by its `id`, the lesser harm (it stays within the tenant and the permission).
 */
function concerns(filter: ModelFilter, event: RealtimeEvent): boolean {
  const operation = event.payload['operation'];
  if (operation === 'UPDATED' || operation === 'DELETED') return true;
  return matchesModelFilter(filter, recordOf(event.payload));
}

/** A model change as one `changes` subscription sees it. */
export type ChangeView = Omit<ModelChangePayload, 'operation'> & {
  readonly operation: ModelChangePayload['operation'] | 'LEFT';
  /** Columns `record` lacks because Postgres did not send them (`mapped-events.ts`); empty when it is the whole row. */
  readonly unchangedColumns: readonly string[];
};

/** Filters parsed once per filter argument or written value (`parsedFilterFor`). */
const parsedFilters = new WeakMap<object, ModelFilter>();
/** Per written value holding a variable: its parsed filters by the argument's JSON, a few variable values each. */
const parsedByValue = new WeakMap<object, Map<string, ModelFilter>>();
const VALUES_PER_WRITTEN_FILTER = 64;

/**
 * A `changes` field's filter, parsed once per operation rather than at every update it judges.
 * GraphQL builds the argument's object anew at every resolve from a value written in the document
 * (inline), so that object is no key: a 9 KB filter took ~0.25 ms to parse, per cohort and event.
 * A written value without variables is the key itself (every operation of that document text
 * shares it: the parse cache); one with a variable inside (`{status: $s}`) keys its filters by the
 * argument's JSON, the variables' values differing between operations of the same text; a filter
 * passed as a variable is its value's object, the same at every resolve.
 */
export function parsedFilterFor(info: Pick<GraphQLResolveInfo, 'fieldNodes'>, filterArgument: object): ModelFilter {
  const written = info.fieldNodes[0]?.arguments?.find((argument) => argument.name.value === 'filter')?.value;
  if (written !== undefined && written.kind !== Kind.VARIABLE && holdsVariable(written)) {
    let byValue = parsedByValue.get(written);
    if (byValue === undefined) parsedByValue.set(written, (byValue = new Map<string, ModelFilter>()));
    const json = JSON.stringify(filterArgument);
    let filter = byValue.get(json);
    if (filter === undefined) {
      if (byValue.size >= VALUES_PER_WRITTEN_FILTER) byValue.clear();
      byValue.set(json, (filter = parseModelFilter(filterArgument)));
    }
    return filter;
  }
  const key = written !== undefined && written.kind !== Kind.VARIABLE ? written : filterArgument;
  let filter = parsedFilters.get(key);
  if (filter === undefined) parsedFilters.set(key, (filter = parseModelFilter(filterArgument)));
  return filter;
}

function holdsVariable(node: ValueNode): boolean {
  if (node.kind === Kind.VARIABLE) return true;
  if (node.kind === Kind.LIST) return node.values.some(holdsVariable);
  if (node.kind === Kind.OBJECT) return node.fields.some((field) => holdsVariable(field.value));
  return false;
}

/**
 * The change as a `changes(filter)` subscription sees it (rendered once per cohort: synchronous,
 * the event and the field's arguments only): an update whose row is outside the filter is LEFT,
 * without its record — a row that left the filter must leave the subscriber's list. `info`: the
 * field's, to find its parsed filter (`parsedFilterFor`); without it the filter is parsed anew.
 */
export function changeFor(event: RealtimeEvent, filterArgument: unknown, info?: Pick<GraphQLResolveInfo, 'fieldNodes'>): ChangeView {
  const change = { ...readModelChange(event), unchangedColumns: unchangedColumnsOf(event) };
  if (change.operation !== 'UPDATED' || typeof filterArgument !== 'object' || filterArgument === null) return change;
  const filter = info ? parsedFilterFor(info, filterArgument) : parseModelFilter(filterArgument);
  const record = recordOf(event.payload);
  if (matchesModelFilter(filter, record) || !outsideFilter(filter, record)) return change;
  return { ...change, operation: 'LEFT', record: null, unchangedColumns: [] };
}

/**
 * Whether a record is outside the filter whatever the columns it lacks hold: a column it has fails
 * its clause (the clauses are AND-combined). A record that only lacks columns cannot be judged —
 * it may still match — and is not outside (see `concerns`).
 */
function outsideFilter(filter: ModelFilter, record: Readonly<Record<string, unknown>>): boolean {
  return filter.clauses.some((clause) => Object.hasOwn(record, clause.column) && !matchesModelFilter({ clauses: [clause] }, record));
}

/** A snapshot cursor's parts; undefined for an event cursor, or for garbage (the dispatcher then refuses it as it refuses any bad cursor). */
function snapshotOf(after: string | null | undefined): ModelSnapshot | undefined {
  if (typeof after !== 'string' || !isSnapshotCursor(after)) return undefined;
  try {
    return decodeSnapshotCursor(after);
  } catch {
    return undefined;
  }
}

function recordOf(payload: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  const record = payload['record'];
  return typeof record === 'object' && record !== null ? (record as Record<string, unknown>) : {};
}

function viewOf(source: CdcSourceRecord, status: CdcSourceStatus | undefined): CdcSourceView {
  return {
    ...databaseLocation(new URL(source.databaseUrl)),
    updatedAt: source.updatedAt,
    status,
  };
}
