import type { CdcSourceStatus } from '../../pipeline/cdc/cdc-source.ts';
import type { OtherSlot } from '../../pipeline/cdc/wal/other-slots.ts';
import type { RealtimeEvent } from '../../pipeline/events/envelope.ts';
import * as resolvers from '../../resolvers/cdc.ts';
import type { CdcMappingView, CdcSourceView, ChangeView } from '../../resolvers/cdc.ts';
import { builder } from '../builder.ts';

const modelName = 'The model (`contacts`): 1–63 letters, digits, _ and -, starting with a letter (BAD_USER_INPUT otherwise).';
const databaseUrlArg =
  '`postgres://user:password@host:port/database`. The only query parameters taken are `sslmode` and `application_name`; the host must be a DNS name or an IP address.';

const CdcOtherSlot = builder.objectRef<OtherSlot>('CdcOtherSlot').implement({
  description:
    "Another Tributary slot of the source database: named as this database's slots are (`tributary_` + its hash, with or without another deployment's 12 hex digits), not this deployment's own — another deployment's, or one left over by a deployment stopped for good, which retains WAL without bound. `cdc.retained_wal` alerts on it too; `dropCdcSlot` drops it.",
  fields: (t) => ({
    slotName: t.exposeString('slotName', { description: "The slot's name." }),
    active: t.exposeBoolean('active', { description: 'Someone streams it now (another deployment\'s reader): it cannot be dropped.' }),
    retainedWalBytes: t.float({ nullable: true, description: 'WAL the slot keeps on the source server, in bytes; null when Postgres invalidated it (it keeps none).', resolve: (slot) => slot.retainedWalBytes }),
  }),
});

const CdcReaderStatus = builder.objectRef<CdcSourceStatus>('CdcReaderStatus').implement({
  description: "The WAL reader of a source database, as the instance that leads it last reported.",
  fields: (t) => ({
    state: t.exposeString('state', { description: 'starting, streaming, reconnecting, stopped or failed.' }),
    leading: t.exposeBoolean('leading', { description: 'This instance reads the slot.' }),
    slotName: t.exposeString('slotName', {
      nullable: true,
      description: "The replication slot on the source database: the source's own, or `tributary_` + a hash of the database's identity + `_` + the deployment's 12 hex digits (without them for a deployment that read CDC before slot names held one, which keeps its slots). Null while the database cannot be reached.",
    }),
    publicationName: t.exposeString('publicationName', { nullable: true, description: 'The publication on the source database: the source\'s own, or `tributary_` + a hash of the database\'s identity (one per database, shared by deployments).' }),
    lastAcknowledgedLsn: t.exposeString('lastAcknowledgedLsn', { nullable: true, description: 'Position confirmed to Postgres: everything before it is in the log.' }),
    lagBytes: t.float({
      nullable: true,
      description:
        "WAL written after the confirmed position, in bytes, as the leader read it on the source in the last few seconds; null when unknown — not read yet, the source did not answer the last reading (`lastError` says why), or no reading for 15 s — never the figure of before.",
      resolve: (status) => status.lagBytes,
    }),
    retainedWalBytes: t.float({ nullable: true, description: 'WAL the slot keeps on the source server, in bytes; null when unknown, as `lagBytes`.', resolve: (status) => status.retainedWalBytes }),
    walStatus: t.string({
      nullable: true,
      description:
        "The slot's `wal_status` on the source server: `reserved`, `extended`, `unreserved` (it retains more than the server's `max_slot_wal_keep_size`: the server's next checkpoint invalidates it, `cdc.slot_at_risk`) or `lost`; null when unknown, as `lagBytes`.",
      resolve: (status) => status.walSafety?.walStatus ?? null,
    }),
    safeWalBytes: t.float({
      nullable: true,
      description: "The slot's `safe_wal_size`: WAL that can still be written before it retains more than `max_slot_wal_keep_size` (or `wal_keep_size` when larger), in bytes (negative once `unreserved`); null when unknown, without that limit, or once lost.",
      resolve: (status) => status.walSafety?.safeWalBytes ?? null,
    }),
    maxSlotWalKeepBytes: t.float({
      nullable: true,
      description:
        "The WAL the source server keeps for the slot at most, in bytes — what `safeWalBytes` counts down from: its `max_slot_wal_keep_size`, or its `wal_keep_size` when larger (Postgres keeps that much anyway); null when unknown, when `max_slot_wal_keep_size` is `-1` (no limit), or on a server without it (Postgres 12).",
      resolve: (status) => status.walSafety?.maxSlotWalKeepBytes ?? null,
    }),
    otherSlots: t.field({
      type: [CdcOtherSlot],
      nullable: true,
      description: "The source database's other Tributary slots as the reader last measured them, most retaining first (20 at most: see `otherSlotsLeftOut`); null when not measured.",
      resolve: (status) => status.otherSlots?.slots ?? null,
    }),
    otherSlotsLeftOut: t.int({ nullable: true, description: 'How many more other Tributary slots the database has than `otherSlots` lists (they retain less).', resolve: (status) => status.otherSlots?.leftOut ?? null }),
    lastError: t.exposeString('lastError', {
      nullable: true,
      description:
        "What is wrong now, or null: why the stream ended or the last (re)connect failed, until a connect succeeds (an error a reconnect overcame is not kept, so it never reads as current beside `streaming`); else why the last reading of the slot's figures failed; while the slot's creation waits for transactions open on the source, which ones.",
    }),
  }),
});

const CdcSource = builder.objectRef<CdcSourceView>('CdcSource').implement({
  description: "An environment's CDC source database (its password is never returned).",
  fields: (t) => ({
    host: t.exposeString('host', { description: "The database server's host, with `:port` when the URL names one." }),
    database: t.exposeString('database', { description: "The database's name." }),
    user: t.exposeString('user', { description: 'The role Tributary logs in as.' }),
    updatedAt: t.field({ type: 'DateTime', description: 'When the source was last set.', resolve: (source) => source.updatedAt }),
    status: t.field({
      type: CdcReaderStatus,
      nullable: true,
      description: 'Its WAL reader, as last reported (null only when the source was removed meanwhile).',
      resolve: (source) => source.status ?? null,
    }),
  }),
});

const CdcMapping = builder.objectRef<CdcMappingView>('CdcMapping').implement({
  description: 'A domain mapping: which row changes of a table become which events (see the README).',
  fields: (t) => ({
    name: t.string({ description: 'Its name, unique in the environment: 1–100 letters, digits and _ . -, starting with a letter or digit.', resolve: (stored) => stored.mapping.name }),
    table: t.string({ description: 'The table whose row changes it reads, as `schema.table`.', resolve: (stored) => stored.mapping.table }),
    module: t.string({ description: "The model's module: the model stream is `{module}.{model}`.", resolve: (stored) => stored.mapping.module }),
    model: t.string({ description: 'The model that `changes` and `records` read; readers need `{module}.{model}.read`.', resolve: (stored) => stored.mapping.model }),
    topic: t.string({
      description: 'Its own topic, plain or a template with `{$row.col}` / `{$old.col}` placeholders.',
      resolve: (stored) => stored.mapping.topic,
    }),
    definition: t.field({ type: 'JSON', description: 'The mapping as saved (normalized).', resolve: (stored) => stored.mapping }),
    updatedAt: t.field({ type: 'DateTime', description: 'When it was last saved.', resolve: (stored) => stored.updatedAt }),
    warnings: t.stringList({
      nullable: true,
      description:
        "What the mapping will do on its table that you may not expect — saved anyway (refusals are errors). Without REPLICA IDENTITY FULL, an update that leaves a large (TOASTed) value unchanged does not send it, so the change's `record` lacks the column and lists it in `unchangedColumns`. On `cdcMappings`, read from the table now, also what of its save's table checks fails now, prefixed `the table changed since the mapping was saved:` — a column dropped or renamed, the replica identity lost (a change whose tenant, key, soft-delete column or `when` reads a missing column is counted as unroutable, `column-missing`). On `saveCdcMapping`, also a column only the payload or the topic reads that the publication's column list leaves out (one the tenant, key, soft delete or `when` reads refuses the save); `cdcMappings` does not look at the column list again. Empty when there is nothing to say; on `saveCdcMapping` what the save found (also logged); null when the table cannot be read now.",
      resolve: (stored, _args, context) => resolvers.mappingWarnings(context, stored),
    }),
  }),
});

builder.queryFields((t) => ({
  cdcSource: t.field({
    type: CdcSource,
    nullable: true,
    description: "Admin of the environment (a token without a tenant): the caller's environment's CDC source, or null.",
    resolve: (_root, _args, context) => resolvers.getCdcSource(context),
  }),
  cdcMappings: t.field({
    type: [CdcMapping],
    description: "Admin of the environment (a token without a tenant): the caller's environment's mappings, by name.",
    resolve: (_root, _args, context) => resolvers.listCdcMappings(context),
  }),
}));

builder.mutationFields((t) => ({
  setCdcSource: t.field({
    type: CdcSource,
    nullable: true,
    description:
      "Admin of the environment (a token without a tenant): points the caller's environment at a Postgres database to read changes from. Checked first: `wal_level = logical` and a role with REPLICATION (MISCONFIGURED otherwise, saying what to change); UNAVAILABLE for a database it cannot reach right now, BAD_USER_INPUT (`field: databaseUrl`) for one that refuses the connection or a URL it does not take.",
    args: {
      databaseUrl: t.arg.string({ required: true, description: databaseUrlArg }),
      slotName: t.arg.string({
        description:
          "The source's own replication slot (1–63 lower-case letters, digits, _). Default: `tributary_` + a hash of the database's identity + `_` + the deployment's id, one slot per database and deployment however many environments point at it. A slot no longer used after a change of name or database is dropped.",
      }),
      publicationName: t.arg.string({ description: "The source's own publication (a lower-case identifier). Default: `tributary_` + a hash of the database's identity." }),
    },
    resolve: (_root, args, context) => resolvers.setCdcSource(context, args),
  }),
  removeCdcSource: t.boolean({
    nullable: true,
    description:
      "Admin of the environment (a token without a tenant): stops reading the caller's environment's source (its mappings stay). When no other environment or WAL-mode outbox reads that database, its replication slot is dropped (so it retains no WAL); the publication stays.",
    resolve: (_root, _args, context) => resolvers.removeCdcSource(context),
  }),
  saveCdcMapping: t.field({
    type: CdcMapping,
    nullable: true,
    description: 'Admin of the environment (a token without a tenant): creates or replaces a mapping (by name), checked against its table; applies without a restart.',
    args: {
      mapping: t.arg({
        type: 'JSON',
        required: true,
        description:
          'The mapping, a JSON object: `name`, `table`, `events`, `module`, `model` and `topic` required; `tenantColumn`, `key`, `when`, `payload`, `softDeleteColumn` and `type` optional (see the README). Unknown fields are refused.',
      }),
    },
    resolve: (_root, args, context) => resolvers.saveCdcMapping(context, args.mapping),
  }),
  dropCdcSlot: t.boolean({
    nullable: true,
    description:
      "Admin of the environment (a token without a tenant): drops another Tributary slot of the caller's environment's source database (one `cdcSource.status.otherSlots` lists), e.g. left over by a deployment stopped for good; false when there is no such slot. Refused: a name that is not one of this database's Tributary slots (BAD_USER_INPUT, `reason` NOT_TRIBUTARY_SLOT), this deployment's own slot (BAD_USER_INPUT, OWN_SLOT), a slot streamed now (CONFLICT, SLOT_ACTIVE). A deployment that still uses the slot finds it lost when it reads again (`cdc.slot_lost`).",
    args: { slotName: t.arg.string({ required: true, description: 'The slot to drop, as `otherSlots` names it.' }) },
    resolve: (_root, args, context) => resolvers.dropCdcSlot(context, args.slotName),
  }),
  deleteCdcMapping: t.boolean({
    nullable: true,
    description: 'Admin of the environment (a token without a tenant): removes a mapping; false when there was none.',
    args: { name: t.arg.string({ required: true, description: "The mapping's name." }) },
    resolve: (_root, args, context) => resolvers.deleteCdcMapping(context, args.name),
  }),
}));

const ChangeOperation = builder.enumType('ChangeOperation', {
  description: 'What happened to a row.',
  values: {
    CREATED: { value: 'CREATED', description: 'Inserted, or moved in: its key or tenant changed to this one, or its soft delete was cleared.' },
    UPDATED: { value: 'UPDATED', description: 'Updated.' },
    DELETED: {
      value: 'DELETED',
      description: 'Deleted, or moved out: its key or tenant changed to another, or it was soft-deleted.',
    },
    LEFT: {
      value: 'LEFT',
      description: 'With a `filter` only: the row changed and does not match the filter (any more): drop it if you hold it. `record` is null.',
    },
  } as const,
});

/** A model change as its fields read it: the payload, read (and checked) once per render, the event's id and cursor. */
type ModelChangeView = ChangeView & { readonly eventId: string; readonly cursor: string };

// Delivered by the dispatcher: fields follow the rule of `pipeline/dispatch/subscription-contract.ts`.
const ModelChange = builder.objectRef<ModelChangeView>('ModelChange').implement({
  description:
    'One change of a model: the full record after it — but for the columns `unchangedColumns` lists, which Postgres did not send; for a delete, what the table sends (its key at least). A change, not an object to normalise: `model` and `id` name the row (unique together only), and one row has many changes.',
  fields: (t) => ({
    operation: t.field({ type: ChangeOperation, description: 'What happened to the row.', resolve: (change) => change.operation }),
    model: t.exposeString('model', { description: 'The model.' }),
    id: t.exposeID('id', { description: 'The entity key.' }),
    record: t.field({
      type: 'JSON',
      nullable: true,
      description: 'The row after the change, but for `unchangedColumns`; for a delete, what the table sends (its key at least). Null for LEFT.',
      resolve: (change) => change.record,
    }),
    unchangedColumns: t.stringList({
      description:
        "Columns `record` lacks because Postgres did not send them: an update that left a large (TOASTed) value unchanged, on a table without REPLICA IDENTITY FULL. Their value is the one you hold: merge `record` into your copy of the row (the SDK's live models do) rather than replace it. On a CREATED (a row an update moved to another id or tenant) you hold no copy: read the row with `records` if you need them. Empty when `record` is the whole row (a delete's record: see `record`).",
      resolve: (change) => change.unchangedColumns,
    }),
    cursor: t.exposeString('cursor', { description: 'Pass as `after` to resume after this change.' }),
    eventId: t.exposeID('eventId', {
      description: "The change's event id (`evt_…`): the same when the change is delivered again (after a crash), unlike its cursor. De-duplicate on it.",
    }),
    lastUpdatedAt: t.field({
      type: 'DateTime',
      description: 'Commit time of the change in the source database.',
      resolve: (change) => new Date(change.lastUpdatedAt),
    }),
  }),
});

builder.subscriptionField('changes', (t) =>
  t.field({
    type: ModelChange,
    description:
      "Every change of a model in the caller's tenant, optionally filtered (`{ \"status\": \"eq.active\" }`: eq, neq, gt, gte, lt, lte, in.(a,b), is.null, is.notnull, all combined with AND). Needs `{module}.{model}.read`; without it the subscription stays silent. Resumable with `after`.",
    args: {
      model: t.arg.string({ required: true, description: modelName }),
      filter: t.arg({
        type: 'JSON',
        description: 'Column filters (`{ "status": "eq.active" }`): only the changes of matching rows, and LEFT for a row that stops matching. BAD_USER_INPUT for a bad one, or for a column the model\'s table does not have.',
      }),
      after: t.arg.string({ description: "A cursor — a change's `cursor`, or `records`' `cursor` — to resume after. Absent: changes from now on." }),
    },
    subscribe: (_root, args, context) => resolvers.subscribeChanges(context, args),
    resolve: (event: RealtimeEvent, args, _context, info): ModelChangeView => ({
      ...resolvers.changeFor(event, args.filter, info),
      eventId: event.id,
      cursor: event.cursor,
    }),
  }),
);
