/**
 * The migration folder read: numbered, forward-only SQL files, in name order, and how each is to
 * be run (in a transaction of its own, or statement by statement outside any).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const FILE_NAME = /^\d{4}_[a-z0-9_]+\.sql$/;

/**
 * The first line of a migration that must run outside a transaction (`CREATE INDEX CONCURRENTLY`,
 * `DROP INDEX CONCURRENTLY`). The rules such a file follows are in `migrations.ts`.
 */
const NO_TRANSACTION_MARKER = '-- tributary:no-transaction';

/**
 * Where a no-transaction file's statements end: a `;` last on its line. Postgres runs a string of
 * several statements as one implicit transaction, where `CREATE INDEX CONCURRENTLY` is refused, so
 * they are sent one at a time; a rule this plain needs no SQL parser, at the price of what it rules
 * out (see DOLLAR_QUOTE).
 */
const STATEMENT_END = /;\s*$/m;

/**
 * A dollar quote (`$$`, `$body$`): a function or DO body, whose `;` at a line's end are no
 * statement's end. Such files are refused rather than cut in the wrong places; a function belongs
 * in an ordinary migration anyway.
 */
const DOLLAR_QUOTE = /\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/;

export type MigrationFile =
  | { readonly name: string; readonly transaction: true; readonly sql: string }
  | { readonly name: string; readonly transaction: false; readonly statements: readonly string[] };

/** Every migration in `directory`, in name order. Throws on a file not named `NNNN_lower_snake_case.sql`. */
export async function readMigrationFiles(directory: string): Promise<MigrationFile[]> {
  const entries = await readdir(directory);
  const names = entries.filter((entry) => entry.endsWith('.sql')).sort();
  const misnamed = names.find((name) => !FILE_NAME.test(name));
  if (misnamed !== undefined) {
    throw new Error(`Migration file "${misnamed}" must be named NNNN_lower_snake_case.sql`);
  }
  return Promise.all(names.map(async (name) => parseMigration(name, await readFile(join(directory, name), 'utf8'))));
}

/**
 * A migration file's text as the runner takes it: whole, or (with the marker) as its statements,
 * each ending with `;` at the end of a line. A piece holding only `--` comments is no statement.
 */
export function parseMigration(name: string, sql: string): MigrationFile {
  const firstLine = sql.split('\n', 1)[0]?.trim();
  if (firstLine !== NO_TRANSACTION_MARKER) return { name, transaction: true, sql };
  const quote = DOLLAR_QUOTE.exec(sql)?.[0];
  if (quote !== undefined) {
    throw new Error(
      `Migration file "${name}" is marked no-transaction but holds a dollar quote (${quote}): its statements are cut at each ";" ending a line, so functions and DO blocks go in an ordinary migration`,
    );
  }
  const statements = sql
    .split(STATEMENT_END)
    .map((piece) => piece.trim())
    .filter((piece) => piece.split('\n').some((line) => line.trim() !== '' && !line.trim().startsWith('--')));
  if (statements.length === 0) throw new Error(`Migration file "${name}" holds no statement`);
  return { name, transaction: false, statements };
}
