/**
 * `npm run outbox:sql [table]`: prints the DDL of the outbox table (`event_outbox`, or the table
 * given as `name` or `schema.name`), for an operator who creates it by hand or in a migration.
 * `--help` prints the usage (it is not taken for a table name).
 */
import { parseArgs } from 'node:util';
import { isTributaryError } from '../errors.ts';
import { DEFAULT_OUTBOX_TABLE, outboxTable, outboxTableDdl } from '../pipeline/outbox/outbox-sql.ts';

export const OUTBOX_SQL_USAGE = `Usage: npm run -s outbox:sql -- [table]
Prints the SQL that creates the outbox table and its indexes (idempotent: safe to run again),
to run yourself or to put in a migration of your application's database.

  table        name or schema.name, lower-case letters, digits and _ (default: ${DEFAULT_OUTBOX_TABLE})
  --help, -h   this text

e.g. npm run -s outbox:sql -- app.${DEFAULT_OUTBOX_TABLE} > outbox.sql`;

/** What the command prints, where, and its exit code: 2 for wrong options, 1 for a name that is not a table. */
export function outboxSqlCommand(args: readonly string[]): { readonly stdout?: string; readonly stderr?: string; readonly exitCode: 0 | 1 | 2 } {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], strict: true, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
  } catch (error) {
    // parseArgs says which option and why ("Unknown option '--tabel'").
    return { stderr: `${error instanceof Error ? error.message : String(error)} (npm run outbox:sql -- --help)`, exitCode: 2 };
  }
  if (parsed.values.help === true) return { stdout: `${OUTBOX_SQL_USAGE}\n`, exitCode: 0 };
  if (parsed.positionals.length > 1) {
    return { stderr: `one table at most, got ${parsed.positionals.length}: ${parsed.positionals.join(', ')} (npm run outbox:sql -- --help)`, exitCode: 2 };
  }
  try {
    return { stdout: outboxTableDdl(outboxTable(parsed.positionals[0] ?? DEFAULT_OUTBOX_TABLE)), exitCode: 0 };
  } catch (error) {
    if (!isTributaryError(error)) throw error;
    return { stderr: error.message, exitCode: 1 };
  }
}

if (import.meta.main) {
  const { stdout, stderr, exitCode } = outboxSqlCommand(process.argv.slice(2));
  if (stdout !== undefined) process.stdout.write(stdout);
  if (stderr !== undefined) process.stderr.write(`outbox:sql: ${stderr}\n`);
  process.exitCode = exitCode;
}
