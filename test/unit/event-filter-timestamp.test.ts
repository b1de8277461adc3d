import { describe, expect, it } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { compileEventWhere, type EventWhere } from '../../src/pipeline/filters/event-filter.ts';

const AT = Date.parse('2026-12-05T05:00:00.000Z');
const EVENT: RealtimeEvent = {
  id: 'evt_1',
  topic: 'orders.status',
  source: 'socket',
  type: 'shipped',
  payload: { orderId: 7, at: '2020-01-01' },
  metadata: { timestamp: AT, scope: { app: 'a', env: 'e', tenant: undefined } },
  cursor: 'x',
};

function matches(where: EventWhere): boolean {
  const predicate = compileEventWhere(where);
  if (predicate === undefined) throw new Error('expected a predicate');
  return predicate(EVENT);
}

function refusal(where: EventWhere): TributaryError {
  try {
    compileEventWhere(where);
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    return error as TributaryError;
  }
  throw new Error(`expected ${JSON.stringify(where)} to be refused`);
}

describe('events(where:) on metadata.timestamp', () => {
  it('compares a DateTime operand, as the API shows the timestamp, by instant', () => {
    const field = 'metadata.timestamp';
    expect(matches({ field, gt: '2020-01-01T00:00:00.000Z' })).toBe(true);
    expect(matches({ field, lt: '2020-01-01T00:00:00Z' })).toBe(false);
    expect(matches({ field, gte: '2026-12-05T06:00:00+01:00', lte: '2026-12-05T05:00:00Z' })).toBe(true);
    expect(matches({ field, gt: '2026-12-05T06:00:00+01:00' })).toBe(false);
    expect(matches({ field, eq: '2026-12-05T05:00:00.000Z' })).toBe(true);
    expect(matches({ field, ne: '2026-12-05T05:00:00.000Z' })).toBe(false);
    expect(matches({ field, in: ['2020-01-01T00:00:00Z', '2026-12-05T07:00:00+02:00'] })).toBe(true);
    expect(matches({ field, nin: ['2026-12-05T05:00:00Z'] })).toBe(false);
  });

  it('still takes milliseconds since the epoch', () => {
    expect(matches({ field: 'metadata.timestamp', gte: AT, lt: AT + 1 })).toBe(true);
    expect(matches({ field: 'metadata.timestamp', eq: AT })).toBe(true);
  });

  it('refuses an operand that is neither a number nor a date-time with BAD_USER_INPUT naming the field', () => {
    for (const where of [
      { field: 'metadata.timestamp', gt: '2020-01-01' },
      { field: 'metadata.timestamp', lt: 'yesterday' },
      { field: 'metadata.timestamp', eq: '2020-13-01T00:00:00Z' },
      { field: 'metadata.timestamp', in: [AT, 'soon'] },
      { field: 'metadata.timestamp', eq: true },
    ]) {
      const error = refusal(where);
      expect(error.code, JSON.stringify(where)).toBe(ErrorCode.BAD_USER_INPUT);
      expect(error.details).toEqual({ field: 'where' });
      expect(error.message).toContain('metadata.timestamp');
      expect(error.message).toContain('date-time');
    }
  });

  it('leaves strings in the payload as strings', () => {
    expect(matches({ field: 'payload.at', gte: '2020-01-01' })).toBe(true);
    expect(matches({ field: 'payload.at', eq: '2020-01-01T00:00:00Z' })).toBe(false);
  });
});
