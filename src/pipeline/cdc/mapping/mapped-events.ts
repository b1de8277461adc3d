/**
 * The events one mapped row change becomes (see `cdc-source.ts`): the model change on
 * `{module}.{model}` and the mapping topic's event, under one id; when an update moved the row to
 * another key or tenant (`MappedEvent.former`), a DELETED of the row where it was comes first on
 * the model stream, under an id of its own derived from the change's. A change whose mapping topic
 * could not be built (`EvaluatedChange.topicProblem`) has its model stream events only: they need
 * the row's tenant and key, not the topic, and `changes` must not miss a row `records` lists.
 *
 * Ids are derived from the source, the change's LSN and the mapping, as before rows sharing an
 * LSN were told apart, so an upgrade receives unconfirmed changes again under the ids they were
 * routed with; the second and later rows of one multi-insert record (COPY), which share its LSN,
 * add their index at it (`RowChange.lsnIndex`). A redelivered transaction is decoded again from its
 * first change, so the id is the same on every delivery.
 *
 * An update whose record lacks columns Postgres did not send (unchanged TOASTed values without
 * REPLICA IDENTITY FULL, `MappedEvent.unchangedColumns`) lists them in its model change's payload,
 * `unchangedColumns` (absent when the record is the whole row): `changes` shows it, and `events`
 * subscribers and webhooks of the model stream receive it with the payload.
 */
import type { RawEventInput, RealtimeEvent, WalTransaction } from '../../events/envelope.ts';
import { stableEventId } from '../../events/event-id.ts';
import { eventShapeError } from '../../events/event-shape-error.ts';
import { modelChange, type ModelChangePayload, type ModelOperation } from '../../events/model-change.ts';
import type { RowChange, RowOperation } from '../row-change.ts';
import type { MappedEvent } from './mapping-evaluate.ts';
import { modelTopic } from './mapping-topics.ts';
import type { DomainMapping } from './mapping.ts';

/** What the change's events share beyond the mapping's evaluation. */
export interface MappedChangeContext {
  /** The source's id (`sourceIdOf`). */
  readonly source: string;
  readonly scope: { readonly app: string; readonly env: string };
  readonly change: RowChange;
  readonly mapping: DomainMapping;
  readonly transaction: WalTransaction;
  /** The commit time, ISO 8601. */
  readonly lastUpdatedAt: string;
}

/** A model change's payload as the CDC reader writes it: the columns its record lacks, when it lacks some. */
export type CdcModelChangePayload = ModelChangePayload & { readonly unchangedColumns?: readonly string[] };

/**
 * The `unchangedColumns` of a model change (empty when it has none); throws an internal
 * EVENT_SHAPE error when the payload holds something else there.
 */
export function unchangedColumnsOf(event: RealtimeEvent): readonly string[] {
  const value = event.payload['unchangedColumns'];
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((column) => typeof column === 'string')) {
    throw eventShapeError('model', event, 'unchangedColumns must be a list of column names');
  }
  return value;
}

/** A model change's `metadata.operation`: what its `operation` announces (a moved row's update is CREATED). */
const ROW_OPERATION: Readonly<Record<ModelOperation, RowOperation>> = { CREATED: 'insert', UPDATED: 'update', DELETED: 'delete' };

/** The id of a change's events under a mapping; `more` derives the id of an extra event. */
export function changeEventId(source: string, change: RowChange, mapping: DomainMapping, ...more: string[]): string {
  // The first change at an LSN keeps the id it had before. The parts are joined with `|`, which
  // no mapping name holds, so an index or `more` can never make another mapping's id.
  const index = change.lsnIndex === 0 ? [] : [String(change.lsnIndex)];
  return stableEventId(source, change.lsn, mapping.name, ...index, ...more);
}

/** A mapped change as routed: its mapping topic undefined when this row could not build it. */
export type RoutedMappedEvent = Omit<MappedEvent, 'topic'> & { readonly topic: string | undefined };

/** The events, in the order they are to be placed. */
export function mappedChangeEvents(context: MappedChangeContext, event: RoutedMappedEvent): RawEventInput[] {
  const { change, mapping, transaction, lastUpdatedAt } = context;
  const { app, env } = context.scope;
  const table = `${change.table.schema}.${change.table.name}`;
  const events: RawEventInput[] = [];
  const { former } = event;
  if (former) {
    // Where subscribers hold the row: it leaves there before it appears where it now is.
    events.push(
      modelChange({
        id: changeEventId(context.source, change, mapping, 'former'),
        scope: { app, env, tenant: former.tenant },
        entity: `${table}/${former.entityKey}`,
        table,
        operation: 'delete',
        transaction,
        topic: modelTopic(mapping),
        type: former.type,
        payload: { operation: 'DELETED', model: mapping.model, id: former.entityKey, record: former.record, lastUpdatedAt },
      }),
    );
  }
  const common = {
    id: changeEventId(context.source, change, mapping),
    scope: { app, env, tenant: event.tenant },
    entity: `${table}/${event.entityKey}`,
    table,
    transaction,
  };
  const payload: CdcModelChangePayload = {
    operation: event.operation,
    model: mapping.model,
    id: event.entityKey,
    record: event.record,
    lastUpdatedAt,
    ...(event.unchangedColumns !== undefined && { unchangedColumns: event.unchangedColumns }),
  };
  events.push(modelChange({ ...common, operation: ROW_OPERATION[event.operation], topic: modelTopic(mapping), type: event.type, payload }));
  if (event.topic !== undefined) {
    events.push({ ...common, operation: event.action, source: 'database', topic: event.topic, type: event.type, payload: event.payload });
  }
  return events;
}
