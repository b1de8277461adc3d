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
  /**
   * Why the two figures are not comparable (a peer's publisher lagged, or it delivered below the
   * offered rate: it was measured under another load); the ratio is then printed as ✗, not as a
   * number. @default comparable
   */
  readonly invalid?: string;
}

/**
 * `  tributary/yoga-graphql-ws  ops/s 1.12×  p50 0.62×  p99 ✗` and, for the ratios marked invalid,
 * `  ✗ not comparable: …` with each distinct reason.
 */
export function formatRatioLine(ours: string, peer: string, ratios: readonly Ratio[]): string {
  const reasons = [...new Set(ratios.flatMap((ratio) => (ratio.invalid === undefined ? [] : [ratio.invalid])))];
  const cells = ratios.map((ratio) => `${ratio.metric} ${ratio.invalid === undefined ? formatRatio(ratio.value) : '✗'}`);
  return `  ${ours}/${peer}  ${cells.join('  ')}${reasons.length > 0 ? `  — ✗ not comparable: ${reasons.join('; ')}` : ''}`;
}

export function printRatioLine(ours: string, peer: string, ratios: readonly Ratio[]): void {
  print(formatRatioLine(ours, peer, ratios));
}

/** Why a ratio of `ours` to `peer` is not comparable: the first of either side's reasons, named; undefined when both are. */
export function notComparable(ours: string, oursWhy: string | undefined, peer: string, peerWhy: string | undefined): string | undefined {
  if (oursWhy !== undefined) return `${ours}: ${oursWhy}`;
  if (peerWhy !== undefined) return `${peer}: ${peerWhy}`;
  return undefined;
}
