import type { ModelRecord as ModelRecordValue, ModelRecordsPage, PendingRecord } from '../../pipeline/cdc/model-records.ts';
import * as resolvers from '../../resolvers/records.ts';
import { builder } from '../builder.ts';

const ModelRecord = builder.objectRef<ModelRecordValue>('ModelRecord').implement({
  description: "One row of a model as it is now, in the shape of a `ModelChange`'s record. `id` is unique within its model only: a client cache should key records by `model` and `id` together.",
  fields: (t) => ({
    model: t.exposeString('model', { description: 'The model it belongs to.' }),
    id: t.exposeID('id', { description: 'The entity key, as `ModelChange.id` carries it.' }),
    record: t.field({ type: 'JSON', description: 'The full row.', resolve: (node) => node.record }),
  }),
});

const ModelRecordPending = builder.objectRef<PendingRecord>('ModelRecordPending').implement({
  description:
    "A row a page after the first left out: its version is newer than the listing's snapshot (it changed, or was created, since the first page was read). `changes(after: cursor)` brings its change.",
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The entity key, as `ModelChange.id` carries it.' }),
    index: t.exposeInt('index', { description: "Where the row belongs in key order: before the page's node at this index (the number of nodes: after the last)." }),
  }),
});

const ModelRecordsPageInfo = builder.objectRef<ModelRecordsPage>('ModelRecordsPageInfo').implement({
  description: 'Where a `records` page ends, and whether more rows may follow.',
  fields: (t) => ({
    endCursor: t.exposeString('endCursor', { nullable: true, description: 'Pass as `after` for the next page; null when this page read no row.' }),
    hasNextPage: t.exposeBoolean('hasNextPage', {
      description: 'More rows may follow. A page reads a bounded number of rows, so with a selective filter it may hold fewer than `first` nodes (even none) and still have a next page.',
    }),
  }),
});

const ModelRecords = builder.objectRef<ModelRecordsPage>('ModelRecords').implement({
  description: "A page of a model's rows, and where its stream continues.",
  fields: (t) => ({
    nodes: t.field({ type: [ModelRecord], description: "The page's rows, ordered by primary key (or the mapping's `key`).", resolve: (page) => page.nodes }),
    pending: t.field({
      type: [ModelRecordPending],
      description:
        "Rows this page left out because they changed since the first page was read (always empty on the first page): the stream brings each. A client that waits for their changes before it shows the listing shows no row missing, and each in key order.",
      resolve: (page) => page.pending,
    }),
    pageInfo: t.field({ type: ModelRecordsPageInfo, description: 'Where the page ends, and whether more rows may follow.', resolve: (page) => page }),
    cursor: t.exposeString('cursor', {
      description:
        'Pass as `changes(after:)` to receive every change this listing does not contain, and none it already reflects. The same on every page of one listing (pages after the first leave out rows changed since the first: the stream brings them).',
    }),
    readAt: t.expose('readAt', {
      type: 'DateTime',
      description:
        "When this page was read, by the source database's clock (the one `ModelChange.lastUpdatedAt`, a commit time, is read from), to the millisecond. A listing reflects every change committed before its first page's `readAt`; later changes come from `changes(after: cursor)`. For a model the caller may not read (no database read), the server's clock.",
    }),
  }),
});

builder.queryFields((t) => ({
  records: t.field({
    type: ModelRecords,
    description:
      "A model's current rows in the caller's tenant (soft-deleted rows left out), ordered by primary key, filtered like `changes` (`{ \"status\": \"eq.active\" }`). `first`: 1–1000, default 100; `ids`: only the rows of those keys. MISCONFIGURED when the source's role may not read the table (naming the GRANT to run). Needs `{module}.{model}.read`; without it the model is empty. Then subscribe to `changes(model, filter, after: cursor)`.",
    args: {
      model: t.arg.string({ required: true, description: 'The model (`contacts`): 1–63 letters, digits, _ and -, starting with a letter (BAD_USER_INPUT otherwise).' }),
      filter: t.arg({ type: 'JSON', description: 'Column filters, as `changes` takes them (`{ "status": "eq.active" }`); BAD_USER_INPUT for a bad one, or for a column the model\'s table does not have.' }),
      first: t.arg.int({ description: 'At most this many rows: 1–1,000, default 100.' }),
      after: t.arg.string({ description: "The previous page's `pageInfo.endCursor`, for the page after it; absent: the first page. Not with `ids` (BAD_USER_INPUT)." }),
      ids: t.arg.idList({
        description:
          "Only the rows of these entity keys, as `ModelChange.id` carries them (a composite key's parts percent-encoded and joined by `/`): at most 100 (BAD_USER_INPUT over), looked up by key. The answer holds those that exist, are in the caller's tenant, are not soft-deleted and match `filter` — an id without such a row is simply absent — in key order, all on one page: `first` does not apply, `pageInfo.hasNextPage` is false and `endCursor` null, `pending` empty. Its `cursor` and `readAt` are those of a first page (the read takes a snapshot of its own): `changes(after: cursor)` brings every change of these rows it does not reflect. What to read when a change lists `unchangedColumns` for a row you do not hold (the SDK's live models do).",
      }),
    },
    resolve: (_root, args, context) => resolvers.listRecords(context, args),
  }),
}));
