import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../src/errors.ts';
import { assertStorableJson, assertStorableText } from '../../src/resolvers/json-input.ts';

/** What `assertStorableJson` throws for `value`, as code and details; undefined when it accepts it. */
function refusal(value: unknown): { code: string; details: Readonly<Record<string, unknown>>; message: string } | undefined {
  try {
    assertStorableJson('data', value);
    return undefined;
  } catch (error) {
    if (!(error instanceof TributaryError)) throw error;
    return { code: error.code, details: error.details, message: error.message };
  }
}

describe('assertStorableJson', () => {
  it('accepts what jsonb stores, escapes written out included', () => {
    for (const value of [{}, { a: 'plain', b: [1, null, true, { c: 'é 😀 \u0001' }] }, { text: '\\u0000' }, 'top', 5, null]) {
      expect(refusal(value)).toBeUndefined();
    }
  });

  it('refuses a NUL or half a surrogate pair in any string or key, pointing at it', () => {
    expect(refusal({ a: { b: ['ok', 'x\u0000'] } })?.details).toEqual({ field: 'data', path: '/a/b/1' });
    expect(refusal({ a: { ['k\u0000']: 1 } })?.details).toEqual({ field: 'data', path: '/a/k\\u0000' });
    expect(refusal({ 'a/b~c': '\ud800' })?.details).toEqual({ field: 'data', path: '/a~1b~0c' });
    expect(refusal({ low: 'x\udfffy' })?.details).toEqual({ field: 'data', path: '/low' });
    expect(refusal({ swapped: '\ude00\ud83d' })?.details).toEqual({ field: 'data', path: '/swapped' });
    expect(refusal('\u0000')).toMatchObject({ code: 'BAD_USER_INPUT', details: { field: 'data', path: '' } });
    expect(refusal({ a: '\u0000' })?.message).toBe(
      'data has a string with a NUL character (U+0000) or half of a surrogate pair at /a; the database cannot store it',
    );
  });

  it('answers a bounded pointer for a long key or a deep value, without recursing', () => {
    let deep: unknown = 'x\u0000';
    for (let depth = 0; depth < 100_000; depth += 1) deep = [deep];
    const path = refusal(deep)?.details['path'] as string;
    expect(path.startsWith('/0/0/0/')).toBe(true);
    expect(path.length).toBeLessThanOrEqual(201);
    const key = `${'k'.repeat(100_000)}\u0000`;
    expect((refusal({ [key]: 1 })?.details['path'] as string).length).toBeLessThanOrEqual(201);
  });
});

describe('assertStorableText', () => {
  it('refuses a NUL with BAD_USER_INPUT naming the field, and lets anything else through', () => {
    expect(() => assertStorableText('databaseUrl', 'postgres://h/db')).not.toThrow();
    expect(() => assertStorableText('databaseUrl', 'postgres://h/db#\u0000')).toThrow(
      expect.objectContaining({ code: 'BAD_USER_INPUT', details: { field: 'databaseUrl' } }),
    );
  });
});
