import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../../src/pipeline/webhooks/webhook-http.ts';

const now = Date.parse('2030-06-01T12:00:00Z');

describe('Retry-After', () => {
  it('reads delay-seconds and each of the three HTTP-date forms, all GMT', () => {
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('Sat, 01 Jun 2030 12:01:30 GMT', now)).toBe(90_000);
    expect(parseRetryAfter('Saturday, 01-Jun-30 12:01:30 GMT', now)).toBe(90_000);
    // asctime's form names no zone and means GMT, whatever the machine's own zone (one that is not GMT, here).
    const zone = process.env['TZ'];
    process.env['TZ'] = 'America/New_York';
    try {
      expect(parseRetryAfter('Sat Jun  1 12:01:30 2030', now)).toBe(90_000);
    } finally {
      if (zone === undefined) delete process.env['TZ'];
      else process.env['TZ'] = zone;
    }
    // A date already past: retry at once.
    expect(parseRetryAfter('Sat, 01 Jun 2030 11:00:00 GMT', now)).toBe(0);
  });

  it('reads nothing else, however Date.parse would take it (3600.5 is the year 3600 to it)', () => {
    for (const value of [undefined, '', 'soon', '-5', '3600.5', '2027.1', '12.12.2030', '1 1 3000', 'Sat, 01 Jun 2030 12:01:30 +0000', '2030-06-01T12:01:30Z']) {
      expect(parseRetryAfter(value, now), String(value)).toBeNull();
    }
  });
});
