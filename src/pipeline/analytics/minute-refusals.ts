/**
 * Minute rows Postgres refuses for what they hold — a text it cannot store (U+0000), a value out
 * of range — rather than for an outage. Such a row is set aside (logged, counted, dropped) so that
 * its minute's other rows, and the later minutes of every tenant, are still written; an outage is
 * not a refusal and is left to the flusher's caller to retry, in order.
 */
import type { Queryable } from '../../db/database.ts';
import { SqlStateClass, sqlStateOf } from '../../errors.ts';
import { isDatabaseUnreachable } from '../connection-errors.ts';
import { addToWindow, insertMinuteRows, type StatsRow } from './stats-store.ts';

/**
 * SQLSTATE classes of a refusal of what is written: `22` data_exception (a value its column cannot
 * take, e.g. 22021 for a NUL in text), `23` integrity_constraint_violation, `54`
 * program_limit_exceeded (a value too large). Anything else — a lost connection (`08`), a server
 * out of resources (`53`), a timeout — is an outage, retried.
 */
const CONTENT_CLASSES: readonly string[] = [SqlStateClass.DATA_EXCEPTION, SqlStateClass.INTEGRITY_CONSTRAINT_VIOLATION, SqlStateClass.PROGRAM_LIMIT_EXCEEDED];

/** Whether Postgres refused a statement for the values it writes (not an outage). */
export function isContentRefusal(error: unknown): boolean {
  if (isDatabaseUnreachable(error)) return false;
  const state = sqlStateOf(error);
  return state !== undefined && /^[0-9A-Z]{5}$/.test(state) && CONTENT_CLASSES.some((stateClass) => state.startsWith(stateClass));
}

/** A row set aside, with the SQLSTATE and message of its refusal. */
export interface RefusedRow {
  readonly row: StatsRow;
  readonly state: string | undefined;
  readonly message: string;
}

const SAVEPOINT = 'analytics_minute_row';

/**
 * Writes a minute's rows one at a time (the minute row, then its hour and day), each under a
 * savepoint inside the caller's transaction: a row refused for its content is rolled back alone
 * and returned; any other failure is thrown (and the caller's transaction rolls back).
 */
export async function writeRowsOneByOne(
  tx: Queryable,
  start: Date,
  windows: { readonly hour: Date; readonly day: Date },
  rows: readonly StatsRow[],
): Promise<{ written: StatsRow[]; refused: RefusedRow[] }> {
  const written: StatsRow[] = [];
  const refused: RefusedRow[] = [];
  for (const row of rows) {
    await tx.query(`SAVEPOINT ${SAVEPOINT}`);
    try {
      await insertMinuteRows(tx, start, [row]);
      await addToWindow(tx, 'hour', windows.hour, [row]);
      await addToWindow(tx, 'day', windows.day, [row]);
    } catch (error) {
      if (!isContentRefusal(error)) throw error;
      await tx.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
      refused.push({ row, state: sqlStateOf(error), message: error instanceof Error ? error.message : String(error) });
      continue;
    }
    await tx.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    written.push(row);
  }
  return { written, refused };
}
