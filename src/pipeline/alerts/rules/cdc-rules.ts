/**
 * CDC rules, from what each source's leader writes to `cdc_reader_status` every few seconds (for
 * the figure rules, a status older than the window is unknown: nobody measured it). A source is one
 * database read by every environment pointing at it, so its alerts are raised in each of those
 * environments.
 * - `cdc.reader_down`: the reader has not reported streaming, with its slot measured, for longer
 *   than the window — its leader cannot reach the source (it reports `reconnecting` or `failed`),
 *   no instance leads it (the status goes stale), or it streams while the source does not answer
 *   the leader's readings of the slot (its lag unknown) — (critical: nothing is read, or nobody
 *   knows how far behind it is, and the slot keeps WAL on the source server without bound, while
 *   the figure rules read unknown). Its message names which. It resolves once it streams again
 *   with its slot measured.
 * - `cdc.lag`: WAL written after the position the reader confirmed, over a threshold (warning);
 * - `cdc.retained_wal`: WAL the slot keeps on the source server, over a threshold (critical: the
 *   server's disk fills up, or `max_slot_wal_keep_size` drops the slot). Also, under subject
 *   `cdc:<source>/<slot>`, each other Tributary slot of the database the leader measured with its
 *   own (migration 0038, `wal/other-slots.ts`): another deployment's, or one left over by a
 *   deployment stopped for good, which nobody else alerts on. Gone once a fresh status no longer
 *   lists it (dropped) while listing every other slot (none left out);
 * - `cdc.slot_at_risk`: the source server is about to invalidate the slot (`max_slot_wal_keep_size`,
 *   migration 0041): its `wal_status` is `unreserved` (the next checkpoint removes WAL it needs) or
 *   `lost`, or its `safe_wal_size` is under a share of that setting — or of `wal_keep_size` when
 *   larger (critical: once invalidated, changes are missed and every subscriber resyncs). It
 *   resolves once back to safe. Apart from `cdc.retained_wal`, whose threshold may be above them;
 * - `cdc.slot_lost`: the slot was found lost and recreated within the window (critical: changes
 *   were missed; subscribers resynced). It resolves once the loss is older than the window.
 * - `cdc.unroutable_rows`: row changes a mapping matched but could not route (a tenant or key
 *   column null, a topic placeholder without a value…) within the window, over the number allowed
 *   (warning: those changes reach no subscriber). Read from the counts the leader adds to
 *   `cdc_unroutable_counts` per minute with its status (migration 0031), whatever the status's age:
 *   a reader that stopped routes nothing, and its counts still say what it could not route. Unlike
 *   the others it is judged per environment: a mapping is one environment's, and another
 *   environment sharing the database neither sees its failures nor its mapping's name.
 * An environment whose CDC source was removed (no `cdc_sources` row) is read no more — a status
 * may still name it — and its subjects are gone: their alerts resolve. So is an environment's old
 * source once it reads another: the old source's status no longer lists it, or has gone stale
 * while another source's fresh one lists it.
 */
import type { Queryable } from '../../../db/database.ts';
import type { OtherSlot, OtherSlots } from '../../cdc/wal/other-slots.ts';
import { WAL_SAFETY_COLUMNS, walSafetyOf } from '../../cdc/cdc-store.ts';
import type { SlotWalSafety } from '../../cdc/wal/slot-readings.ts';
import { scopeKey } from '../../scope.ts';
import { BACK_WITHIN_LIMIT, judgeLimit, MAX_READINGS_PER_RULE, RESOLVE_FRACTION, type AlertRule, type Reading, type RuleSubject, type Verdict } from '../alert-rule.ts';

type StatusRow = {
  source: string;
  state: string;
  last_error: string | null;
  environments: unknown;
  lag_bytes: string | null;
  retained_wal_bytes: string | null;
  other_slots: unknown;
  wal_status: string | null;
  safe_wal_bytes: string | null;
  max_slot_wal_keep_bytes: string | null;
  slot_lost_recently: boolean;
  fresh: boolean;
  not_streaming_seconds: number;
  status_age_seconds: number;
};

/** Row changes matched but not routed within the window, and the mapping and reason of most (null: none). */
interface UnroutableFigures {
  readonly unroutableRows: number;
  readonly unroutableTop: string | null;
}

interface SourceFigures {
  readonly source: string;
  readonly state: string;
  readonly lastError: string | null;
  readonly environments: readonly { readonly app: string; readonly env: string }[];
  readonly lagBytes: number | null;
  readonly retainedWalBytes: number | null;
  /** The database's other Tributary slots, as last measured (null: not measured). */
  readonly otherSlots: OtherSlots | null;
  /** The slot's `wal_status` and `safe_wal_size`, as last measured (null: not measured). */
  readonly walSafety: SlotWalSafety | null;
  readonly slotLostRecently: boolean;
  /** The status was written within the window. */
  readonly fresh: boolean;
  /** Seconds since the reader last reported streaming with its lag measured (or, never, since its first report). */
  readonly notStreamingSeconds: number;
  /** Seconds since the status was written. */
  readonly statusAgeSeconds: number;
  /** Each environment's unroutable rows, by `environmentKey`; an environment without any is absent. */
  readonly unroutable: ReadonlyMap<string, UnroutableFigures>;
}

/** Judges a byte figure against a threshold (good at or under 90 % of it): pure. */
export function judgeBytes(bytes: number | null, max: number, severity: 'warning' | 'critical', what: string): Verdict {
  if (bytes === null) return { kind: 'unknown', reason: `${what} not measured yet` };
  return judgeLimit(bytes, max, { severity, message: `${what} is ${formatBytes(bytes)} (limit ${formatBytes(max)})` });
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / 1024 / 1024)} MiB` : `${bytes} B`;
}

/**
 * Judges how far the slot is from being invalidated by its source server (`cdc.slot_at_risk`):
 * pure. Bad once `wal_status` is `unreserved` or `lost`, or while `safe_wal_size` is under
 * `marginPercent` % of `maxSlotWalKeepBytes` (`max_slot_wal_keep_size`, or `wal_keep_size` when
 * larger: what `safe_wal_size` counts down from); good from `marginPercent / RESOLVE_FRACTION` % of
 * it up (the dead band), and while the server sets no limit (`safe_wal_size` null: nothing
 * invalidates the slot for its WAL, and `cdc.retained_wal` watches the disk).
 */
export function judgeSlotSafety(safety: SlotWalSafety | null, marginPercent: number): Verdict {
  if (safety === null) return { kind: 'unknown', reason: 'wal_status of the slot not measured yet' };
  const { walStatus, safeWalBytes: safe, maxSlotWalKeepBytes: keep } = safety;
  const settings = 'max_slot_wal_keep_size, or wal_keep_size when larger';
  const limit = keep === null ? settings : `${formatBytes(keep)} (${settings})`;
  const missed = 'changes are then missed and every subscriber resyncs';
  const why = 'the reader lags or is down, or a transaction open on the source holds the slot back';
  if (walStatus === 'lost') {
    // Not only for its WAL: from Postgres 16 a server also invalidates a slot for other causes.
    return { kind: 'bad', severity: 'critical', value: 0, message: 'the source server invalidated the replication slot (wal_status lost): changes are missed and every subscriber resyncs; the reader recreates it (cdc.slot_lost)' };
  }
  if (walStatus === 'unreserved') {
    const over = safe === null ? '' : `${formatBytes(Math.max(0, -safe))} `;
    const message = `the replication slot retains ${over}more WAL than the source server keeps for it, ${limit}: wal_status unreserved, the source server's next checkpoint invalidates it and ${missed} (${why})`;
    return { kind: 'bad', severity: 'critical', value: safe ?? 0, message };
  }
  if (safe === null || keep === null) return { kind: 'good', value: safe ?? 0 };
  const margin = (keep * marginPercent) / 100;
  const left = `${formatBytes(Math.max(0, safe))} of WAL can still be written (safe_wal_size) before the replication slot retains more than ${limit} and the source server invalidates it`;
  if (safe < margin) return { kind: 'bad', severity: 'critical', value: safe, message: `only ${left}, under ${marginPercent} % of those ${formatBytes(keep)}: ${missed} (${why})` };
  return safe >= margin / RESOLVE_FRACTION ? { kind: 'good', value: safe, message: `back to safe: ${left}` } : { kind: 'between', value: safe };
}

function environmentsOf(value: unknown): { app: string; env: string }[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null) return [];
    const { app, env } = entry as Record<string, unknown>;
    return typeof app === 'string' && typeof env === 'string' ? [{ app, env }] : [];
  });
}

/** The stored other slots (migration 0038), what of them is well-formed; null when not measured. */
function otherSlotsOf(value: unknown): OtherSlots | null {
  if (typeof value !== 'object' || value === null) return null;
  const { slots, leftOut } = value as Record<string, unknown>;
  if (!Array.isArray(slots)) return null;
  return {
    slots: slots.flatMap((slot: unknown) => {
      if (typeof slot !== 'object' || slot === null) return [];
      const { slotName, active, retainedWalBytes } = slot as Record<string, unknown>;
      if (typeof slotName !== 'string' || typeof active !== 'boolean') return [];
      return [{ slotName, active, retainedWalBytes: typeof retainedWalBytes === 'number' ? retainedWalBytes : null }];
    }),
    leftOut: typeof leftOut === 'number' ? leftOut : 0,
  };
}

async function readSources(db: Queryable, windowMs: number): Promise<SourceFigures[]> {
  const { rows } = await db.query<StatusRow>(
    `SELECT source, state, last_error, environments, lag_bytes::text, retained_wal_bytes::text, other_slots, ${WAL_SAFETY_COLUMNS},
            coalesce(slot_lost_at > now() - make_interval(secs => $1), false) AS slot_lost_recently,
            updated_at > now() - make_interval(secs => $1) AS fresh,
            extract(epoch FROM now() - coalesce(not_streaming_since, updated_at))::float8 AS not_streaming_seconds,
            extract(epoch FROM now() - updated_at)::float8 AS status_age_seconds
     FROM cdc_reader_status s
     ORDER BY source LIMIT $2`,
    [windowMs / 1000, MAX_READINGS_PER_RULE],
  );
  const unroutable = await readUnroutable(db, rows.map((row) => row.source), windowMs);
  return rows.map((row) => ({
    source: row.source,
    state: row.state,
    lastError: row.last_error,
    environments: environmentsOf(row.environments),
    lagBytes: row.lag_bytes === null ? null : Number(row.lag_bytes),
    retainedWalBytes: row.retained_wal_bytes === null ? null : Number(row.retained_wal_bytes),
    otherSlots: otherSlotsOf(row.other_slots),
    walSafety: walSafetyOf(row),
    slotLostRecently: row.slot_lost_recently,
    fresh: row.fresh,
    notStreamingSeconds: row.not_streaming_seconds,
    statusAgeSeconds: row.status_age_seconds,
    unroutable: unroutable.get(row.source) ?? new Map(),
  }));
}

/** The unroutable rows of each environment of `sources` within the window, by source, then `environmentKey`. */
async function readUnroutable(db: Queryable, sources: readonly string[], windowMs: number): Promise<Map<string, Map<string, UnroutableFigures>>> {
  const { rows } = await db.query<{ source: string; app: string; env: string; row_count: number; top: string }>(
    `SELECT DISTINCT ON (source, app, env) source, app, env, (sum(row_count) OVER (PARTITION BY source, app, env))::float8 AS row_count,
            format('mapping "%s": %s', mapping, reason) AS top
     FROM (SELECT source, app, env, mapping, reason, sum(row_count) AS row_count FROM cdc_unroutable_counts
           -- A minute's count covers the minute after its start: one that began up to a minute before the window is in it.
           WHERE source = ANY($1::text[]) AND minute > now() - make_interval(secs => $2) - interval '1 minute'
           GROUP BY source, app, env, mapping, reason) per_reason
     -- Qualified: a bare row_count would name the output column (the environment's total).
     ORDER BY source, app, env, per_reason.row_count DESC, mapping, reason`,
    [sources, windowMs / 1000],
  );
  const bySource = new Map<string, Map<string, UnroutableFigures>>();
  for (const row of rows) {
    let environments = bySource.get(row.source);
    if (!environments) bySource.set(row.source, (environments = new Map<string, UnroutableFigures>()));
    environments.set(environmentKey(row), { unroutableRows: row.row_count, unroutableTop: row.top });
  }
  return bySource;
}

const environmentKey = (environment: { readonly app: string; readonly env: string }) => scopeKey({ app: environment.app, env: environment.env, tenant: undefined });

/** The keys of the environments each fresh status lists, by source. */
function freshlyRead(sources: readonly SourceFigures[]): Map<string, Set<string>> {
  const read = new Map<string, Set<string>>();
  for (const figures of sources) if (figures.fresh) read.set(figures.source, new Set(figures.environments.map(environmentKey)));
  return read;
}

/** Whether another source than `source` has a fresh status listing `environment`: it reads it now. */
function readByAnother(fresh: ReadonlyMap<string, ReadonlySet<string>>, source: string, environment: string): boolean {
  for (const [other, environments] of fresh) if (other !== source && environments.has(environment)) return true;
  return false;
}

/** Of `environments`, the keys of those that still have a CDC source. */
async function withCdcSource(db: Queryable, environments: readonly { readonly app: string; readonly env: string }[]): Promise<Set<string>> {
  const { rows } = await db.query<{ app: string; env: string }>(
    'SELECT app, env FROM cdc_sources WHERE (app, env) IN (SELECT * FROM unnest($1::text[], $2::text[]))',
    [environments.map((environment) => environment.app), environments.map((environment) => environment.env)],
  );
  return new Set(rows.map(environmentKey));
}

type ReaderFigures = Pick<SourceFigures, 'state' | 'lastError' | 'fresh' | 'notStreamingSeconds' | 'statusAgeSeconds' | 'lagBytes'>;

/**
 * Judges whether a source's reader streams (`cdc.reader_down`): bad once it has not reported
 * streaming with its slot measured for longer than the window, good while it does, and in between
 * otherwise (a reconnect, a reading or a status a little late): that neither fires nor counts
 * towards resolving. Pure.
 */
function judgeReader(figures: ReaderFigures, windowMs: number): Verdict {
  const seconds = Math.round(figures.notStreamingSeconds);
  if (figures.notStreamingSeconds * 1000 > windowMs) return { kind: 'bad', severity: 'critical', value: seconds, message: readerDownMessage(figures, seconds) };
  return figures.fresh && figures.state === 'streaming' && figures.lagBytes !== null ? { kind: 'good', value: 0 } : { kind: 'between', value: seconds };
}

/**
 * Which cause of `cdc.reader_down` (README, Alerts) applies, as far as the status tells: a stale
 * status is nobody's (a leader writes it every few seconds, whatever its reader's state); a fresh
 * one says what its leader meets now — its `lastError` is no older than its last (re)connect.
 */
function readerDownMessage(figures: ReaderFigures, seconds: number): string {
  const why = figures.lastError === null ? '' : ` (${figures.lastError})`;
  if (!figures.fresh) {
    const last = figures.lastError === null ? figures.state : `${figures.state}: ${figures.lastError}`;
    return `the CDC reader has not reported streaming for ${seconds} s: no instance leads it (its status was last written ${Math.round(figures.statusAgeSeconds)} s ago, saying ${last})`;
  }
  if (figures.state === 'streaming') return `the CDC reader streams, but its slot has not been measured for ${seconds} s: its lag is unknown${why}`;
  const cause =
    figures.state === 'reconnecting' ? 'its leader cannot reach the source database and is reconnecting'
    : figures.state === 'failed' ? 'its leader cannot start it'
    : `its leader reports it ${figures.state}`;
  return `the CDC reader has not reported streaming for ${seconds} s: ${cause}${why}`;
}

/** A figure rule: a status older than the window is unknown (`cdc.reader_down` says why nobody measures). */
const measured = (judge: (figures: SourceFigures) => Verdict) => (figures: SourceFigures): Verdict =>
  figures.fresh ? judge(figures) : { kind: 'unknown', reason: 'no recent status from the reader' };

/** Judges one environment reading a source; every rule but `cdc.unroutable_rows` judges the source alike for each. */
type Judge = (figures: SourceFigures, windowMs: number, environment: string) => Verdict;

/** A source's subject, `cdc:<source>`, or one of its other slots', `cdc:<source>/<slot>`. */
function subjectOf(source: string, slot?: string): string {
  return slot === undefined ? `cdc:${source}` : `cdc:${source}/${slot}`;
}

function partsOf(subject: string): { source: string; slot: string | undefined } {
  const [source = '', slot] = subject.slice('cdc:'.length).split('/');
  return { source, slot };
}

/** `judgeSlot`: the rule also judges each other slot of a fresh status, under its own subject. */
function cdcRule(db: Queryable, name: string, description: string, judge: Judge, judgeSlot?: (slot: OtherSlot) => Verdict): AlertRule {
  return {
    name,
    description,
    async read({ windowMs }) {
      const sources = await readSources(db, windowMs);
      const configured = await withCdcSource(db, sources.flatMap((figures) => figures.environments));
      const fresh = freshlyRead(sources);
      return sources.flatMap((figures) =>
        figures.environments
          .filter((environment) => {
            const key = environmentKey(environment);
            return configured.has(key) && (figures.fresh || !readByAnother(fresh, figures.source, key));
          })
          .flatMap((environment): Reading[] => {
            const scope = { ...environment, tenant: undefined };
            const own = { subject: subjectOf(figures.source), scope, verdict: judge(figures, windowMs, environmentKey(environment)) };
            const others = judgeSlot && figures.fresh ? (figures.otherSlots?.slots ?? []) : [];
            return [own, ...others.map((slot) => ({ subject: subjectOf(figures.source, slot.slotName), scope, verdict: judgeSlot!(slot) }))];
          }),
      );
    },
    async gone(subjects: readonly RuleSubject[], { windowMs }) {
      const configured = await withCdcSource(db, subjects.map((subject) => subject.scope));
      const sources = await readSources(db, windowMs);
      const fresh = freshlyRead(sources);
      const bySource = new Map(sources.map((figures) => [figures.source, figures]));
      return subjects.flatMap((subject) => {
        const key = environmentKey(subject.scope);
        if (!configured.has(key)) return [{ subject }];
        const { source, slot } = partsOf(subject.subject);
        const listed = fresh.get(source);
        if (listed ? !listed.has(key) : readByAnother(fresh, source, key)) return [{ subject }];
        // Silent while its source's fresh status lists every other slot: no such slot any more.
        const others = listed && bySource.get(source)?.otherSlots;
        if (slot === undefined || !others || others.leftOut > 0) return [];
        return [{ subject, reason: `replication slot "${slot}" no longer exists on the source database` }];
      });
    },
  };
}

export interface CdcThresholds {
  /** @default 100 MiB */
  readonly maxLagBytes: number;
  /** @default 1 GiB */
  readonly maxRetainedWalBytes: number;
  /** Row changes matched but not routed that one environment may have on a source in the window before it is a warning. @default 0 */
  readonly unroutableRowsAllowed?: number;
  /** `cdc.slot_at_risk` fires while the slot's `safe_wal_size` is under this share of `max_slot_wal_keep_size` (or `wal_keep_size` when larger), in %. @default 25 (`SLOT_SAFE_WAL_PERCENT`) */
  readonly slotSafeWalPercent?: number;
}

/**
 * A share of the source's own `max_slot_wal_keep_size` (`wal_keep_size` when larger) rather than a byte figure: that setting
 * ranges from a few GiB to terabytes, and a fixed margin would fire all the time under a small one
 * and leave too little time under a large one. A quarter of it leaves the reader a quarter of the
 * WAL it may keep to catch up in — what an operator needs to act (restart a reader, end a
 * transaction) before the source's next checkpoint drops the slot.
 */
export const SLOT_SAFE_WAL_PERCENT = 25;

/** Judges an environment's row changes matched but not routed in the window: pure. */
function judgeUnroutable(figures: UnroutableFigures, windowMs: number, allowed: number): Verdict {
  const rows = figures.unroutableRows;
  const why = figures.unroutableTop === null ? '' : ` (most often ${figures.unroutableTop})`;
  return judgeLimit(rows, allowed, {
    severity: 'warning',
    message: `${rows} row ${rows === 1 ? 'change' : 'changes'} matched by a mapping could not be routed in full in the last ${Math.round(windowMs / 1000)} s${why}`,
  });
}

/** Judges the WAL another Tributary slot of the database retains: pure. The message says whose it may be and how to drop it. */
function judgeOtherSlot(slot: OtherSlot, max: number): Verdict {
  const what = `retained WAL of replication slot "${slot.slotName}"`;
  if (slot.retainedWalBytes === null) return { kind: 'good', value: 0, message: `${BACK_WITHIN_LIMIT}: ${what} is none (the slot was invalidated)` };
  const verdict = judgeLimit(slot.retainedWalBytes, max, { severity: 'critical', message: `${what} is ${formatBytes(slot.retainedWalBytes)} (limit ${formatBytes(max)})` });
  if (verdict.kind !== 'bad') return verdict;
  const whose = slot.active
    ? "it belongs to another Tributary deployment reading this database, whose reader streams it now and lags"
    : 'nobody reads it: it is left over by a Tributary deployment that no longer runs (or belongs to one that is down)';
  const drop = slot.active
    ? ''
    : `; if that deployment is gone for good, drop it with the mutation dropCdcSlot(slotName: "${slot.slotName}") (or SELECT pg_drop_replication_slot('${slot.slotName}') on the source)`;
  return { ...verdict, message: `${verdict.message}: ${whose}${drop}` };
}

const NONE_UNROUTABLE: UnroutableFigures = { unroutableRows: 0, unroutableTop: null };

export function cdcRules(db: Queryable, thresholds: CdcThresholds): AlertRule[] {
  return [
    cdcRule(db, 'cdc.reader_down', 'A CDC reader that has not reported streaming, with its slot measured, for longer than the window, per source', judgeReader),
    cdcRule(db, 'cdc.lag', 'WAL written after the position a CDC reader confirmed, per source', measured((figures) =>
      judgeBytes(figures.lagBytes, thresholds.maxLagBytes, 'warning', 'replication lag'),
    )),
    cdcRule(
      db,
      'cdc.retained_wal',
      "WAL a CDC reader's slot, or another Tributary slot of its database, keeps on its source server, per source and slot",
      measured((figures) => judgeBytes(figures.retainedWalBytes, thresholds.maxRetainedWalBytes, 'critical', 'retained WAL')),
      (slot) => judgeOtherSlot(slot, thresholds.maxRetainedWalBytes),
    ),
    cdcRule(db, 'cdc.slot_at_risk', "A CDC reader's slot close to or over the WAL its source keeps for it (max_slot_wal_keep_size, or wal_keep_size when larger): about to be invalidated, per source", measured((figures) =>
      judgeSlotSafety(figures.walSafety, thresholds.slotSafeWalPercent ?? SLOT_SAFE_WAL_PERCENT),
    )),
    cdcRule(db, 'cdc.slot_lost', 'A replication slot found lost and recreated (changes missed), per source', measured((figures) =>
      figures.slotLostRecently
        ? { kind: 'bad', severity: 'critical', value: 1, message: 'the replication slot was lost and recreated: changes were missed, subscribers resynced' }
        : { kind: 'good', value: 0 },
    )),
    cdcRule(db, 'cdc.unroutable_rows', "Row changes an environment's mapping matched but could not route within the window, per source", (figures, windowMs, environment) =>
      judgeUnroutable(figures.unroutable.get(environment) ?? NONE_UNROUTABLE, windowMs, thresholds.unroutableRowsAllowed ?? 0),
    ),
  ];
}
