import { describe, expect, it } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { databaseConnectFailure } from '../../src/db/connection-failure.ts';
import { describeFailure, startFailureText } from '../../src/start/failure.ts';

const unavailable = (cause: unknown) => new TributaryError(ErrorCode.UNAVAILABLE, 'The database is unavailable right now; retry shortly', { cause });

describe('a start-up failure as printed', () => {
  it('follows the cause chain, one line each, after the error itself', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
    expect(describeFailure(unavailable(refused), { stack: false })).toBe(
      'The database is unavailable right now; retry shortly\ncaused by: Error: connect ECONNREFUSED 10.0.0.5:5432',
    );
    const printed = describeFailure(unavailable(refused));
    expect(printed).toMatch(/^TributaryError: The database is unavailable right now; retry shortly\n {4}at /);
    expect(printed).toMatch(/\ncaused by: Error: connect ECONNREFUSED 10\.0\.0\.5:5432$/);
  });

  it('spells out an AggregateError (every address of a name refused) by the errors it holds', () => {
    const both = new AggregateError([new Error('connect ECONNREFUSED ::1:5432'), new Error('connect ECONNREFUSED 127.0.0.1:5432')]);
    expect(describeFailure(unavailable(both), { stack: false }).split('\n')[1]).toBe(
      'caused by: AggregateError: connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432',
    );
  });

  it('masks the password of any URL it prints, and stops at a chain that loops', () => {
    const looping: Error & { cause?: unknown } = new Error('could not open postgres://tributary:s3cret-pw@db:5432/platform');
    looping.cause = new Error('via redis://:other-secret@cache:6379', { cause: looping });
    const printed = describeFailure(looping, { stack: false });
    expect(printed).toBe('could not open postgres://tributary:***@db:5432/platform\ncaused by: Error: via redis://:***@cache:6379');
  });

  it('masks a password that holds @ to the last @ of the URL’s authority, as pg splits it', () => {
    expect(describeFailure(new Error('could not open postgres://app:t@t-Passw0rd@db.internal:5432/app?x=1'), { stack: false })).toBe(
      'could not open postgres://app:***@db.internal:5432/app?x=1',
    );
    expect(databaseConnectFailure('postgres://app:t@t-Passw0rd@127.0.0.1:1/app', new Error('refused')).message).not.toContain('Passw0rd');
  });

  it('prints an expected failure without its stack, and a bug with it', () => {
    // A wrong password: pg's error carries its SQLSTATE as `code`.
    const refused = Object.assign(new Error('password authentication failed for user "tributary"'), { code: '28P01' });
    expect(startFailureText(refused)).toBe('password authentication failed for user "tributary"');
    expect(startFailureText(unavailable(refused))).toBe('The database is unavailable right now; retry shortly\ncaused by: Error: password authentication failed for user "tributary"');
    expect(startFailureText(new TypeError('x is not a function'))).toMatch(/^TypeError: x is not a function\n {4}at /);
  });
});
