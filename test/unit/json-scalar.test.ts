/**
 * The `JSON` scalar refuses, instead of turning into `undefined` or `null`, what JSON cannot
 * carry: an enum value written where a string was meant, a variable the request left out, a
 * number too large for a double, an integer literal past 2^53 - 1. graphql-scalars' resolver
 * mapped the first two to `undefined` — read downstream as "delete this key" — and the third to
 * Infinity, stored as `null`.
 */
import { GraphQLError, parseValue } from 'graphql';
import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../src/errors.ts';
import { assertStorableJson } from '../../src/resolvers/json-input.ts';
import { JsonScalar } from '../../src/schema/json-scalar.ts';

/** The literal as a running operation coerces it (graphql-js hands over the request's variables). */
const literal = (source: string, variables: Record<string, unknown> = {}): unknown => JsonScalar.parseLiteral(parseValue(source), variables);

/** What the scalar throws for `run`: the message and code, or undefined when it accepts. */
function refusal(run: () => unknown): { message: string; code: unknown } | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (!(error instanceof GraphQLError)) throw error;
    return { message: error.message, code: error.extensions['code'] };
  }
}

describe('the JSON scalar', () => {
  it('reads strings, numbers, booleans, null, lists and objects written in the document', () => {
    expect(literal('{ s: "ACTIVE", n: -12, f: 1.5e3, t: true, z: null, list: [1, "two", [false], { deep: {} }], empty: [] }')).toEqual({
      s: 'ACTIVE',
      n: -12,
      f: 1500,
      t: true,
      z: null,
      list: [1, 'two', [false], { deep: {} }],
      empty: [],
    });
    expect(literal(`${Number.MAX_SAFE_INTEGER}`)).toBe(Number.MAX_SAFE_INTEGER);
    expect(literal('1.7976931348623157e308')).toBe(Number.MAX_VALUE);
  });

  it('keeps a `__proto__` field as a key instead of a prototype', () => {
    const value = literal('{ __proto__: { polluted: true } }') as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses an enum value with BAD_USER_INPUT, saying where it is and to quote it', () => {
    expect(refusal(() => literal('{ status: ACTIVE }'))).toEqual({
      message: 'An enum value `ACTIVE` at /status is not JSON: quote it as a string ("ACTIVE")',
      code: 'BAD_USER_INPUT',
    });
    expect(refusal(() => literal('[1, { a: [ENUMV] }]'))?.message).toMatch(/^An enum value `ENUMV` at \/1\/a\/0 is not JSON/);
    // While the document is validated (no variables at hand): the enum is refused there already.
    expect(refusal(() => JsonScalar.parseLiteral(parseValue('ACTIVE'), undefined))?.code).toBe('BAD_USER_INPUT');
  });

  it('refuses a variable the request did not send, and keeps one sent as null', () => {
    expect(refusal(() => literal('{ keep: $v }'))).toEqual({
      message: 'Variable `$v` at /keep was not provided: a JSON value cannot leave it out (send it, or null)',
      code: 'BAD_USER_INPUT',
    });
    expect(refusal(() => literal('{ list: [1, $v] }'))?.message).toMatch(/^Variable `\$v` at \/list\/1 was not provided/);
    expect(literal('{ keep: $v, list: [1, $w] }', { v: null, w: { x: [2] } })).toEqual({ keep: null, list: [1, { x: [2] }] });
    // While the document is validated graphql-js has no variables: the literal is let through, and checked when it runs.
    expect(JsonScalar.parseLiteral(parseValue('{ keep: $v }'), undefined)).toEqual({ keep: null });
  });

  it('refuses a number literal too large for a double, and an integer literal past 2^53 - 1', () => {
    expect(refusal(() => literal('{ f: 1e400 }'))).toEqual({ message: 'The number 1e400 at /f is too large for JSON (at most about 1.8e308)', code: 'BAD_USER_INPUT' });
    expect(refusal(() => literal('-1e400'))?.message).toBe('The number -1e400 is too large for JSON (at most about 1.8e308)');
    expect(refusal(() => literal('{ big: 12345678901234567890 }'))).toEqual({
      message: 'The integer 12345678901234567890 at /big is beyond ±9007199254740991 and cannot be kept exactly: send it as a string',
      code: 'BAD_USER_INPUT',
    });
    expect(refusal(() => literal(`${Number.MAX_SAFE_INTEGER + 1}`))?.code).toBe('BAD_USER_INPUT');
  });

  it('refuses in a variable a number JSON.parse made Infinity, undefined and other values JSON has no form for', () => {
    // graphql-js wraps a variable's refusal in `Variable "$x" got invalid value …`; the masker makes it BAD_USER_INPUT.
    expect(refusal(() => JsonScalar.parseValue(JSON.parse('{"a":[1,1e400]}')))?.message).toBe(
      'The number Infinity at /a/1 is not one JSON can carry (too large for a double, or not a number)',
    );
    expect(refusal(() => JsonScalar.parseValue({ 'a/b': { c: undefined } }))?.message).toBe('A value of type undefined at /a~1b/c is not JSON');
    expect(refusal(() => JsonScalar.parseValue(Number.NaN))?.message).toBe('The number NaN is not one JSON can carry (too large for a double, or not a number)');
    expect(refusal(() => JsonScalar.parseValue([1n]))?.message).toBe('A value of type bigint at /0 is not JSON');
    const fine = JSON.parse('{"a":[1,-0,1e308,"x",null,true,{"b":{}}]}') as unknown;
    expect(JsonScalar.parseValue(fine)).toBe(fine);
  });

  it('keeps graphql-scalars\u2019 serialize and description', () => {
    expect(JsonScalar.serialize({ a: 1 })).toEqual({ a: 1 });
    expect(JsonScalar.description).toMatch(/ECMA-404/);
  });
});

describe('assertStorableJson, behind the scalar', () => {
  const refused = (value: unknown) => {
    try {
      assertStorableJson('patch', value);
      return undefined;
    } catch (error) {
      if (!(error instanceof TributaryError)) throw error;
      return { code: error.code, details: error.details, message: error.message };
    }
  };

  it('refuses undefined anywhere inside — a silent deletion once merged or stored — with BAD_USER_INPUT and the path', () => {
    expect(refused({ keep: undefined })).toEqual({
      code: 'BAD_USER_INPUT',
      details: { field: 'patch', path: '/keep' },
      message: 'patch has no value (undefined) at /keep, which JSON cannot carry',
    });
    expect(refused({ list: [1, undefined] })?.details).toEqual({ field: 'patch', path: '/list/1' });
    expect(refused(undefined)?.details).toEqual({ field: 'patch', path: '' });
  });

  it('refuses a number that is not finite, which would be stored as null', () => {
    expect(refused({ a: { b: Number.POSITIVE_INFINITY } })).toMatchObject({ details: { field: 'patch', path: '/a/b' }, message: 'patch has the number Infinity at /a/b, which JSON cannot carry' });
    expect(refused({ a: [Number.NaN] })?.details).toEqual({ field: 'patch', path: '/a/0' });
    expect(refused({ a: [1, null, -0, { b: 'x' }] })).toBeUndefined();
  });
});
