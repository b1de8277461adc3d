import { describe, expect, it } from 'vitest';
import { isConnectionFailure, unavailableIfDisconnected } from '../../src/db/connection-failure.ts';
import { ErrorCode, TributaryError } from '../../src/errors.ts';

/** An error shaped like the ones `pg` and Node's sockets throw: a message and a `code`. */
function coded(code: string, message = 'failed'): Error {
  return Object.assign(new Error(message), { code });
}

describe('isConnectionFailure', () => {
  it.each([
    ['a refused connection', coded('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')],
    ['a reset connection', coded('ECONNRESET', 'read ECONNRESET')],
    ['a socket timeout', coded('ETIMEDOUT')],
    ['a refused connection on every address (AggregateError)', new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')], 'connect failed')],
    ['SQLSTATE class 08 (connection_failure)', coded('08006')],
    ['57P01 admin_shutdown', coded('57P01', 'terminating connection due to administrator command')],
    ['57P02 crash_shutdown', coded('57P02')],
    ['57P03 cannot_connect_now', coded('57P03', 'the database system is starting up')],
    ['53300 too_many_connections', coded('53300')],
    ["pg's lost connection", new Error('Connection terminated unexpectedly')],
    ["pg's connect timeout", new Error('Connection terminated due to connection timeout')],
    ["pg's pool timeout", new Error('timeout exceeded when trying to connect')],
    ["pg's broken client", new Error('Client has encountered a connection error and is not queryable')],
  ])('recognises %s', (_name, error) => {
    expect(isConnectionFailure(error)).toBe(true);
    const mapped = unavailableIfDisconnected(error);
    expect(mapped).toBeInstanceOf(TributaryError);
    expect(mapped).toMatchObject({ code: ErrorCode.UNAVAILABLE, cause: error });
  });

  it.each([
    ['a missing table (42P01)', coded('42P01', 'relation "x" does not exist')],
    ['a unique violation (23505)', coded('23505')],
    ['a syntax error (42601)', coded('42601')],
    ['a plain error', new Error('boom')],
    ['an error that only mentions a connection', coded('XX000', 'Connection terminated unexpectedly')],
    ['a TributaryError', new TributaryError(ErrorCode.CONFLICT, 'Connection terminated')],
    ['something that is not an error', 'ECONNREFUSED'],
  ])('leaves %s as it is', (_name, error) => {
    expect(isConnectionFailure(error)).toBe(false);
    expect(unavailableIfDisconnected(error)).toBe(error);
  });
});
