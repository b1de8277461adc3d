/**
 * Plain-text output: aligned tables and ratio lines. Everything goes through `print` so a
 * workload never writes to the terminal directly.
 */
import { formatRatio } from './stats.ts';

export type Align = 'left' | 'right';

export interface Column {
  readonly header: string;
  /** @default 'right' (numbers); use 'left' for names */
  readonly align?: Align;
}

export interface Table {
  readonly title: string;
  readonly columns: readonly Column[];
  readonly rows: readonly (readonly string[])[];
  /** Lines printed under the table (legend, caveats). */
  readonly notes?: readonly string[];
}

export function print(line = ''): void {
  console.log(line);
}

/** The message of anything thrown, for a table cell or a failure line. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Prints a table with a rule under the header; cells are padded to the widest in each column. */
export function printTable(table: Table): void {
  const widths = table.columns.map((column, index) =>
    Math.max(column.header.length, ...table.rows.map((row) => (row[index] ?? '').length)),
  );
  const renderRow = (cells: readonly string[]) =>
    table.columns
      .map((column, index) => {
        const cell = cells[index] ?? '';
        const width = widths[index] ?? 0;
        return (column.align ?? 'right') === 'left' ? cell.padEnd(width) : cell.padStart(width);
      })
      .join('  ')
      .trimEnd();
  const lines = [
    table.title,
    renderRow(table.columns.map((column) => column.header)),
    widths.map((width) => '-'.repeat(width)).join('  '),
    ...table.rows.map(renderRow),
    ...(table.notes ?? []).map((note) => `  ${note}`),
  ];
  print(lines.join('\n'));
}

export interface Ratio {
  /** What is compared, e.g. `p50` or `ops/s`. */
  readonly metric: string;
  /** ours / peer */
  readonly value: number;
}

/** `  tributary/yoga-graphql-ws  ops/s 1.12×  p50 0.62×  p99 0.80×` */
export function printRatioLine(ours: string, peer: string, ratios: readonly Ratio[]): void {
  print(`  ${ours}/${peer}  ${ratios.map((ratio) => `${ratio.metric} ${formatRatio(ratio.value)}`).join('  ')}`);
}
