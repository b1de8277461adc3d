import { describe, expect, it } from 'vitest';
import { MAX_VARIABLE_DEPTH, variablesTooDeep } from '../../src/server/operation-limits.ts';

/** `levels` objects (or arrays) nested in one another, a scalar in the innermost. */
function nested(levels: number, kind: 'object' | 'array'): unknown {
  let value: unknown = 'leaf';
  for (let level = 0; level < levels; level++) value = kind === 'object' ? { next: value, n: level } : [level, value];
  return value;
}

describe('variablesTooDeep', () => {
  it.each(['object', 'array'] as const)('passes %ss nested exactly MAX_VARIABLE_DEPTH levels and refuses one more', (kind) => {
    expect(MAX_VARIABLE_DEPTH).toBe(100);
    expect(variablesTooDeep({ input: nested(100, kind) })).toBeUndefined();
    const refused = variablesTooDeep({ other: 1, input: nested(101, kind) });
    expect(refused?.message).toBe('Variable "$input" nests objects and arrays more than 100 levels deep');
    expect(refused?.extensions).toEqual({ code: 'BAD_USER_INPUT', http: { status: 400 } });
  });

  it("counts from the variable's value itself: `input` is level 1", () => {
    expect(variablesTooDeep({ input: { payload: nested(99, 'object') } })).toBeUndefined();
    expect(variablesTooDeep({ input: { payload: nested(100, 'array') } })).toBeDefined();
  });

  it('refuses a value far deeper than the stack could walk, and passes wide flat values and scalars', () => {
    expect(variablesTooDeep({ input: nested(100_000, 'array') })).toBeDefined();
    const wide = Object.fromEntries(Array.from({ length: 100_000 }, (_, index) => [`key${index}`, { index }]));
    expect(variablesTooDeep({ input: wide, list: Array.from({ length: 100_000 }, (_, index) => [index]) })).toBeUndefined();
    expect(variablesTooDeep({ a: 1, b: 'text', c: null, d: true })).toBeUndefined();
    expect(variablesTooDeep(undefined)).toBeUndefined();
  });

  it('looks only at own properties', () => {
    const inherited: Record<string, unknown> = Object.create({ deep: nested(200, 'object') }) as Record<string, unknown>;
    inherited['shallow'] = 1;
    expect(variablesTooDeep({ input: inherited })).toBeUndefined();
    expect(variablesTooDeep(Object.create({ input: nested(200, 'object') }))).toBeUndefined();
  });
});
