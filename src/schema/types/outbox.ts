import * as resolvers from '../../resolvers/outbox.ts';
import type { OutboxSourceAnswer } from '../../resolvers/outbox.ts';
import { builder } from '../builder.ts';

const OutboxMode = builder.enumType('OutboxMode', {
  description: 'How the outbox is read.',
  values: {
    AUTO: { value: 'AUTO', description: 'WAL when the database lets the role replicate (wal_level = logical, REPLICATION), POLL otherwise; settled when the outbox is set.' },
    POLL: { value: 'POLL', description: 'Polled by the workers in batches, in order per entity.' },
    WAL: { value: 'WAL', description: "Read from the database's WAL by the CDC reader (same slot as the database's CDC source): commit order, no polling." },
  } as const,
});

const OutboxStatus = builder.objectRef<OutboxSourceAnswer>('OutboxStatus').implement({
  description: "An environment's outbox table (its password is never returned), how it is read, and what its reader last reported.",
  fields: (t) => ({
    host: t.exposeString('host', { description: "The database server's host, with `:port` when the URL names one." }),
    database: t.exposeString('database', { description: "The database's name." }),
    table: t.exposeString('table', { description: "The outbox table's name (default `event_outbox`)." }),
    requestedMode: t.field({ type: OutboxMode, description: 'The mode asked for by `setOutboxSource` (AUTO by default).', resolve: (answer) => answer.requestedMode }),
    mode: t.field({ type: OutboxMode, description: 'The mode in effect (WAL or POLL; AUTO is settled when the outbox is set).', resolve: (answer) => answer.source.readMode }),
    requireTenant: t.boolean({ description: 'Rows without a tenant are set aside as dead.', resolve: (answer) => answer.source.requireTenant }),
    pending: t.int({ nullable: true, description: 'Rows not routed yet.', resolve: (answer) => answer.source.report?.pending ?? null }),
    oldestPendingSeconds: t.float({ nullable: true, description: 'Age of the oldest pending row, in s.', resolve: (answer) => answer.source.report?.oldestPendingSeconds ?? null }),
    routedPerSecond: t.float({ nullable: true, description: 'Rows routed per second over the last report period, summed over the processes reading the outbox.', resolve: (answer) => answer.source.report?.routedPerSecond ?? null }),
    dead: t.int({ nullable: true, description: 'Rows set aside (dead_reason) because they can never be routed.', resolve: (answer) => answer.source.report?.dead ?? null }),
    lastError: t.string({ nullable: true, description: "The reader's last error (a poll that failed, an outbox it cannot read); null once it reads again.", resolve: (answer) => answer.source.report?.lastError ?? null }),
    reportedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the figures were measured; an outbox that cannot be read keeps its last ones (null: never measured).',
      resolve: (answer) => answer.source.report?.reportedAt ?? null,
    }),
    stale: t.boolean({
      description:
        'The figures were measured more than 30 s ago (six report intervals at the default OUTBOX_REPORT_INTERVAL_MS), or never: nothing measured them since — no workers process is running, none can read the outbox (see `lastError`), or (routedPerSecond still moving) the count of a backlog of millions of rows rests. They are the last ones measured, as of `reportedAt`, not the backlog now.',
      resolve: (answer) => answer.source.report?.stale ?? true,
    }),
  }),
});

builder.queryFields((t) => ({
  outboxStatus: t.field({
    type: OutboxStatus,
    nullable: true,
    description: "Admin of the environment (a token without a tenant): the caller's environment's outbox, or null.",
    resolve: (_root, _args, context) => resolvers.outboxStatus(context),
  }),
}));

builder.mutationFields((t) => ({
  setOutboxSource: t.field({
    type: OutboxStatus,
    nullable: true,
    description:
      "Admin of the environment (a token without a tenant): the caller's environment's outbox — a table in its application's database that its services INSERT events into, in the same transaction as their writes. `createTable` creates it when missing. MISCONFIGURED when the database's setup must change first (WAL mode without `wal_level = logical` or REPLICATION; the message says what), UNAVAILABLE for a database it cannot reach right now, BAD_USER_INPUT (with `field`) for a URL, table or mode it does not take.",
    args: {
      databaseUrl: t.arg.string({
        required: true,
        description:
          '`postgres://user:password@host:port/database`. The only query parameters taken are `sslmode` and `application_name`; the host must be a DNS name or an IP address.',
      }),
      table: t.arg.string({ description: '`name` or `schema.name`; default `event_outbox`.' }),
      mode: t.arg({ type: OutboxMode, description: 'Default AUTO.' }),
      createTable: t.arg.boolean({ description: 'Create the table (with its indexes) when it is missing (default false: a missing table is BAD_USER_INPUT).' }),
      requireTenant: t.arg.boolean({ description: 'Set rows without a tenant aside as dead (default false: such rows are application-wide).' }),
    },
    resolve: (_root, args, context) => resolvers.setOutboxSource(context, args),
  }),
  removeOutboxSource: t.field({
    type: 'Boolean',
    nullable: true,
    description: "Admin of the environment (a token without a tenant): stops reading the environment's outbox (the table is left as it is); false when there was none.",
    resolve: (_root, _args, context) => resolvers.removeOutboxSource(context),
  }),
}));
