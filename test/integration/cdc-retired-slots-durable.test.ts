/**
 * A retired replication slot is noted in the platform database, not only in the memory of the
 * instance that stopped its reader: an instance that stops before the drop succeeded (the source
 * unreachable just then) must not leave the slot on the user's database for ever, pinning its WAL.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { setUpCdc } from '../helpers/cdc.ts';
import { cdcEnv, gql, startChildServer, waitUntilLeading } from '../helpers/cdc-resilience.ts';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

async function readerState(server: TestServer, admin: string): Promise<string | undefined> {
  const body = await gql(server, admin, '{ cdcSource { status { state } } }');
  return (body.data?.['cdcSource'] as { status: { state: string } | null } | null)?.status?.state;
}

/** A source database, its replication slots, and a proxy to reach it through that the test can close. */
async function sourceBehindProxy() {
  const source = await createTestDatabase();
  const sourcePool = openTestPool(source.url);
  const proxy = await startTcpProxy(Number(new URL(source.url).port));
  const proxied = new URL(source.url);
  proxied.port = String(proxy.port);
  const slots = async () => (await sourcePool.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots WHERE database = current_database()')).rows;
  return { source, proxy, proxiedUrl: proxied.toString(), slots };
}

describe('retired replication slots, noted durably', () => {
  it('drops the slot of a removed source after a restart, when the instance that removed it stopped before it could drop it', async () => {
    // The servers reach the source through a proxy the test can close: the drop fails while it refuses.
    const { proxy, proxiedUrl, slots } = await sourceBehindProxy();
    const platform = await createTestDatabase({ migrated: true });
    const env = { JWT_SECRET: TEST_SECRET, CDC_RELOAD_INTERVAL_MS: '200', DATABASE_URL: platform.url };
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    const platformPool = openTestPool(platform.url);

    const first = await startTestServer(env, { autoDispose: false });
    onTestFinished(() => first.dispose());
    const set = await gql(first, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url: proxiedUrl });
    expect(set.errors).toBeUndefined();
    await waitFor(async () => (await readerState(first, admin)) === 'streaming', { message: 'the reader streams' });
    expect(await slots()).toHaveLength(1);

    // The source becomes unreachable, the source is removed (its drop fails and would be retried),
    // and the instance stops before the source is back.
    proxy.refuse(true);
    proxy.dropAll();
    const removed = await gql(first, admin, 'mutation { removeCdcSource }');
    expect(removed.errors).toBeUndefined();
    expect(removed.data?.['removeCdcSource']).toBe(true);
    await first.dispose();
    expect(await slots()).toHaveLength(1);

    proxy.refuse(false);
    const second = await startTestServer(env);
    expect(second.port).toBeGreaterThan(0);
    await waitFor(async () => (await slots()).length === 0, { timeoutMs: 10_000, message: 'the retired slot is dropped by the instance started later' });
    await waitFor(async () => (await platformPool.query('SELECT 1 FROM cdc_retired_slots')).rowCount === 0, { message: 'its notes are deleted' });
  });

  it('drops the slot of a source removed while no instance leads its reader (the leader crashed, its lease not expired yet)', async () => {
    const source = await createTestDatabase();
    const sourcePool = openTestPool(source.url);
    const platform = await createTestDatabase({ migrated: true });
    // A lease far longer than the test: the follower cannot take the lead of the crashed leader meanwhile.
    const env = cdcEnv({ DATABASE_URL: platform.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), CDC_LEADER_TTL_MS: '120000' });
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    const slots = async () => (await sourcePool.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots WHERE database = current_database()')).rows;

    const leader = await startChildServer(env);
    const set = await gql(leader, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url: source.url });
    expect(set.errors).toBeUndefined();
    await waitUntilLeading(leader);
    const follower = await startTestServer(env);
    expect(await slots()).toHaveLength(1);

    leader.signal('SIGKILL');
    const removed = await gql(follower, admin, 'mutation { removeCdcSource }');
    expect(removed.errors).toBeUndefined();
    await waitFor(async () => (await slots()).length === 0, { timeoutMs: 10_000, message: 'the retired slot is dropped by the instance left' });
  });

  it('notes and drops retired slots on the embedded platform database too (a slot renamed, then the source removed)', async () => {
    const setup = await setUpCdc({ embedded: true });
    const slots = async () =>
      (await setup.source.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots WHERE database = current_database()')).rows.map((row) => row.slot_name);
    const [derived] = await slots();
    const renamed = await gql(setup.server, setup.admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url, slotName: "own_slot", publicationName: "own_pub") { host } }', {
      url: setup.sourceUrl,
    });
    expect(renamed.errors).toBeUndefined();
    await waitFor(async () => (await slots()).join() === 'own_slot', { message: `${derived} is dropped` });

    const removed = await gql(setup.server, setup.admin, 'mutation { removeCdcSource }');
    expect(removed.errors).toBeUndefined();
    await waitFor(async () => (await slots()).length === 0, { message: 'own_slot is dropped' });
  });

  it('keeps the slot of a source removed and set again before the slot could be dropped, and deletes its notes', async () => {
    const { source, proxy, proxiedUrl, slots } = await sourceBehindProxy();
    const platform = await createTestDatabase({ migrated: true });
    const platformPool = openTestPool(platform.url);
    const server = await startTestServer(cdcEnv({ DATABASE_URL: platform.url }));
    const admin = await signHs256({ roles: ['admin'], permissions: [], tenant: undefined });
    const setSource = async (url: string) => expect((await gql(server, admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url })).errors).toBeUndefined();
    await setSource(proxiedUrl);
    await waitFor(async () => (await readerState(server, admin)) === 'streaming', { message: 'the reader streams' });
    const [slot] = await slots();

    proxy.refuse(true);
    proxy.dropAll();
    expect((await gql(server, admin, 'mutation { removeCdcSource }')).errors).toBeUndefined();
    expect((await platformPool.query('SELECT 1 FROM cdc_retired_slots')).rowCount).toBeGreaterThan(0);
    // The same database under another URL: its slot is claimed again.
    await setSource(source.url);
    proxy.refuse(false);
    await waitFor(async () => (await platformPool.query('SELECT 1 FROM cdc_retired_slots')).rowCount === 0, { message: 'the notes are deleted' });
    await waitFor(async () => (await readerState(server, admin)) === 'streaming', { message: 'the reader streams again' });
    expect(await slots()).toEqual([slot]);
    // Read on, not found lost and made again.
    expect((await platformPool.query('SELECT slot_lost_at FROM cdc_reader_status')).rows).toEqual([{ slot_lost_at: null }]);
  });
});
