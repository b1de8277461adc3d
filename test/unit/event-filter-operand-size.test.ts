/**
 * The size of `events(where:)` values: each operand (an `eq`, `ne`, `gt`…`lte` value, an `in` or
 * `nin` item) at most 4 KiB as JSON, all of one filter's together at most 16 KiB. Matching costs
 * time in proportion to them for every event and subscription: 3,000 subscriptions with a 38 KB
 * value that never matched took ~1 s of the event loop per event.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { compileEventWhere, type EventWhere } from '../../src/pipeline/filters/event-filter.ts';

/** A string whose JSON (quotes included) is `bytes` bytes of UTF-8. */
function stringOfJsonBytes(bytes: number, char = 'x'): string {
  return char.repeat((bytes - 2) / Buffer.byteLength(char));
}

function event(payload: Record<string, unknown>): RealtimeEvent {
  return {
    id: 'evt_1',
    topic: 't',
    source: 'socket',
    type: 't',
    payload,
    metadata: { timestamp: 1_700_000_000_000, scope: { app: 'app', env: 'prod', tenant: 't1' } },
    cursor: '0-1',
  };
}

function refusal(where: unknown): string {
  try {
    compileEventWhere(where as EventWhere);
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    expect((error as TributaryError).code).toBe(ErrorCode.BAD_USER_INPUT);
    expect((error as TributaryError).details).toEqual({ field: 'where' });
    return (error as TributaryError).message;
  }
  throw new Error('expected the filter to be refused');
}

describe('compileEventWhere: the size of values', () => {
  it('accepts an operand of 4096 bytes as JSON, and matches with it', () => {
    const at = stringOfJsonBytes(4096);
    const predicate = compileEventWhere({ field: 'payload.d', eq: at });
    expect(predicate?.(event({ d: at }))).toBe(true);
    expect(predicate?.(event({ d: 'x' }))).toBe(false);
    // Bytes of UTF-8, not characters: 2,047 two-byte characters and the quotes are 4096 bytes.
    expect(compileEventWhere({ field: 'payload.d', eq: stringOfJsonBytes(4096, 'é') })).toBeDefined();
    const object = { k: stringOfJsonBytes(4096 - '{"k":}'.length) };
    expect(compileEventWhere({ field: 'payload.d', in: [object, 1] })?.(event({ d: object }))).toBe(true);
  });

  it('refuses an operand over 4096 bytes, naming where it is and the limit', () => {
    const over = stringOfJsonBytes(4098);
    expect(refusal({ field: 'payload.d', eq: over })).toBe('where.eq: a value may be at most 4096 bytes as JSON (this one is 4098)');
    expect(refusal({ field: 'payload.d', eq: stringOfJsonBytes(4098, 'é') })).toContain('at most 4096 bytes');
    expect(refusal({ field: 'payload.d', ne: { k: over } })).toContain('where.ne: a value may be at most 4096 bytes');
    expect(refusal({ field: 'payload.d', in: ['a', over] })).toContain('where.in[1]: a value may be at most 4096 bytes');
    expect(refusal({ and: [{ field: 'payload.d', nin: [[over]] }] })).toContain('where.and[0].nin[0]: a value may be at most 4096 bytes');
    expect(refusal({ field: 'payload.d', gt: over })).toContain('where.gt: a value may be at most 4096 bytes');
  });

  it('accepts 16384 bytes of values in one filter and refuses more, however they are spread', () => {
    const quarter = stringOfJsonBytes(4096);
    const four = Array.from({ length: 4 }, (_, i) => ({ field: `payload.d${i}`, eq: quarter }));
    expect(compileEventWhere({ or: four })).toBeDefined();
    const total = "a filter's values may be at most 16384 bytes as JSON in all";
    expect(refusal({ or: [...four, { field: 'payload.e', eq: 1 }] })).toBe(`where.or[4].eq: ${total}`);
    expect(refusal({ field: 'payload.d', in: [quarter, quarter, quarter, quarter, 'x'] })).toBe(`where.in[4]: ${total}`);
    expect(refusal({ field: 'payload.d', ne: quarter, nin: [quarter, quarter], not: { field: 'payload.e', lte: quarter, gte: 'a' } })).toContain(total);
  });
});
