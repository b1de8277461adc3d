/**
 * The other Tributary slots of a source database: a deployment stopped for good leaves its slot on
 * the source, which then retains WAL without bound while nobody measures it. The reader still
 * running measures every slot named as Tributary names that database's slots (`cdcSource.status
 * .otherSlots`, `/metrics`), `cdc.retained_wal` alerts on each over the limit, and `dropCdcSlot`
 * drops a left-over one — never this deployment's own, one streamed now, or a name not Tributary's.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createWalReader } from '../../src/pipeline/cdc/wal/wal-reader.ts';
import { errorOf, gql, metricSample, setUpCdc, type CdcSetup } from '../helpers/cdc.ts';
import { waitFor, type WaitForOptions } from '../helpers/wait-for.ts';

const LIMIT = 4096;
const ENV = {
  ALERTS_EVALUATE_SECONDS: '1',
  ALERTS_WINDOW_SECONDS: '30',
  ALERTS_FIRE_AFTER: '1',
  ALERTS_RESOLVE_AFTER: '1',
  ALERTS_CDC_MAX_RETAINED_WAL_BYTES: String(LIMIT),
};

interface OtherSlot {
  readonly slotName: string;
  readonly active: boolean;
  readonly retainedWalBytes: number | null;
}

interface Status {
  readonly slotName: string;
  readonly publicationName: string;
  readonly otherSlots: OtherSlot[] | null;
  readonly otherSlotsLeftOut: number | null;
}

interface Alert {
  readonly rule: string;
  readonly subject: string;
  readonly status: string;
  readonly severity: string;
  readonly message: string;
}

async function status(setup: CdcSetup): Promise<Status> {
  const body = await gql(setup.server, setup.admin, '{ cdcSource { status { slotName publicationName otherSlots { slotName active retainedWalBytes } otherSlotsLeftOut } } }');
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['cdcSource'] as { status: Status }).status;
}

async function alerts(setup: CdcSetup): Promise<Alert[]> {
  const body = await gql(setup.server, setup.admin, '{ alerts(first: 200) { nodes { rule subject status severity message } } }');
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['alerts'] as { nodes: Alert[] }).nodes;
}

/** Waits for `probe` to find something, and resolves with it. */
async function found<T>(probe: () => Promise<T | undefined>, options: WaitForOptions): Promise<T> {
  return (await waitFor(probe, options)) as T;
}

function dropSlot(setup: CdcSetup, slotName: string) {
  return gql(setup.server, setup.admin, 'mutation($s: String!) { dropCdcSlot(slotName: $s) }', { s: slotName });
}

async function slotExists(setup: CdcSetup, slotName: string): Promise<boolean> {
  return (await setup.source.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slotName])).rowCount === 1;
}

describe('other Tributary slots of a source database', () => {
  it('measures a left-over slot, exports it, alerts on its retained WAL and resolves once dropCdcSlot dropped it', async () => {
    const setup = await setUpCdc({ env: ENV });
    const own = await status(setup);
    // This deployment's slot is `<database's base name>_<its 12 hex digits>`; another deployment's has other digits.
    const base = own.publicationName;
    expect(own.slotName).toMatch(new RegExp(`^${base}_[0-9a-f]{12}$`));
    const leftOver = own.slotName === `${base}_0123456789ab` ? `${base}_ba9876543210` : `${base}_0123456789ab`;
    const legacy = base;
    await setup.source.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [leftOver]);
    await setup.source.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [legacy]);
    // Not Tributary's: neither measured here nor droppable.
    await setup.source.query("SELECT pg_create_logical_replication_slot('other_tool_slot', 'pgoutput')");
    await setup.source.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [`${base}_0123456789abcd`]);
    onTestFinished(async () => {
      await setup.source.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN ('other_tool_slot', $1, $2, $3)`, [
        leftOver,
        legacy,
        `${base}_0123456789abcd`,
      ]);
    });
    // WAL written after the slots were made: they retain it (nobody reads them).
    await setup.source.query("SELECT pg_logical_emit_message(false, 'test', repeat('x', 65536))");

    const measured = await found(
      async () => {
        const current = await status(setup);
        return current.otherSlots?.some((slot) => slot.slotName === leftOver && (slot.retainedWalBytes ?? 0) > 65536) ? current : undefined;
      },
      { timeoutMs: 20_000, message: 'the left-over slot is measured' },
    );
    expect(measured.otherSlotsLeftOut).toBe(0);
    expect(measured.otherSlots?.map((slot) => slot.slotName).sort()).toEqual([legacy, leftOver].sort());
    expect(measured.otherSlots?.every((slot) => !slot.active)).toBe(true);
    expect(await metricSample(setup.server, 'tributary_cdc_other_slot_retained_wal_bytes', { slot: leftOver })).toBeGreaterThan(65536);
    expect(await metricSample(setup.server, 'tributary_cdc_other_slot_retained_wal_bytes', { slot: 'other_tool_slot' })).toBe(0);

    const fired = await found(
      async () => (await alerts(setup)).find((alert) => alert.rule === 'cdc.retained_wal' && alert.subject.endsWith(`/${leftOver}`) && alert.status === 'FIRING'),
      { timeoutMs: 20_000, message: 'cdc.retained_wal fires for the left-over slot' },
    );
    expect(fired.severity).toBe('CRITICAL');
    expect(fired.message).toContain(`replication slot "${leftOver}"`);
    expect(fired.message).toContain('left over by a Tributary deployment that no longer runs');
    expect(fired.message).toContain(`dropCdcSlot(slotName: "${leftOver}")`);

    const dropped = await dropSlot(setup, leftOver);
    expect(dropped.errors, JSON.stringify(dropped.errors)).toBeUndefined();
    expect(dropped.data?.['dropCdcSlot']).toBe(true);
    expect(await slotExists(setup, leftOver)).toBe(false);

    const resolved = await found(
      async () => (await alerts(setup)).find((alert) => alert.subject === fired.subject && alert.status === 'RESOLVED'),
      { timeoutMs: 20_000, message: 'the alert of the dropped slot resolves' },
    );
    expect(resolved.message).toContain(`replication slot "${leftOver}" no longer exists`);
    expect((await status(setup)).otherSlots?.map((slot) => slot.slotName)).toEqual([legacy]);
    expect(await metricSample(setup.server, 'tributary_cdc_other_slot_retained_wal_bytes', { slot: leftOver })).toBe(0);
    // Gone already: nothing to drop.
    expect((await dropSlot(setup, leftOver)).data?.['dropCdcSlot']).toBe(false);
  });

  it("refuses to drop this deployment's own slot, a slot streamed now and a name that is not one of the database's Tributary slots", async () => {
    const setup = await setUpCdc();
    const own = await status(setup);
    const base = own.publicationName;
    // Another deployment's reader, streaming its own slot of this database.
    const streamed = own.slotName === `${base}_0123456789ab` ? `${base}_ba9876543210` : `${base}_0123456789ab`;
    const logger = createLogger({ level: 'silent' });
    const connections = createSourceConnections(setup.sourceUrl, { logger });
    const reader = createWalReader({ connections, slotName: streamed, publicationName: base, logger, handle: () => Promise.resolve() });
    onTestFinished(async () => {
      await reader.stop();
      await waitFor(async () => (await setup.source.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [streamed])).rowCount === 1);
      await setup.source.query('SELECT pg_drop_replication_slot($1)', [streamed]);
      await connections.dispose();
    });
    await reader.start();
    await setup.source.query("SELECT pg_create_logical_replication_slot('other_tool_slot', 'pgoutput')");
    onTestFinished(async () => void (await setup.source.query("SELECT pg_drop_replication_slot('other_tool_slot')")));

    const ownRefused = errorOf(await dropSlot(setup, own.slotName));
    expect(ownRefused?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'slotName', reason: 'OWN_SLOT' });
    expect(ownRefused?.message).toContain("this deployment's own slot");

    const activeRefused = errorOf(await dropSlot(setup, streamed));
    expect(activeRefused?.extensions).toMatchObject({ code: 'CONFLICT', field: 'slotName', reason: 'SLOT_ACTIVE' });
    expect(activeRefused?.message).toContain('is streamed now');

    for (const name of ['other_tool_slot', `${base}x`, `${base}_0123456789abcd`, 'Not A Slot']) {
      const refused = errorOf(await dropSlot(setup, name));
      expect(refused?.extensions, name).toMatchObject({ code: 'BAD_USER_INPUT', field: 'slotName', reason: 'NOT_TRIBUTARY_SLOT' });
    }
    // Each still there.
    for (const name of [own.slotName, streamed, 'other_tool_slot']) expect(await slotExists(setup, name), name).toBe(true);
    // The streamed one is measured as active.
    await waitFor(async () => (await status(setup)).otherSlots?.some((slot) => slot.slotName === streamed && slot.active), {
      timeoutMs: 20_000,
      message: 'the slot streamed by the other reader is measured active',
    });
  });
});
