/**
 * Which database errors mean "cannot be reached now" (UNAVAILABLE: retry) rather than "the request
 * is wrong" (BAD_USER_INPUT): the errors as pg, pg-pool and Node's sockets make them.
 */
import { describe, expect, it } from 'vitest';
import { isDatabaseUnreachable } from '../../src/pipeline/connection-errors.ts';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('isDatabaseUnreachable', () => {
  it('holds for refused, reset and timed-out sockets, one address or several, and pg’s own timeouts', () => {
    expect(isDatabaseUnreachable(withCode('connect ECONNREFUSED 127.0.0.1:9', 'ECONNREFUSED'))).toBe(true);
    expect(isDatabaseUnreachable(withCode('connect ETIMEDOUT 10.0.0.1:5432', 'ETIMEDOUT'))).toBe(true);
    // Node tries each address of a host name: an AggregateError of one error per address.
    expect(isDatabaseUnreachable(new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], ''))).toBe(true);
    expect(isDatabaseUnreachable(new Error('timeout expired'))).toBe(true);
    expect(isDatabaseUnreachable(new Error('Connection terminated due to connection timeout', { cause: new Error('Connection terminated unexpectedly') }))).toBe(true);
  });

  it('holds for a server shutting down, starting up, or out of connections', () => {
    for (const code of ['57P01', '57P03', '53300', '08006']) expect(isDatabaseUnreachable(withCode('no', code)), code).toBe(true);
  });

  it('does not hold for what the request must fix: an unknown host, bad credentials, no such database', () => {
    expect(isDatabaseUnreachable(withCode('getaddrinfo ENOTFOUND db.example.invalid', 'ENOTFOUND'))).toBe(false);
    for (const code of ['28P01', '3D000', '42501']) expect(isDatabaseUnreachable(withCode('no', code)), code).toBe(false);
    expect(isDatabaseUnreachable('ECONNREFUSED')).toBe(false);
  });
});
