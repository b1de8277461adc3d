import { describe, expect, it } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import {
  MAX_FILTER_CLAUSES,
  matchesModelFilter,
  parseModelFilter,
  type ModelFilter,
} from '../../src/pipeline/filters/model-filter.ts';

function filterError(input: unknown): TributaryError {
  try {
    parseModelFilter(input);
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    const tributary = error as TributaryError;
    expect(tributary.code).toBe(ErrorCode.BAD_USER_INPUT);
    expect(tributary.details).toEqual({ field: 'filter' });
    return tributary;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

function matches(filter: Record<string, unknown>, record: Record<string, unknown>): boolean {
  return matchesModelFilter(parseModelFilter(filter), record);
}

/** The operators applied to one value: which of them match. */
function matching(value: unknown, clauses: readonly string[]): string[] {
  return clauses.filter((clause) => matches({ v: clause }, { v: value }));
}

describe('parseModelFilter: valid filters', () => {
  it('matches every record without a filter or with an empty one', () => {
    for (const none of [null, undefined, {}]) {
      const filter = parseModelFilter(none);
      expect(filter.clauses).toEqual([]);
      expect(matchesModelFilter(filter, {})).toBe(true);
    }
  });

  it('parses each operator into a clause with its pre-parsed operand', () => {
    const filter = parseModelFilter({ status: 'eq.active', age: 'gte.18', kind: 'in.(a,b)', deleted_at: 'is.null', seen: 'is.notnull' });
    expect(filter.clauses.map(({ column, operator, operands }) => [column, operator, operands.map((o) => o.text)])).toEqual([
      ['status', 'eq', ['active']],
      ['age', 'gte', ['18']],
      ['kind', 'in', ['a', 'b']],
      ['deleted_at', 'is.null', []],
      ['seen', 'is.notnull', []],
    ]);
    expect(filter.clauses[1]?.operands[0]).toMatchObject({ number: 18, integer: 18n, boolean: undefined });
  });

  it('keeps everything after the first dot as the value', () => {
    expect(parseModelFilter({ email: 'eq.a.b@c.d' }).clauses[0]?.operands[0]?.text).toBe('a.b@c.d');
    expect(parseModelFilter({ name: 'eq.' }).clauses[0]?.operands[0]?.text).toBe('');
  });

  it('accepts several clauses on one column as a list, for ranges', () => {
    const adult = { age: ['gte.18', 'lt.65'] };
    expect(matches(adult, { age: 30 })).toBe(true);
    expect(matches(adult, { age: 65 })).toBe(false);
    expect(matches(adult, { age: 17 })).toBe(false);
  });

  it('reads quoted in-list items with commas, parentheses, spaces, escapes and the empty string', () => {
    const filter = parseModelFilter({ tag: 'in.( a , "b,c", "(d)", " e ", "f\\"g", "h\\\\i", "")' });
    expect(filter.clauses[0]?.operands.map((o) => o.text)).toEqual(['a', 'b,c', '(d)', ' e ', 'f"g', 'h\\i', '']);
  });

  it('freezes the parsed filter so subscribers can share it', () => {
    const filter = parseModelFilter({ status: 'eq.active' });
    expect(Object.isFrozen(filter)).toBe(true);
    expect(Object.isFrozen(filter.clauses)).toBe(true);
    expect(Object.isFrozen(filter.clauses[0]?.operands[0])).toBe(true);
  });
});

describe('parseModelFilter: bad filters are BAD_USER_INPUT naming the column', () => {
  it('rejects anything but a plain object', () => {
    for (const input of ['status=eq.active', 5, true, ['eq.a'], new Date(), new Map([['a', 'eq.b']])]) {
      expect(filterError(input).message).toMatch(/^Invalid filter: expected an object/);
    }
  });

  it('rejects unknown operators, and clauses without one', () => {
    expect(filterError({ status: 'like.act*' }).message).toBe(
      'Invalid filter on "status": unknown operator "like"; use one of eq, neq, gt, gte, lt, lte, in, is',
    );
    expect(filterError({ status: 'active' }).message).toMatch(/^Invalid filter on "status": unknown operator "active"/);
    expect(filterError({ status: 'eq' }).message).toBe('Invalid filter on "status": expected "eq.<value>"');
    expect(filterError({ status: 'EQ.active' }).message).toMatch(/unknown operator "EQ"/);
    expect(filterError({ deleted_at: 'is.maybe' }).message).toBe('Invalid filter on "deleted_at": use "is.null" or "is.notnull"');
    expect(filterError({ deleted_at: 'is' }).message).toMatch(/on "deleted_at"/);
  });

  it('rejects values that are not operator strings', () => {
    for (const value of [18, null, true, { eq: 'x' }, [18]]) {
      expect(filterError({ age: value }).message).toMatch(/^Invalid filter on "age": expected "operator.value"/);
    }
    expect(filterError({ age: [] }).message).toBe('Invalid filter on "age": an empty list of clauses');
  });

  it('rejects empty and malformed column names', () => {
    expect(filterError({ '': 'eq.x' }).message).toBe('Invalid filter on "": an empty column name');
    for (const column of ['a.b', 'data->x', '1st', 'a b', 'x'.repeat(64)]) {
      expect(filterError({ [column]: 'eq.x' }).message).toContain('a column name is 1–63 letters');
    }
  });

  it(`bounds the filter: ${MAX_FILTER_CLAUSES} clauses, 500 characters per clause, 100 in-list items`, () => {
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`c${i}`, 'eq.1']));
    expect(parseModelFilter(many(MAX_FILTER_CLAUSES)).clauses).toHaveLength(MAX_FILTER_CLAUSES);
    expect(filterError(many(MAX_FILTER_CLAUSES + 1)).message).toMatch(/at most 20 clauses/);
    expect(filterError({ ...many(19), age: ['gte.1', 'lte.2'] }).message).toMatch(/^Invalid filter on "age": a filter has at most 20 clauses/);
    expect(parseModelFilter({ name: `eq.${'x'.repeat(497)}` }).clauses).toHaveLength(1);
    expect(filterError({ name: `eq.${'x'.repeat(498)}` }).message).toMatch(/on "name": a clause has at most 500 characters/);
    const items = (n: number) => `in.(${Array.from({ length: n }, (_, i) => i).join(',')})`;
    expect(parseModelFilter({ id: items(100) }).clauses[0]?.operands).toHaveLength(100);
    expect(filterError({ id: items(101) }).message).toMatch(/on "id": an in-list has at most 100 values/);
  });

  it('rejects malformed in-lists', () => {
    const cases: [string, RegExp][] = [
      ['in.a,b', /expected "in\.\(a,b,…\)"/],
      ['in.(a,b', /expected "in\.\(a,b,…\)"/],
      ['in', /expected "in\.\(a,b,…\)"/],
      ['in.()', /at least one value/],
      ['in.( )', /at least one value/],
      ['in.(a,,b)', /an empty in-list value/],
      ['in.(a,)', /an empty in-list value/],
      ['in.("a,b)', /missing its closing quote/],
      ['in.(a"b)', /quote in-list values that contain/],
      ['in.(a(b)', /quote in-list values that contain/],
      ['in.("a"b)', /expected "," between in-list values/],
    ];
    for (const [clause, message] of cases) {
      const error = filterError({ kind: clause });
      expect(error.message, clause).toMatch(message);
      expect(error.message, clause).toContain('on "kind"');
    }
  });
});

describe('matchesModelFilter', () => {
  it('compares strings as strings, by code units', () => {
    expect(matching('active', ['eq.active', 'neq.active', 'eq.Active', 'gt.a', 'lt.b', 'gte.active', 'lte.activf'])).toEqual([
      'eq.active',
      'gt.a',
      'lt.b',
      'gte.active',
      'lte.activf',
    ]);
    expect(matches({ kind: 'in.(a,b)' }, { kind: 'b' })).toBe(true);
    expect(matches({ kind: 'in.(a,b)' }, { kind: 'c' })).toBe(false);
  });

  it('compares numbers numerically with a numeric operand', () => {
    expect(matching(18, ['eq.18', 'eq.18.0', 'eq.1.8e1', 'neq.18', 'gt.9', 'gte.18', 'lt.100', 'lte.17', 'in.(1,18)'])).toEqual([
      'eq.18',
      'eq.18.0',
      'eq.1.8e1',
      'gt.9',
      'gte.18',
      'lt.100',
      'in.(1,18)',
    ]);
    expect(matching(-2.5, ['lt.-2', 'gt.-3', 'eq.-2.5'])).toEqual(['lt.-2', 'gt.-3', 'eq.-2.5']);
  });

  it('never matches a number against a non-numeric operand, except with neq', () => {
    expect(matching(18, ['eq.abc', 'gt.abc', 'lt.abc', 'neq.abc', 'eq.018', 'eq.', 'in.(abc)'])).toEqual(['neq.abc']);
  });

  it('compares decimal strings numerically with a numeric operand (int8 and numeric columns)', () => {
    expect(matching('10', ['gt.9', 'gte.10', 'eq.10.0', 'lt.9'])).toEqual(['gt.9', 'gte.10', 'eq.10.0']);
    expect(matching('10.50', ['eq.10.5', 'lt.11'])).toEqual(['eq.10.5', 'lt.11']);
    // A leading zero marks text, not a number: "01234" is a zip code, compared by code units.
    expect(matching('01234', ['eq.1234', 'eq.01234', 'lt.1234'])).toEqual(['eq.01234', 'lt.1234']);
  });

  it('compares long integers exactly, beyond what a double holds', () => {
    expect(matching('12345678901234567891', ['eq.12345678901234567890', 'gt.12345678901234567890', 'eq.12345678901234567891'])).toEqual([
      'gt.12345678901234567890',
      'eq.12345678901234567891',
    ]);
    expect(matching(2n ** 64n, ['eq.18446744073709551616', 'gt.18446744073709551615', 'eq.18446744073709551617', 'gt.1.5'])).toEqual([
      'eq.18446744073709551616',
      'gt.18446744073709551615',
      'gt.1.5',
    ]);
    expect(matching(10n, ['eq.10', 'lt.10.5', 'eq.abc', 'neq.abc'])).toEqual(['eq.10', 'lt.10.5', 'neq.abc']);
  });

  it('compares booleans with true and false only', () => {
    expect(matching(true, ['eq.true', 'eq.false', 'neq.false', 'gt.false', 'eq.1', 'eq.TRUE', 'in.(true)'])).toEqual([
      'eq.true',
      'neq.false',
      'gt.false',
      'in.(true)',
    ]);
    expect(matching('true', ['eq.true'])).toEqual(['eq.true']);
  });

  it('compares dates by instant with ISO dates and timestamps', () => {
    const at = new Date('2024-05-01T10:00:00Z');
    expect(
      matching(at, ['gte.2024-05-01', 'lt.2024-05-02', 'eq.2024-05-01T10:00:00Z', 'eq.2024-05-01T12:00:00+02:00', 'gt.2024-05-01T10:00:01Z', 'eq.yesterday']),
    ).toEqual(['gte.2024-05-01', 'lt.2024-05-02', 'eq.2024-05-01T10:00:00Z', 'eq.2024-05-01T12:00:00+02:00']);
  });

  it('matches null only with is.null, never with eq or neq', () => {
    expect(matching(null, ['is.null', 'is.notnull', 'eq.null', 'neq.x', 'in.(null)', 'lt.z'])).toEqual(['is.null']);
    expect(matching('x', ['is.null', 'is.notnull'])).toEqual(['is.notnull']);
  });

  it('never matches a missing column, whatever the operator', () => {
    for (const clause of ['eq.x', 'neq.x', 'is.null', 'is.notnull', 'in.(x)', 'gt.0']) {
      expect(matches({ status: clause }, {}), clause).toBe(false);
      expect(matches({ status: clause }, { status: undefined }), clause).toBe(false);
    }
  });

  it('reads only own properties, never inherited ones', () => {
    expect(matches({ status: 'eq.active' }, Object.create({ status: 'active' }) as Record<string, unknown>)).toBe(false);
    expect(matches({ constructor: 'is.notnull' }, {})).toBe(false);
    expect(matchesModelFilter(parseModelFilter(JSON.parse('{"__proto__": "is.notnull"}')), {})).toBe(false);
  });

  it('matches objects, lists and bytes only with neq', () => {
    for (const value of [{ a: 1 }, ['a'], new Uint8Array([1])]) {
      expect(matching(value, ['eq.a', 'neq.a', 'gt.a', 'in.(a)', 'is.notnull'])).toEqual(['neq.a', 'is.notnull']);
    }
  });

  it('AND-combines clauses', () => {
    const filter: ModelFilter = parseModelFilter({ status: 'eq.active', age: 'gte.18', kind: 'in.(a,b)', deleted_at: 'is.null' });
    const record = { status: 'active', age: 30, kind: 'a', deleted_at: null };
    expect(matchesModelFilter(filter, record)).toBe(true);
    expect(matchesModelFilter(filter, { ...record, status: 'lead' })).toBe(false);
    expect(matchesModelFilter(filter, { ...record, age: 17 })).toBe(false);
    expect(matchesModelFilter(filter, { ...record, kind: 'c' })).toBe(false);
    expect(matchesModelFilter(filter, { ...record, deleted_at: '2024-01-01' })).toBe(false);
    const { age: _age, ...withoutAge } = record;
    expect(matchesModelFilter(filter, withoutAge)).toBe(false);
  });
});
