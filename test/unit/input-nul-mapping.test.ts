/**
 * A mapping's definition is stored as jsonb, which cannot hold a NUL character (U+0000) or half of
 * a surrogate pair. A literal holding one used to pass validation and the table check and fail the
 * insert, as an internal error; parseMapping refuses it now, with the literal's path.
 */
import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../src/errors.ts';
import { MAPPING_NAME, parseMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { BASE_MAPPING as BASE } from '../helpers/cdc-mappings.ts';

function refusal(overrides: Record<string, unknown>): { path: unknown; message: string } {
  try {
    parseMapping({ ...BASE, ...overrides });
  } catch (error) {
    if (!(error instanceof TributaryError)) throw error;
    expect(error.code).toBe('BAD_USER_INPUT');
    expect(error.details['field']).toBe('mapping');
    return { path: error.details['path'], message: error.message };
  }
  throw new Error(`expected ${JSON.stringify(overrides)} to be refused`);
}

describe('parseMapping: literals the database cannot store', () => {
  it('refuses a NUL or half a surrogate pair in any literal of when or payload, naming its path', () => {
    expect(refusal({ when: { eq: ['$row.status', 'vip\u0000'] } })).toEqual({
      path: 'when.eq[1]',
      message: 'Invalid mapping: when.eq[1]: a string may not hold a NUL character (U+0000) or half of a surrogate pair',
    });
    expect(refusal({ when: { and: [{ changed: 'status' }, { in: ['$row.kind', ['a', '\ud800']] }] } }).path).toBe('when.and[1].in[1][1]');
    expect(refusal({ when: { not: { eq: ['$$\u0000', '$row.kind'] } } }).path).toBe('when.not.eq[0]');
    expect(refusal({ payload: { id: '$row.id', tags: ['crm', { note: 'x\u0000' }] } }).path).toBe('payload.tags[1].note');
    expect(refusal({ payload: { first: 'a\u0000', second: 'b\u0000' } }).message).toMatch(/payload\.first: .*; payload\.second: /);
  });

  it('still takes every other string, escapes written out and whole surrogate pairs included', () => {
    const parsed = parseMapping({ ...BASE, when: { in: ['$row.kind', ['\\u0000', '😀', '$$5']] }, payload: { note: 'é 😀' } });
    expect(parsed.when).toEqual({ in: ['$row.kind', ['\\u0000', '😀', '$$5']] });
  });
});

describe('MAPPING_NAME', () => {
  it('is the rule saveCdcMapping applies to names', () => {
    expect(MAPPING_NAME.test(BASE.name)).toBe(true);
    expect(MAPPING_NAME.test('contacts\u0000')).toBe(false);
    expect(refusal({ name: 'contacts\u0000' }).path).toBe('name');
  });
});
