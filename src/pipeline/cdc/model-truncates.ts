/**
 * A TRUNCATE of mapped tables, for `changes` (`cdc-source.ts` calls it). Postgres sends no row of
 * a TRUNCATE, so which rows left cannot be said with DELETED events; a subscriber holding rows of
 * such a model must start again from `records`, which the protocol already says as it says it for
 * lost history: the model streams end their history.
 *
 * - Every model stream (`{module}.{model}`, each tenant's) of a mapping on a truncated table, in
 *   every environment reading the source, gets a new epoch (`EventLog.renewEpochs`): a cursor
 *   taken before the TRUNCATE answers RESYNC_REQUIRED; one taken after it (a later change's, the
 *   cursor of a `records` read after it) resumes normally.
 * - Each renewed stream then gets a marker event (`modelTruncated`), the first of its new history:
 *   published on the stream's live channel, it reaches every instance's subscribers now (not at the
 *   model's next change), and the dispatcher ends those holding a position in the old history with
 *   RESYNC_REQUIRED. `changes` does not show the marker (it carries no WAL transaction).
 *
 * The caller runs this as a barrier (`chunk-barrier.ts`): every change committed before the
 * TRUNCATE is in the old history, every change after it in the new one. A TRUNCATE received again
 * (a reader restart before its transaction was confirmed) renews the streams again, and must: the
 * changes received again before it were placed into the new history, and rows it emptied would
 * come back there. Its subscribers resync once more, nothing worse.
 */
import type { Logger } from '../../logger.ts';
import { stableEventId } from '../events/event-id.ts';
import { modelTruncated } from '../events/model-change.ts';
import type { EventLog } from '../log/event-log.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { Scope } from '../scope.ts';
import { mappingTable, type DomainMapping } from './mapping/mapping.ts';
import { modelTopic } from './mapping/mapping-topics.ts';
import type { TableTruncate } from './row-change.ts';

/** What of an environment's binding a TRUNCATE concerns (a `CdcBinding` is one). */
export interface TruncatedBinding {
  readonly scope: { readonly app: string; readonly env: string };
  readonly mappings: readonly DomainMapping[];
}

/** One environment's model stream (any tenant's) that a TRUNCATE ends, and the truncated tables mapped to it. */
export interface TruncatedModel {
  readonly scope: { readonly app: string; readonly env: string };
  readonly topic: string;
  readonly model: string;
  readonly tables: readonly string[];
}

export interface ModelTruncatesOptions {
  /** The source's id (`sourceIdOf`). */
  readonly source: string;
  readonly log: Pick<EventLog, 'renewEpochs'>;
  readonly router: Pick<EventRouter, 'routeMany'>;
  readonly logger: Logger;
}

/** The model streams of `bindings` whose mappings read one of the truncated tables; none for unmapped tables. */
export function truncatedModels(bindings: readonly TruncatedBinding[], truncate: TableTruncate): TruncatedModel[] {
  const truncated = new Set(truncate.tables.map((table) => `${table.schema}.${table.name}`));
  const models = new Map<string, { scope: TruncatedModel['scope']; topic: string; model: string; tables: Set<string> }>();
  for (const binding of bindings) {
    for (const mapping of binding.mappings) {
      const { schema, name } = mappingTable(mapping);
      const table = `${schema}.${name}`;
      if (!truncated.has(table)) continue;
      const topic = modelTopic(mapping);
      const key = JSON.stringify([binding.scope.app, binding.scope.env, topic]);
      let model = models.get(key);
      if (!model) models.set(key, (model = { scope: { app: binding.scope.app, env: binding.scope.env }, topic, model: mapping.model, tables: new Set() }));
      model.tables.add(table);
    }
  }
  return [...models.values()].map((model) => ({ ...model, tables: [...model.tables] }));
}

export interface TruncateContext {
  readonly truncate: TableTruncate;
  /** The commit time of its transaction, ISO 8601. */
  readonly lastUpdatedAt: string;
}

/**
 * Ends the history of `models`' streams and publishes the marker on each (see the file's comment).
 * Resolves with the number of streams renewed; rejects (the caller fails the chunk, which is
 * received again) when the log or the router fails.
 */
export async function endTruncatedHistories(options: ModelTruncatesOptions, models: readonly TruncatedModel[], context: TruncateContext): Promise<number> {
  if (models.length === 0) return 0;
  const byStream = new Map(models.map((model) => [streamName(model.scope.app, model.scope.env, model.topic), model]));
  // The streams that exist (any tenant's), as the log selects them: those get a marker. One that
  // does not exist has no subscriber holding a position and no cursor that could resume in it.
  const renewed: { scope: Scope; model: TruncatedModel }[] = [];
  await options.log.renewEpochs((scope, topic) => {
    const model = byStream.get(streamName(scope.app, scope.env, topic));
    if (model) renewed.push({ scope, model });
    return model !== undefined;
  });
  const { truncate, lastUpdatedAt } = context;
  await options.router.routeMany(
    renewed.map(({ scope, model }) =>
      modelTruncated({
        // One id per stream (the same when the TRUNCATE is received again): each tenant's marker is an event of its own.
        id: stableEventId(options.source, truncate.lsn, 'truncate', scope.app, scope.env, scope.tenant ?? '', model.topic),
        scope,
        topic: model.topic,
        table: model.tables[0]!,
        payload: { operation: 'TRUNCATED', model: model.model, tables: model.tables, lastUpdatedAt },
      }),
    ),
  );
  options.logger.info(
    { tables: [...new Set(models.flatMap((model) => model.tables))], models: [...new Set(models.map((model) => model.topic))], streams: renewed.length, lsn: truncate.lsn },
    'TRUNCATE of mapped tables: their model streams start a new history (subscribers holding a position resync)',
  );
  return renewed.length;
}

function streamName(app: string, env: string, topic: string): string {
  return JSON.stringify([app, env, topic]);
}
