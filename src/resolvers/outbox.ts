import type { OutboxRequestedMode, OutboxSourceView } from '../pipeline/outbox/outbox-store.ts';
import { scopeOf } from '../pipeline/scope.ts';
import type { ResolverContext } from './context.ts';
import { databaseLocation, parseDatabaseUrl } from './database-url.ts';
import { requireEnvironmentAdmin } from './require-admin.ts';

/** An outbox as the API shows it: where it points (never the password) and what the workers report. */
export interface OutboxSourceAnswer {
  readonly host: string;
  readonly database: string;
  readonly table: string;
  readonly requestedMode: OutboxRequestedMode;
  readonly source: OutboxSourceView;
}

export interface SetOutboxSourceArgs {
  readonly databaseUrl: string;
  readonly table?: string | null;
  readonly mode?: OutboxRequestedMode | null;
  readonly createTable?: boolean | null;
  readonly requireTenant?: boolean | null;
}

/** `setOutboxSource` (admin): the caller's environment's outbox, checked (or created) in its database. */
export async function setOutboxSource(context: ResolverContext, args: SetOutboxSourceArgs): Promise<OutboxSourceAnswer> {
  requireEnvironmentAdmin(context.principal);
  const url = parseDatabaseUrl(args.databaseUrl);
  const saved = await context.services.outbox.setSource(scopeOf(context.principal), {
    databaseUrl: args.databaseUrl,
    table: args.table ?? undefined,
    mode: args.mode ?? undefined,
    createTable: args.createTable ?? undefined,
    requireTenant: args.requireTenant ?? undefined,
  });
  return answerOf(url, saved);
}

export async function removeOutboxSource(context: ResolverContext): Promise<boolean> {
  requireEnvironmentAdmin(context.principal);
  return context.services.outbox.removeSource(scopeOf(context.principal));
}

/** `outboxStatus` (admin): null when the environment has no outbox. */
export async function outboxStatus(context: ResolverContext): Promise<OutboxSourceAnswer | null> {
  requireEnvironmentAdmin(context.principal);
  const source = await context.services.outbox.getSource(scopeOf(context.principal));
  return source ? answerOf(new URL(source.databaseUrl), source) : null;
}

function answerOf(url: URL, source: OutboxSourceView): OutboxSourceAnswer {
  const { host, database } = databaseLocation(url);
  return { host, database, table: source.table, requestedMode: source.requestedMode, source };
}
