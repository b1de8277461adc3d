/**
 * The outbox as its environment's admin sets it up (any instance, server role): where the outbox
 * table is, whether to create it, how it is read, and what its reader last reported. The mode is
 * settled here, once, so every instance agrees on who reads the outbox: WAL mode (the CDC leader
 * reads its inserts from the WAL) or POLL mode (the workers poll it).
 */
import type pg from 'pg';
import type { Database } from '../../db/database.ts';
import type { DatabaseIdentity } from '../../db/database-identity.ts';
import { ErrorCode, isTributaryError, SqlState, sqlStateOf, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { isDatabaseUnreachable } from '../connection-errors.ts';
import type { Scope } from '../scope.ts';
import { outboxIdentity, sameDatabaseLocation } from './outbox-identity.ts';
import { DEFAULT_OUTBOX_TABLE, missingColumns, missingIndexStatements, missingPrivileges, mistypedColumns, outboxTable, outboxTableDdl, tableExists, type OutboxTable } from './outbox-sql.ts';
import { getOutboxSource, removeOutboxSource, saveOutboxSource, type OutboxReadMode, type OutboxRequestedMode, type OutboxSourceView } from './outbox-store.ts';
import { assertWalPublicationPossible } from './outbox-wal-setup.ts';

/** Opens a pool on an application's database; the caller ends it. */
export type OutboxPoolFactory = (databaseUrl: string) => pg.Pool;

/** Rejects (a TributaryError saying what to change) when the database does not let this role read its WAL. */
export type ReplicationCheck = (client: pg.ClientBase) => Promise<void>;

export interface SetOutboxSourceInput {
  readonly databaseUrl: string;
  /** `name` or `schema.name`. @default 'event_outbox' */
  readonly table?: string | undefined;
  /** @default 'AUTO' */
  readonly mode?: OutboxRequestedMode | undefined;
  /** Create the table when it is missing. @default false */
  readonly createTable?: boolean | undefined;
  /** Rows without a tenant are set aside as dead. @default false */
  readonly requireTenant?: boolean | undefined;
}

export interface OutboxAdmin {
  /** Checks (or creates) the table in the application's database, settles the mode, then saves the source. */
  setSource(scope: Scope, input: SetOutboxSourceInput): Promise<OutboxSourceView>;
  removeSource(scope: Scope): Promise<boolean>;
  getSource(scope: Scope): Promise<OutboxSourceView | undefined>;
}

export interface OutboxAdminOptions {
  readonly db: Database;
  readonly connect: OutboxPoolFactory;
  /** Whether WAL mode is possible (the CDC reader's own check). */
  readonly checkReplication: ReplicationCheck;
  /** The publication a WAL reader of the database streams (CDC derives it from the database's identity). */
  readonly publicationOf: (identity: DatabaseIdentity) => string;
  /** Where an existing table's missing indexes are reported. @default not reported */
  readonly logger?: Logger;
}

export function createOutboxAdmin(options: OutboxAdminOptions): OutboxAdmin {
  const { db } = options;
  return {
    async setSource(scope, input) {
      const table = outboxTable(input.table ?? DEFAULT_OUTBOX_TABLE);
      const requestedMode = input.mode ?? 'AUTO';
      const pool = options.connect(input.databaseUrl);
      let readMode: OutboxReadMode;
      let identity: string;
      try {
        const existed = await tableExists(pool, table);
        if (!existed && input.createTable !== true) {
          throw new TributaryError(ErrorCode.BAD_USER_INPUT, `The table ${table.name} does not exist in that database; pass createTable: true, or create it with the DDL of npm run outbox:sql`, {
            details: { field: 'table' },
          });
        }
        // Before the DDL: its indexes would fail on a table that is not an outbox, blamed on the database.
        if (existed) await assertOutboxColumns(pool, table);
        // Builds nothing on an existing table (a plain CREATE INDEX would block the application's
        // writes): its missing indexes are reported, to be built concurrently.
        if (!existed) await pool.query(outboxTableDdl(table)).catch((error: unknown) => {
          // The table's schema does not exist: the request's `table` is wrong, not the database.
          if (sqlStateOf(error) !== SqlState.INVALID_SCHEMA_NAME) throw error;
          throw new TributaryError(ErrorCode.BAD_USER_INPUT, `The schema of ${table.name} does not exist in that database; create it first, or name a table in an existing schema`, {
            cause: error,
            details: { field: 'table' },
          });
        });
        else await reportMissingIndexes(pool, table, options.logger);
        identity = await identityOf(pool, table);
        readMode = await resolveMode(pool, requestedMode, options.checkReplication);
        // In either mode the reader works on the table with this URL's login: the pollers, or the WAL
        // reader's catch-up, clean-up and retention sweep.
        await assertReaderPrivileges(pool, table, readMode);
        // A CDC source on the same database lends the WAL reader its login and publication: not this one's to check.
        if (readMode === 'WAL' && !(await cdcReadsDatabase(db, input.databaseUrl))) readMode = await settlePublication(pool, table, requestedMode, options);
      } catch (error) {
        if (isTributaryError(error)) throw error;
        const message = error instanceof Error ? error.message : String(error);
        // A database down or unreachable right now: nothing in the request to fix, retry later.
        if (isDatabaseUnreachable(error)) {
          throw new TributaryError(ErrorCode.UNAVAILABLE, `The outbox database cannot be reached right now: ${message}; retry shortly`, { cause: error, details: { field: 'databaseUrl' } });
        }
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, `The outbox database could not be used: ${message}`, { cause: error, details: { field: 'databaseUrl' } });
      } finally {
        await pool.end().catch(() => undefined);
      }
      // Saved by an earlier version, without an identity: the URL names the same database, or the id is new.
      const stored = await getOutboxSource(db, scope.app, scope.env);
      const legacyUrl = stored?.identity === null && sameDatabaseLocation(stored.databaseUrl, input.databaseUrl) ? stored.databaseUrl : null;
      return saveOutboxSource(db, {
        app: scope.app,
        env: scope.env,
        databaseUrl: input.databaseUrl,
        table: table.name,
        identity,
        legacyUrl,
        requestedMode,
        readMode,
        requireTenant: input.requireTenant ?? false,
      });
    },
    removeSource: (scope) => removeOutboxSource(db, scope.app, scope.env),
    getSource: (scope) => getOutboxSource(db, scope.app, scope.env),
  };
}

/** The table the URL reaches, which the outbox id follows (`outbox-identity.ts`). */
async function identityOf(pool: pg.Pool, table: OutboxTable): Promise<string> {
  const client = await pool.connect();
  try {
    return await outboxIdentity(client, table);
  } finally {
    client.release();
  }
}

/**
 * An existing table that lacks a column of the outbox would fail every read of it, and one whose
 * column has a type the statements cannot use would fail each batch after routing it (routed
 * again at every pass): refused now, naming what is wrong.
 */
async function assertOutboxColumns(pool: pg.Pool, table: OutboxTable): Promise<void> {
  const missing = await missingColumns(pool, table);
  const mistyped = missing.length === 0 ? await mistypedColumns(pool, table) : [];
  if (missing.length === 0 && mistyped.length === 0) return;
  const wrong = missing.length > 0 ? `it has no column ${missing.join(', ')}` : `its ${mistyped.join('; ')}`;
  throw new TributaryError(
    ErrorCode.BAD_USER_INPUT,
    `The table ${table.name} is not an outbox: ${wrong}; create the outbox with the DDL of npm run outbox:sql`,
    { details: { field: 'table' } },
  );
}

/** A warning with the statements to run; the source is set either way (the outbox works without them, slower). */
async function reportMissingIndexes(pool: pg.Pool, table: OutboxTable, logger: Logger | undefined): Promise<void> {
  const statements = await missingIndexStatements(pool, table);
  if (statements.length === 0) return;
  logger?.warn({ table: table.name, statements }, `outbox table ${table.name} lacks indexes; build them without blocking its writers: ${statements.join(' ')}`);
}

/**
 * What the readers do to the table: the pollers claim rows (SELECT … FOR UPDATE), mark them and
 * delete old ones; the WAL reader reads pending rows, deletes routed ones and marks dead ones.
 */
const READER_PRIVILEGES = ['SELECT', 'UPDATE', 'DELETE'];

async function assertReaderPrivileges(pool: pg.Pool, table: OutboxTable, mode: OutboxReadMode): Promise<void> {
  const missing = await missingPrivileges(pool, table, READER_PRIVILEGES);
  if (missing.length === 0) return;
  throw new TributaryError(
    ErrorCode.BAD_USER_INPUT,
    `The role of that database URL lacks ${missing.join(', ')} on the table ${table.name}; ${mode} mode needs ${READER_PRIVILEGES.join(', ')} on it`,
    { details: { field: 'table' } },
  );
}

/** AUTO is WAL when the database lets this role replicate, POLL otherwise; WAL asked for and impossible says why. */
async function resolveMode(pool: pg.Pool, requested: OutboxRequestedMode, check: ReplicationCheck): Promise<OutboxReadMode> {
  if (requested === 'POLL') return 'POLL';
  return settle(pool, requested, undefined, (client) => check(client));
}

/**
 * Whether a CDC source names the same host, port and database as `url`: its reader reads the
 * database's outboxes too, with that source's login and publication (`cdc-service.ts`), so what the
 * outbox's login may do to the publication does not matter. (A source reaching the database under
 * another host name is not recognised: the check then runs, with the outbox's login.)
 */
async function cdcReadsDatabase(db: Database, url: string): Promise<boolean> {
  const { rows } = await db.query<{ database_url: string }>('SELECT database_url FROM cdc_sources');
  return rows.some((row) => sameDatabaseLocation(row.database_url, url));
}

/**
 * WAL mode, once the role may replicate: its reader must also set up the database's publication
 * (`outbox-wal-setup.ts`) with this login; when it could not, AUTO is POLL (logged, with why) and
 * WAL asked for is refused, naming the statements to run.
 */
function settlePublication(pool: pg.Pool, table: OutboxTable, requested: OutboxRequestedMode, options: Pick<OutboxAdminOptions, 'logger' | 'publicationOf'>): Promise<OutboxReadMode> {
  const onPoll = (reason: string) => options.logger?.info({ table: table.name, reason }, `outbox mode AUTO settled on POLL: WAL mode is not possible on this database: ${reason}`);
  return settle(pool, requested, onPoll, (client) => assertWalPublicationPossible(client, table, options.publicationOf));
}

/** WAL when `check` passes; when it rejects with a TributaryError, POLL for AUTO (`onPoll` told why), else that error said for the field `mode`. */
async function settle(pool: pg.Pool, requested: OutboxRequestedMode, onPoll: ((reason: string) => void) | undefined, check: (client: pg.PoolClient) => Promise<void>): Promise<OutboxReadMode> {
  const client = await pool.connect();
  try {
    await check(client);
    return 'WAL';
  } catch (error) {
    if (!isTributaryError(error)) throw error;
    if (requested === 'AUTO') {
      onPoll?.(error.message);
      return 'POLL';
    }
    throw new TributaryError(error.code, `WAL mode is not possible on this database: ${error.message}; or use mode POLL`, {
      cause: error,
      details: { ...error.details, field: 'mode' },
    });
  } finally {
    client.release();
  }
}
