/**
 * The database URL of `setOutboxSource` and `setCdcSource` may carry `sslmode` and
 * `application_name` only. pg copies every query parameter into the connection's settings: files
 * named by `sslrootcert`/`sslcert`/`sslkey` were read synchronously at connect (a FIFO froze the
 * server, `/dev/zero` exhausted its memory), `host=` redirected the connection away from the host
 * shown, `options=` undid the pools' limits. Refused before anything connects: BAD_USER_INPUT on
 * `databaseUrl`, naming the parameter.
 */
import { describe, expect, it } from 'vitest';
import { gql } from '../helpers/cdc.ts';
import { createTestDatabase } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';

const SET_OUTBOX = 'mutation($url: String!) { setOutboxSource(databaseUrl: $url, createTable: true, mode: POLL) { mode } }';
const SET_CDC = 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }';

/** The URL with `query` appended as its query string. */
const withQuery = (url: string, query: string) => `${url}${url.includes('?') ? '&' : '?'}${query}`;

describe('a source database URL', () => {
  it('is refused with a parameter that reads a file, redirects the connection or changes its settings', { timeout: 60_000 }, async () => {
    const appDb = await createTestDatabase();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const refused = [
      ['sslrootcert=/dev/zero', 'sslrootcert'],
      ['sslkey=%2Fetc%2Fhostname', 'sslkey'],
      ['host=127.0.0.1&port=9', 'host'],
      ['options=-c%20statement_timeout%3D0', 'options'],
      ['sslmode=require&query_timeout=0', 'query_timeout'],
    ];
    for (const mutation of [SET_OUTBOX, SET_CDC]) {
      for (const [query, parameter] of refused) {
        const body = await gql(server, admin, mutation, { url: withQuery(appDb.url, query!) });
        expect(body.data, `${query} ${mutation}`).toBeNull();
        expect(body.errors?.[0]?.extensions, `${query} ${mutation}`).toMatchObject({ code: 'BAD_USER_INPUT', field: 'databaseUrl', parameter });
        expect(body.errors?.[0]?.message).toContain(`"${parameter}"`);
      }
      const badMode = await gql(server, admin, mutation, { url: withQuery(appDb.url, 'sslmode=sometimes') });
      expect(badMode.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'databaseUrl', parameter: 'sslmode' });
      const encodedNul = await gql(server, admin, mutation, { url: withQuery(appDb.url, 'application_name=a%00b') });
      expect(encodedNul.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'databaseUrl', parameter: 'application_name' });
    }
    // pg decodes the host: an encoded path is a Unix socket on the server's machine (often a
    // trusted login), no host its default socket. An encoded NUL in the login is refused too.
    const { port, pathname } = new URL(appDb.url);
    // A part with a broken % is refused too: pg re-encodes it, and its %00 came back a NUL that
    // began a startup setting of the caller's (work_mem, options…).
    for (const url of [
      `postgres://postgres@%2Ftmp%2Fpg:${port}${pathname}`,
      `postgres://postgres@${pathname}`,
      `postgres://post%00gres@127.0.0.1:${port}${pathname}`,
      `postgres://postgres%00options%00-c%20work_mem%3D7777kB%00x%zz@127.0.0.1:${port}${pathname}`,
      `postgres://postgres@127.0.0.1:${port}${pathname}%00work_mem%009999kB%00x%00%zz`,
      `postgres://postgres:pw%00x%zz@127.0.0.1:${port}${pathname}`,
    ]) {
      for (const mutation of [SET_OUTBOX, SET_CDC]) {
        const body = await gql(server, admin, mutation, { url });
        expect(body.errors?.[0]?.extensions, `${url} ${mutation}`).toEqual({ code: 'BAD_USER_INPUT', field: 'databaseUrl' });
      }
    }
    // Nothing saved.
    const status = await gql(server, admin, '{ outboxStatus { host } }');
    expect(status.data).toEqual({ outboxStatus: null });
  });

  it('is accepted with sslmode and application_name', { timeout: 60_000 }, async () => {
    const appDb = await createTestDatabase();
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    const set = await gql(server, admin, SET_OUTBOX, { url: withQuery(appDb.url, 'sslmode=disable&application_name=shop-outbox') });
    expect(set.errors).toBeUndefined();
    expect(set.data).toEqual({ setOutboxSource: { mode: 'POLL' } });
    // Passed on to the database: the test server speaks no TLS, and says so (not the URL check).
    const tls = await gql(server, admin, SET_OUTBOX, { url: withQuery(appDb.url, 'sslmode=require') });
    expect(tls.errors?.[0]?.extensions).toMatchObject({ field: 'databaseUrl' });
    expect(tls.errors?.[0]?.extensions).not.toHaveProperty('parameter');
    expect(tls.errors?.[0]?.message).toMatch(/SSL/);
  });
});
