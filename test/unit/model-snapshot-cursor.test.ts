import { describe, expect, it } from 'vitest';
import {
  decodePageCursor,
  decodeSnapshotCursor,
  encodePageCursor,
  encodeSnapshotCursor,
  isSnapshotCursor,
  snapshotAdmission,
  snapshotSawVersion,
  type ModelSnapshot,
} from '../../src/pipeline/cdc/model-snapshot-cursor.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { parseLsn } from '../../src/pipeline/cdc/wal/lsn.ts';

const SNAPSHOT: ModelSnapshot = {
  after: 'bG9nOjE',
  source: 'src1',
  window: { xmax: 1000, inProgress: new Set([990, 995]), endLsn: parseLsn('0/5000') },
};

function change(xid: number, commitLsn: string, source = 'src1'): RealtimeEvent {
  return {
    id: `evt_${xid}`,
    topic: 'crm.contacts',
    source: 'database',
    type: 'contacts.updated',
    payload: {},
    metadata: { timestamp: 0, scope: { app: 'a', env: 'e', tenant: 't' }, transaction: { source, xid, commitLsn } },
    cursor: 'c',
  };
}

describe('model snapshot cursors', () => {
  it('round-trip, and refuse what this server did not make', () => {
    const cursor = encodeSnapshotCursor(SNAPSHOT);
    expect(isSnapshotCursor(cursor)).toBe(true);
    expect(decodeSnapshotCursor(cursor)).toEqual(SNAPSHOT);
    expect(() => decodeSnapshotCursor('s1.bm9wZQ')).toThrow(expect.objectContaining({ code: 'RESYNC_REQUIRED' }));
    expect(() => decodeSnapshotCursor(`s1.${'A'.repeat(50_000)}`)).toThrow(expect.objectContaining({ code: 'RESYNC_REQUIRED' }));

    const page = encodePageCursor({ key: ['42', 'x'], snapshot: cursor });
    expect(decodePageCursor(page)).toEqual({ key: ['42', 'x'], snapshot: cursor });
    expect(() => decodePageCursor(cursor)).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    expect(() => decodePageCursor(encodePageCursor({ key: [], snapshot: cursor }))).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
  });

  it('admit skips only the changes the snapshot saw committed, judging each on its own', () => {
    const admit = snapshotAdmission(SNAPSHOT);
    expect(admit(change(980, '0/4000'))).toBe('skip'); // committed before the snapshot
    expect(admit(change(990, '0/4100'))).toBe('deliver'); // in progress when it was taken
    expect(admit(change(1001, '0/4200'))).toBe('deliver'); // began after it
    expect(admit(change(981, '0/4300', 'another-database'))).toBe('deliver'); // xids of another cluster mean nothing here
    expect(admit(change(982, '0/5000'))).toBe('deliver'); // at the window's end: later than anything it saw
    // Another entity's change the snapshot saw, placed after a later one (the Redis log keeps order per entity only).
    expect(admit(change(983, '0/4400'))).toBe('skip');
  });

  it('knows which row versions the first page’s snapshot saw', () => {
    const now = 1200; // the later page's snapshot's xmax
    expect(snapshotSawVersion(SNAPSHOT.window, 2, now)).toBe(true); // frozen
    expect(snapshotSawVersion(SNAPSHOT.window, 500, now)).toBe(true);
    expect(snapshotSawVersion(SNAPSHOT.window, 995, now)).toBe(false); // in progress then
    expect(snapshotSawVersion(SNAPSHOT.window, 1000, now)).toBe(false);
    expect(snapshotSawVersion(SNAPSHOT.window, 1199, now)).toBe(false);
    // Frozen long ago (its xmin kept): more than 2^31 transactions before the window, it looks
    // newer than the window modulo 2^32 — but not newer than the later page's snapshot.
    expect(snapshotSawVersion(SNAPSHOT.window, 1000 + 5_000, now)).toBe(true);
    expect(snapshotSawVersion(SNAPSHOT.window, (1000 + 2 ** 31 + 10) % 2 ** 32, now)).toBe(true);
  });

  it('knows which row versions the first page’s snapshot saw across the 32-bit xid wraparound', () => {
    const window = { xmax: 2 ** 32 - 10, inProgress: new Set([2 ** 32 - 20]), endLsn: parseLsn('0/5000') };
    const now = 50; // xids wrapped between the two snapshots
    expect(snapshotSawVersion(window, 2 ** 32 - 30, now)).toBe(true);
    expect(snapshotSawVersion(window, 2 ** 32 - 20, now)).toBe(false);
    expect(snapshotSawVersion(window, 2 ** 32 - 5, now)).toBe(false);
    expect(snapshotSawVersion(window, 3, now)).toBe(false);
    expect(snapshotSawVersion(window, 49, now)).toBe(false);
    expect(snapshotSawVersion(window, 1_000, now)).toBe(true); // frozen long ago
  });
});
