/**
 * `cdc.slot_at_risk`'s judge (`judgeSlotSafety`), pure: how far a slot is from being invalidated by
 * its source's `max_slot_wal_keep_size`, as `wal_status` and `safe_wal_size` tell; and its
 * threshold's configuration. The rule on a real platform database is
 * `test/integration/cdc-slot-risk-alerts.test.ts`, end to end `test/integration/cdc-slot-risk.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { judgeSlotSafety, SLOT_SAFE_WAL_PERCENT } from '../../src/pipeline/alerts/rules/cdc-rules.ts';
import { BUILT_IN_RULES } from '../../src/pipeline/alerts/rule-names.ts';

const MIB = 1024 * 1024;
const KEEP = 16 * MIB;

describe('judgeSlotSafety', () => {
  it('is unknown while the slot was not measured', () => {
    expect(judgeSlotSafety(null, 25)).toMatchObject({ kind: 'unknown' });
  });

  it('gives no verdict from a null safe_wal_size: a server without max_slot_wal_keep_size never invalidates the slot', () => {
    expect(judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: null, maxSlotWalKeepBytes: null }, 25)).toMatchObject({ kind: 'good' });
    expect(judgeSlotSafety({ walStatus: 'extended', safeWalBytes: null, maxSlotWalKeepBytes: null }, 25)).toMatchObject({ kind: 'good' });
    // A safe_wal_size without the setting it is a share of (not what Postgres says): nothing to judge it against.
    expect(judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: MIB, maxSlotWalKeepBytes: null }, 25)).toMatchObject({ kind: 'good' });
  });

  it('is critical once wal_status is unreserved, naming the setting and how far over it the slot is', () => {
    const verdict = judgeSlotSafety({ walStatus: 'unreserved', safeWalBytes: -3 * MIB, maxSlotWalKeepBytes: KEEP }, 25);
    expect(verdict).toMatchObject({ kind: 'bad', severity: 'critical', value: -3 * MIB });
    const message = verdict.kind === 'bad' ? verdict.message : '';
    expect(message).toContain('wal_status unreserved');
    expect(message).toContain('retains 3 MiB more WAL than the source server keeps for it, 16 MiB (max_slot_wal_keep_size, or wal_keep_size when larger)');
    expect(message).toContain("the source server's next checkpoint invalidates it");
    // Unreserved whatever safe_wal_size reads: it is Postgres' own word that the WAL is no longer kept.
    expect(judgeSlotSafety({ walStatus: 'unreserved', safeWalBytes: null, maxSlotWalKeepBytes: KEEP }, 25)).toMatchObject({ kind: 'bad', severity: 'critical' });
    expect(judgeSlotSafety({ walStatus: 'unreserved', safeWalBytes: 10 * MIB, maxSlotWalKeepBytes: KEEP }, 25)).toMatchObject({ kind: 'bad' });
  });

  it('is critical for a slot the server invalidated (lost), without naming a cause: from Postgres 16 there are others than its WAL', () => {
    const verdict = judgeSlotSafety({ walStatus: 'lost', safeWalBytes: null, maxSlotWalKeepBytes: KEEP }, 25);
    expect(verdict).toMatchObject({ kind: 'bad', severity: 'critical' });
    const message = verdict.kind === 'bad' ? verdict.message : '';
    expect(message).toMatch(/^the source server invalidated the replication slot \(wal_status lost\): /);
    expect(message).not.toContain('keep_size');
  });

  it('is critical while safe_wal_size is under the margin, naming the bytes left and the setting', () => {
    const verdict = judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: 3 * MIB, maxSlotWalKeepBytes: KEEP }, 25);
    expect(verdict).toMatchObject({ kind: 'bad', severity: 'critical', value: 3 * MIB });
    const message = verdict.kind === 'bad' ? verdict.message : '';
    expect(message).toContain('only 3 MiB of WAL can still be written (safe_wal_size)');
    expect(message).toContain('retains more than 16 MiB (max_slot_wal_keep_size, or wal_keep_size when larger)');
    expect(message).toContain('under 25 % of those 16 MiB');
    expect(judgeSlotSafety({ walStatus: 'extended', safeWalBytes: 0, maxSlotWalKeepBytes: KEEP }, 25)).toMatchObject({ kind: 'bad' });
    // The margin is the configured share.
    expect(judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: 3 * MIB, maxSlotWalKeepBytes: KEEP }, 10)).toMatchObject({ kind: 'good' });
  });

  it('resolves only clearly back to safe: at the margin and just over it, neither bad nor good', () => {
    const margin = KEEP / 4;
    expect(judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: margin - 1, maxSlotWalKeepBytes: KEEP }, 25)).toMatchObject({ kind: 'bad' });
    expect(judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: margin, maxSlotWalKeepBytes: KEEP }, 25)).toMatchObject({ kind: 'between', value: margin });
    const back = Math.ceil(margin / 0.9);
    expect(judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: back - 1, maxSlotWalKeepBytes: KEEP }, 25)).toMatchObject({ kind: 'between' });
    const good = judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: back, maxSlotWalKeepBytes: KEEP }, 25);
    expect(good).toMatchObject({ kind: 'good', value: back });
    expect(good.kind === 'good' && good.message).toMatch(/^back to safe: 4 MiB of WAL can still be written .* 16 MiB \(max_slot_wal_keep_size, or wal_keep_size when larger\)/);
  });

  it('takes its share of the budget safe_wal_size counts down from — wal_keep_size when larger than max_slot_wal_keep_size — and names it', () => {
    // max_slot_wal_keep_size 64 MiB, wal_keep_size 512 MiB: readSlotUsage reports 512 MiB, and Postgres
    // counts safe_wal_size from those 512 MiB (the slot is invalidated only past them).
    const budget = 512 * MIB;
    const atRisk = judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: 100 * MIB, maxSlotWalKeepBytes: budget }, 25);
    expect(atRisk).toMatchObject({ kind: 'bad', severity: 'critical', value: 100 * MIB });
    const message = atRisk.kind === 'bad' ? atRisk.message : '';
    expect(message).toContain('only 100 MiB of WAL can still be written (safe_wal_size) before the replication slot retains more than 512 MiB (max_slot_wal_keep_size, or wal_keep_size when larger)');
    expect(message).toContain('under 25 % of those 512 MiB');
    expect(judgeSlotSafety({ walStatus: 'reserved', safeWalBytes: 200 * MIB, maxSlotWalKeepBytes: budget }, 25)).toMatchObject({ kind: 'good' });
  });
});

describe('cdc.slot_at_risk configuration', () => {
  it('is a built-in rule, its margin 25 % of max_slot_wal_keep_size unless ALERTS_CDC_SLOT_SAFE_WAL_PERCENT says otherwise (1–90)', () => {
    expect(BUILT_IN_RULES).toContain('cdc.slot_at_risk');
    expect(SLOT_SAFE_WAL_PERCENT).toBe(25);
    expect(loadConfig({}).alerts.cdcSlotSafeWalPercent).toBe(25);
    expect(loadConfig({ ALERTS_CDC_SLOT_SAFE_WAL_PERCENT: '40' }).alerts.cdcSlotSafeWalPercent).toBe(40);
    for (const wrong of ['0', '91', '12.5', 'x']) {
      expect(() => loadConfig({ ALERTS_CDC_SLOT_SAFE_WAL_PERCENT: wrong }), wrong).toThrow(ConfigError);
    }
  });
});
