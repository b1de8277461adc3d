/**
 * The outbox as its environment's admin sets it up (any instance, server role): where the outbox
 * table is, whether to create it, and what the workers polling it last reported. The workers read
 * the same rows (`outbox_sources`) and start or stop their pollers.
 */
import type pg from 'pg';
import type { Database } from '../../db/database.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { Scope } from '../scope.ts';
import { DEFAULT_OUTBOX_TABLE, outboxTable, outboxTableDdl } from './outbox-sql.ts';
import { getOutboxSource, removeOutboxSource, saveOutboxSource, type OutboxRequestedMode, type OutboxSourceView } from './outbox-store.ts';

/** Opens a pool on an application's database; the caller ends it. */
export type OutboxPoolFactory = (databaseUrl: string) => pg.Pool;

export interface SetOutboxSourceInput {
  readonly databaseUrl: string;
  /** `name` or `schema.name`. @default 'event_outbox' */
  readonly table?: string | undefined;
  /** @default 'AUTO' */
  readonly mode?: OutboxRequestedMode | undefined;
  /** Create the table when it is missing. @default false */
  readonly createTable?: boolean | undefined;
}

export interface OutboxAdmin {
  /** Checks (or creates) the table in the application's database, then saves the source. */
  setSource(scope: Scope, input: SetOutboxSourceInput): Promise<OutboxSourceView>;
  removeSource(scope: Scope): Promise<boolean>;
  getSource(scope: Scope): Promise<OutboxSourceView | undefined>;
}

export function createOutboxAdmin(options: { readonly db: Database; readonly connect: OutboxPoolFactory }): OutboxAdmin {
  const { db } = options;
  return {
    async setSource(scope, input) {
      const table = outboxTable(input.table ?? DEFAULT_OUTBOX_TABLE);
      const pool = options.connect(input.databaseUrl);
      try {
        if (input.createTable === true) await pool.query(outboxTableDdl(table));
        const { rows } = await pool.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [table.sql]);
        if (rows[0]?.found == null) {
          throw new TributaryError(ErrorCode.BAD_USER_INPUT, `The table ${table.name} does not exist in that database; pass createTable: true, or create it with the DDL of npm run outbox:sql`, {
            details: { field: 'table' },
          });
        }
      } catch (error) {
        if (error instanceof TributaryError) throw error;
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, `The outbox database could not be used: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
          details: { field: 'databaseUrl' },
        });
      } finally {
        await pool.end().catch(() => undefined);
      }
      return saveOutboxSource(db, { app: scope.app, env: scope.env, databaseUrl: input.databaseUrl, table: table.name, requestedMode: input.mode ?? 'AUTO' });
    },
    removeSource: (scope) => removeOutboxSource(db, scope.app, scope.env),
    getSource: (scope) => getOutboxSource(db, scope.app, scope.env),
  };
}
