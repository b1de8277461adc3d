import { canAccessTopic } from '../auth/permissions.ts';
import { badUserInput, ErrorCode, TributaryError } from '../errors.ts';
import { modelTopic } from '../pipeline/cdc/mapping/mapping-topics.ts';
import {
  DEFAULT_RECORDS_PAGE,
  MAX_RECORDS_PAGE,
  readModelRecords,
  type ModelRecordsPage,
} from '../pipeline/cdc/model-records.ts';
import { MAX_RECORDS_IDS } from '../pipeline/cdc/model-records-by-id.ts';
import { decodePageCursor, encodeSnapshotCursor } from '../pipeline/cdc/model-snapshot-cursor.ts';
import { parseModelFilter } from '../pipeline/filters/model-filter.ts';
import { assertFilterColumns } from '../pipeline/cdc/model-filter-columns.ts';
import { encodeCursor, newEpoch } from '../pipeline/log/cursor.ts';
import { scopeOf } from '../pipeline/scope.ts';
import { streamOf } from '../pipeline/stream.ts';
import type { ResolverContext } from './context.ts';
import { MODEL_NAME } from './model-name.ts';

export interface RecordsInput {
  readonly model: string;
  readonly filter?: unknown;
  readonly first?: number | null;
  readonly after?: string | null;
  readonly ids?: readonly (string | number)[] | null;
}

/**
 * `records(model)`: a page of the model's current rows in the caller's tenant, and the cursor to
 * join `changes` from (see `pipeline/cdc/model-records.ts`). Needs `{module}.{model}.read`, like
 * `changes`; without it — or for a model no mapping defines — the answer is an empty model
 * (no error, no enumeration), logged and counted like a silent subscription. A filter on a column
 * the model's table does not have is BAD_USER_INPUT, for a caller who may read it only. With
 * `ids`, the rows of those entity keys only, on one page (`pipeline/cdc/model-records-by-id.ts`).
 */
export async function listRecords(context: ResolverContext, input: RecordsInput): Promise<ModelRecordsPage> {
  const { principal, services } = context;
  if (!MODEL_NAME.test(input.model)) throw badUserInput('model', 'model must be 1–63 letters, digits, _ or -, starting with a letter');
  const first = input.first ?? DEFAULT_RECORDS_PAGE;
  if (!Number.isInteger(first) || first < 1 || first > MAX_RECORDS_PAGE) throw badUserInput('first', `first must be from 1 to ${MAX_RECORDS_PAGE}`);
  const filter = parseModelFilter(input.filter ?? null);
  const after = input.after === undefined || input.after === null ? undefined : decodePageCursor(input.after);
  const ids = idsOf(input.ids, after !== undefined);
  const scope = scopeOf(principal);
  const mapping = services.cdc.modelMapping(scope, input.model);
  if (!mapping || !canAccessTopic(principal, 'read', modelTopic(mapping))) {
    services.metrics.subscriptionsDenied.inc({ field: 'records' });
    services.logger.debug({ subject: principal.subject, tenant: principal.tenant, model: input.model }, 'records denied silently');
    return emptyModel();
  }
  const source = await services.cdc.modelSource(scope, input.model).catch((error: unknown) => {
    throw new TributaryError(ErrorCode.UNAVAILABLE, 'The model\'s source database cannot be reached right now; retry shortly', { cause: error });
  });
  if (!source) return emptyModel();
  // After the permission check: a caller who may not read the model learns nothing of its columns.
  await assertFilterColumns({
    filter,
    model: input.model,
    source: () => Promise.resolve(source),
    mappings: async () => (await services.cdcStore.listMappings(scope)).map((stored) => stored.mapping),
    logger: services.logger,
  });
  const stream = streamOf(scope, modelTopic(source.mapping));
  return readModelRecords(
    { source, tenant: principal.tenant, filter, first, after, ...(ids && { ids }), streamHead: () => services.log.head(stream) },
    { statementTimeoutMs: services.limits.recordsStatementTimeoutMs },
  );
}

/** `ids`, distinct, checked before anything is read: at most MAX_RECORDS_IDS, and no `after` (one page answers them). */
function idsOf(ids: RecordsInput['ids'], paging: boolean): string[] | undefined {
  if (ids === undefined || ids === null) return undefined;
  if (ids.length > MAX_RECORDS_IDS) throw badUserInput('ids', `ids takes at most ${MAX_RECORDS_IDS} ids (got ${ids.length}); split them into several reads`);
  if (paging) throw badUserInput('after', 'after does not apply with ids: one page answers every id');
  return [...new Set(ids.map(String))];
}

/**
 * What a caller who may not read the model gets: no rows, and a cursor of the same form that
 * resumes nowhere (a stream position of a history that does not exist: RESYNC_REQUIRED if it is
 * ever used where the model becomes readable). No database was read: its time is the server's.
 */
function emptyModel(): ModelRecordsPage {
  const cursor = encodeSnapshotCursor({ after: encodeCursor(newEpoch(), '0'), source: '', window: { xmax: 0, inProgress: new Set(), endLsn: 0n } });
  return { nodes: [], pending: [], endCursor: null, hasNextPage: false, cursor, readAt: new Date() };
}
