/**
 * `npm run outbox:sql [table]`: prints the DDL of the outbox table (`event_outbox`, or the table
 * given as `name` or `schema.name`), for an operator who creates it by hand or in a migration.
 */
import { isTributaryError } from '../errors.ts';
import { DEFAULT_OUTBOX_TABLE, outboxTable, outboxTableDdl } from '../pipeline/outbox/outbox-sql.ts';

const name = process.argv[2] ?? DEFAULT_OUTBOX_TABLE;
try {
  process.stdout.write(outboxTableDdl(outboxTable(name)));
} catch (error) {
  if (!isTributaryError(error)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exitCode = 1;
}
