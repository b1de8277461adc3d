import { describe, expect, it } from 'vitest';
import { isConnectionFailure, isDatabaseOutage, unavailableIfDisconnected } from '../../src/db/connection-failure.ts';
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

describe('isDatabaseOutage', () => {
  it.each([
    ['25006 read_only_sql_transaction (a failover landed on a standby)', coded('25006', 'cannot execute INSERT in a read-only transaction')],
    ['53100 disk_full', coded('53100', 'could not extend file')],
    ['53200 out_of_memory', coded('53200')],
    ['58030 io_error', coded('58030', 'could not read block')],
  ])('takes %s for an outage: UNAVAILABLE, although the database is reachable', (_name, error) => {
    expect(isDatabaseOutage(error)).toBe(true);
    // The CDC readers tell an unreachable source apart: not a connection failure.
    expect(isConnectionFailure(error)).toBe(false);
    expect(unavailableIfDisconnected(error)).toMatchObject({ code: ErrorCode.UNAVAILABLE, cause: error });
  });

  it.each([
    ['a connection failure', coded('ECONNREFUSED'), true],
    ['a check violation (23514)', coded('23514'), false],
    ['a value out of range (22003)', coded('22003'), false],
    ['a lock not available (55P03: migrations retry it themselves)', coded('55P03'), false],
    ['a class code alone', coded('53'), false],
  ])('answers for %s', (_name, error, outage) => {
    expect(isDatabaseOutage(error)).toBe(outage);
  });
});
