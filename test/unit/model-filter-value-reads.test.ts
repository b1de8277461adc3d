import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { matchesModelFilter, parseModelFilter } from '../../src/pipeline/filters/model-filter.ts';

/** Counts the dates and times read from here on (operands are read when the filter is parsed, before). */
function countDateReads(): () => number {
  const parse = vi.spyOn(Date, 'parse');
  onTestFinished(() => parse.mockRestore());
  return () => parse.mock.calls.length;
}

const dates = Array.from({ length: 45 }, (_, k) => `2020-01-${String((k % 28) + 1).padStart(2, '0')}`);
/** A timestamp longer than the strings read once per clause: its fraction has 100 digits. */
const longTime = (digit: number) => `2024-06-01T10:30:00.${String(digit).repeat(100)}Z`;

describe('model filters read a record value once, not once per operand', () => {
  it("reads a record's date once per clause for a whole in-list", () => {
    const filter = parseModelFilter({ day: `in.(${dates.join(',')})` });
    const reads = countDateReads();
    expect(matchesModelFilter(filter, { day: '2030-01-01' })).toBe(false);
    expect(reads()).toBe(1);
    expect(matchesModelFilter(filter, { day: '2020-01-28' })).toBe(true);
    expect(reads()).toBe(2);
  });

  it('reads a long value once for every clause and filter that judge the same record', () => {
    const filters = Array.from({ length: 10 }, (_, k) => parseModelFilter({ at: [`gt.2020-01-0${(k % 9) + 1}`, `in.(${dates.slice(0, 30).join(',')},2024-06-01T10:30:00.111Z)`] }));
    const record = { at: longTime(1) };
    const reads = countDateReads();
    expect(filters.map((filter) => matchesModelFilter(filter, record))).toEqual(filters.map(() => true));
    expect(reads()).toBe(1);
    // Another record with the same value is read again: the forms belong to the record.
    expect(matchesModelFilter(filters[0]!, { at: longTime(1) })).toBe(true);
    expect(reads()).toBe(2);
  });

  it('judges a record again by its new value when it changed since', () => {
    const filter = parseModelFilter({ at: 'lt.2024-06-01T10:30:00.5Z' });
    const record = { at: longTime(1) };
    expect(matchesModelFilter(filter, record)).toBe(true);
    record.at = longTime(9);
    expect(matchesModelFilter(filter, record)).toBe(false);
  });

  it('compares a long numeric with every operand as before', () => {
    const nines = '9'.repeat(400);
    const value = `${nines}.5`;
    const clauses = [`in.(1,${nines}.50,2)`, `gt.${nines}`, 'lt.1e400', 'gt.9.99e399', 'eq.1e400', 'neq.x', 'lt.x', `in.(a,"${value}")`, 'gte.2024-06-01'];
    const record = { n: value };
    expect(clauses.filter((clause) => matchesModelFilter(parseModelFilter({ n: clause }), record))).toEqual([
      `in.(1,${nines}.50,2)`,
      `gt.${nines}`,
      'lt.1e400',
      'gt.9.99e399',
      'neq.x',
      'lt.x',
      `in.(a,"${value}")`,
      'gte.2024-06-01',
    ]);
  });

  it('compares numerics with long runs of zeros exactly', () => {
    const zeros = '0'.repeat(100_000);
    const matching = (value: string, clauses: readonly string[]) => clauses.filter((clause) => matchesModelFilter(parseModelFilter({ n: clause }), { n: value }));
    expect(matching(`1${zeros}1`, ['gt.1e100001', 'lt.1.0000000001e100001', 'eq.1e100001', 'lt.2e100001'])).toEqual(['gt.1e100001', 'lt.1.0000000001e100001', 'lt.2e100001']);
    expect(matching(`1${zeros}`, ['eq.1e100000', 'gt.1e100000', 'lt.1.00000000000000000001e100000'])).toEqual(['eq.1e100000', 'lt.1.00000000000000000001e100000']);
    expect(matching(`-0.${zeros}1${zeros}`, ['eq.-1e-100001', 'lt.0', 'gt.-1.1e-100001'])).toEqual(['eq.-1e-100001', 'lt.0', 'gt.-1.1e-100001']);
    expect(matching(`0.${zeros}`, ['eq.0', 'eq.-0', 'gt.-1e-9'])).toEqual(['eq.0', 'eq.-0', 'gt.-1e-9']);
  });
});
