/**
 * A source database nobody reads any more must not keep a replication slot: an inactive slot pins
 * WAL on the user's database for good. End to end, over the admin API.
 */
import { describe, expect, it } from 'vitest';
import { gql, setUpCdc, type CdcSetup } from '../helpers/cdc.ts';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** The logical slots of the source database. */
async function slotsOf(setup: CdcSetup): Promise<{ slot_name: string; active: boolean }[]> {
  return (await setup.source.query<{ slot_name: string; active: boolean }>('SELECT slot_name, active FROM pg_replication_slots WHERE database = current_database() ORDER BY slot_name'))
    .rows;
}

async function readerState(setup: CdcSetup): Promise<string | undefined> {
  const body = await gql(setup.server, setup.admin, '{ cdcSource { status { state slotName } } }');
  return (body.data?.['cdcSource'] as { status: { state: string } | null } | null)?.status?.state;
}

describe('replication slots of sources no longer read', () => {
  it('drops the slot when the database loses its last environment (the leading instance, with Redis), and a source set again later starts as new, not as a lost slot', async () => {
    const platform = await createTestDatabase();
    const setup = await setUpCdc({ env: { DATABASE_URL: platform.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() } });
    const [slot] = await slotsOf(setup);
    expect(slot?.slot_name).toMatch(/^tributary_/);

    const removed = await gql(setup.server, setup.admin, 'mutation { removeCdcSource }');
    expect(removed.errors).toBeUndefined();
    await waitFor(async () => (await slotsOf(setup)).length === 0, { message: 'the slot is dropped' });

    // Set again: a new slot, and no `cdc.slot_lost` (the dropped slot's reader status went with it).
    const set = await gql(setup.server, setup.admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url: setup.sourceUrl });
    expect(set.errors).toBeUndefined();
    await waitFor(async () => (await readerState(setup)) === 'streaming', { message: 'the reader streams again' });
    expect((await slotsOf(setup)).map((row) => row.slot_name)).toEqual([slot?.slot_name]);
    const { rows } = await openTestPool(platform.url).query<{ slot_lost_at: Date | null }>('SELECT slot_lost_at FROM cdc_reader_status');
    expect(rows).toEqual([{ slot_lost_at: null }]);
  });

  it("drops the old slot when the source's slot name changes, and streams on the new one", async () => {
    const setup = await setUpCdc();
    const [derived] = await slotsOf(setup);
    const set = await gql(setup.server, setup.admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url, slotName: "own_cdc_slot", publicationName: "own_cdc_pub") { host } }', {
      url: setup.sourceUrl,
    });
    expect(set.errors).toBeUndefined();
    await waitFor(async () => (await slotsOf(setup)).map((row) => row.slot_name).join() === 'own_cdc_slot', { message: `${derived?.slot_name} is dropped` });
    await waitFor(async () => (await readerState(setup)) === 'streaming', { message: 'the reader streams on the new slot' });
  });
});
