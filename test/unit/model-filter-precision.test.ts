import { describe, expect, it } from 'vitest';
import { matchesModelFilter, parseModelFilter } from '../../src/pipeline/filters/model-filter.ts';

/** The clauses that match `value`, of those given. */
function matching(value: unknown, clauses: readonly string[]): string[] {
  return clauses.filter((clause) => matchesModelFilter(parseModelFilter({ n: clause }), { n: value }));
}

describe('model filters compare numbers exactly', () => {
  it('compares a long integer text with a fractional operand exactly', () => {
    expect(matching('12345678901234567', ['lt.12345678901234567.5', 'gt.12345678901234567.5', 'eq.12345678901234567.0', 'gt.12345678901234566.99999'])).toEqual([
      'lt.12345678901234567.5',
      'eq.12345678901234567.0',
      'gt.12345678901234566.99999',
    ]);
  });

  it('compares long decimal fractions digit by digit', () => {
    expect(matching('0.10000000000000000001', ['eq.0.1', 'gt.0.1', 'lt.0.10000000000000000002', 'eq.1.0000000000000000001e-1'])).toEqual([
      'gt.0.1',
      'lt.0.10000000000000000002',
      'eq.1.0000000000000000001e-1',
    ]);
    expect(matching('-0.5', ['lt.-0.49999999999999999999', 'gt.-0.50000000000000000001', 'eq.-5e-1', 'lt.0'])).toEqual([
      'lt.-0.49999999999999999999',
      'gt.-0.50000000000000000001',
      'eq.-5e-1',
      'lt.0',
    ]);
  });

  it('compares an integer number with an integer operand exactly', () => {
    expect(matching(9007199254740992, ['eq.9007199254740993', 'lt.9007199254740993', 'eq.9007199254740992', 'eq.9007199254740992.0'])).toEqual([
      'lt.9007199254740993',
      'eq.9007199254740992',
      'eq.9007199254740992.0',
    ]);
  });

  it('compares a fractional number as the decimal it is written as', () => {
    expect(matching(0.1, ['eq.0.1', 'eq.0.10000000000000000001', 'lt.0.10000000000000000001', 'eq.1e-1'])).toEqual(['eq.0.1', 'lt.0.10000000000000000001', 'eq.1e-1']);
    expect(matching(1e21, ['eq.1000000000000000000000', 'gt.999999999999999999999.9'])).toEqual(['eq.1000000000000000000000', 'gt.999999999999999999999.9']);
    expect(matching(-0, ['eq.0', 'eq.-0'])).toEqual(['eq.0', 'eq.-0']);
  });

  it('compares a bigint with a fractional operand exactly', () => {
    expect(matching(12345678901234567n, ['lt.12345678901234567.5', 'gt.12345678901234566.5'])).toEqual(['lt.12345678901234567.5', 'gt.12345678901234566.5']);
  });
});
