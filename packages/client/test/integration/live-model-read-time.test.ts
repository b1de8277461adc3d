/**
 * Against a real server reading a real Postgres (CDC): a live model's `lastUpdatedAt` is read from
 * one clock, the source database's — the snapshot's time is the `records` page's `readAt`, a
 * change's its commit time — never the device's, which may be off by minutes (a phone's clock).
 */
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { createClient } from '@tributary/client';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc, type CdcSetup } from '../../../../test/helpers/cdc.ts';
import { signHs256 } from '../../../../test/helpers/tokens.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

/** How far the device's clock is off. */
const SKEW_MS = 3_600_000;

/** The source database's clock now (ms since the epoch). */
async function databaseNow(setup: CdcSetup): Promise<number> {
  const { rows } = await setup.source.query<{ now: Date }>('SELECT clock_timestamp() AS now');
  return rows[0]!.now.getTime();
}

afterEach(() => void vi.useRealTimers());

describe('liveModel lastUpdatedAt', () => {
  for (const [name, skew] of [
    ['an hour behind', -SKEW_MS],
    ['an hour ahead', SKEW_MS],
  ] as const) {
    it(`is the database's read time of the snapshot with the device's clock ${name}`, async () => {
      const setup = await setUpCdc();
      await saveMappingOk(setup, CONTACTS_MAPPING);
      await insertContact(setup, 'a', 'ann');
      // Valid by either clock: the server runs in this process, and sees the skewed Date too.
      const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] }, { expiresInSeconds: 3 * 3600 });
      const before = await databaseNow(setup);
      // Date only (timers run as usual), for this process; the database keeps its own time.
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + skew, shouldAdvanceTime: true });
      const client = createClient({ url: setup.server.wsUrl, getToken: () => token, backoff: { initialMs: 50, maxMs: 200 } });
      onTestFinished(() => client.close());
      const model = client.liveModel('contacts');
      await waitFor(() => model.isLive && model.records.length === 1, { timeoutMs: 20_000, message: 'live with the row' });
      vi.useRealTimers();
      const after = await databaseNow(setup);

      const at = Date.parse(model.lastUpdatedAt!);
      expect(at).toBeGreaterThanOrEqual(before);
      expect(at).toBeLessThanOrEqual(after);
    });
  }
});
