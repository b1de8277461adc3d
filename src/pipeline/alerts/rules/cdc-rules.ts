/**
 * CDC rules, from what each source's leader writes to `cdc_reader_status` every few seconds (for
 * the figure rules, a status older than the window is unknown: nobody measured it). A source is one
 * database read by every environment pointing at it, so its alerts are raised in each of those
 * environments.
 * - `cdc.reader_down`: the reader has not reported streaming for longer than the window — its
 *   leader cannot reach the source (it reports `reconnecting` or `failed`), or no instance leads
 *   it (the status goes stale) — (critical: nothing is read, and the slot keeps WAL on the source
 *   server without bound, while the figure rules read unknown). It resolves once it streams again.
 * - `cdc.lag`: WAL written after the position the reader confirmed, over a threshold (warning);
 * - `cdc.retained_wal`: WAL the slot keeps on the source server, over a threshold (critical: the
 *   server's disk fills up, or `max_slot_wal_keep_size` drops the slot);
 * - `cdc.slot_lost`: the slot was found lost and recreated within the window (critical: changes
 *   were missed; subscribers resynced). It resolves once the loss is older than the window.
 * - `cdc.unroutable_rows`: row changes a mapping matched but could not route (a tenant or key
 *   column null, a topic placeholder without a value…) within the window, over the number allowed
 *   (warning: those changes reach no subscriber). Read from the counts the leader adds to
 *   `cdc_unroutable_counts` per minute with its status (migration 0031), whatever the status's age:
 *   a reader that stopped routes nothing, and its counts still say what it could not route.
 * An environment whose CDC source was removed (no `cdc_sources` row) is read no more — a status
 * may still name it — and its subjects are gone: their alerts resolve. So is an environment's old
 * source once it reads another: the old source's status no longer lists it, or has gone stale
 * while another source's fresh one lists it.
 */
import type { Queryable } from '../../../db/database.ts';
import { scopeKey } from '../../scope.ts';
import { judgeLimit, MAX_READINGS_PER_RULE, type AlertRule, type Reading, type RuleSubject, type Verdict } from '../alert-rule.ts';

type StatusRow = {
  source: string;
  state: string;
  last_error: string | null;
  environments: unknown;
  lag_bytes: string | null;
  retained_wal_bytes: string | null;
  slot_lost_recently: boolean;
  fresh: boolean;
  not_streaming_seconds: number;
  unroutable_rows: number;
  unroutable_top: string | null;
};

interface SourceFigures {
  readonly source: string;
  readonly state: string;
  readonly lastError: string | null;
  readonly environments: readonly { readonly app: string; readonly env: string }[];
  readonly lagBytes: number | null;
  readonly retainedWalBytes: number | null;
  readonly slotLostRecently: boolean;
  /** The status was written within the window. */
  readonly fresh: boolean;
  /** Seconds since the reader last reported streaming (or, never, since its first report). */
  readonly notStreamingSeconds: number;
  /** Row changes matched but not routed within the window, and the mapping and reason of most (null: none). */
  readonly unroutableRows: number;
  readonly unroutableTop: string | null;
}

/** Judges a byte figure against a threshold (good at or under 90 % of it): pure. */
export function judgeBytes(bytes: number | null, max: number, severity: 'warning' | 'critical', what: string): Verdict {
  if (bytes === null) return { kind: 'unknown', reason: `${what} not measured yet` };
  return judgeLimit(bytes, max, { severity, message: `${what} is ${formatBytes(bytes)} (limit ${formatBytes(max)})` });
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / 1024 / 1024)} MiB` : `${bytes} B`;
}

function environmentsOf(value: unknown): { app: string; env: string }[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null) return [];
    const { app, env } = entry as Record<string, unknown>;
    return typeof app === 'string' && typeof env === 'string' ? [{ app, env }] : [];
  });
}

async function readSources(db: Queryable, windowMs: number): Promise<SourceFigures[]> {
  const { rows } = await db.query<StatusRow>(
    `SELECT source, state, last_error, environments, lag_bytes::text, retained_wal_bytes::text,
            coalesce(slot_lost_at > now() - make_interval(secs => $1), false) AS slot_lost_recently,
            updated_at > now() - make_interval(secs => $1) AS fresh,
            extract(epoch FROM now() - coalesce(not_streaming_since, updated_at))::float8 AS not_streaming_seconds,
            coalesce(unroutable.row_count, 0)::float8 AS unroutable_rows, unroutable.top AS unroutable_top
     FROM cdc_reader_status s
     -- A minute's count covers the minute after its start: one that began up to a minute before the window is in it.
     LEFT JOIN LATERAL (
       SELECT sum(row_count) OVER () AS row_count, format('mapping "%s": %s', mapping, reason) AS top FROM (
         SELECT mapping, reason, sum(row_count) AS row_count FROM cdc_unroutable_counts u
          WHERE u.source = s.source AND u.minute > now() - make_interval(secs => $1) - interval '1 minute' GROUP BY mapping, reason) per_reason
       ORDER BY per_reason.row_count DESC, mapping, reason LIMIT 1) unroutable ON true
     ORDER BY source LIMIT $2`,
    [windowMs / 1000, MAX_READINGS_PER_RULE],
  );
  return rows.map((row) => ({
    source: row.source,
    state: row.state,
    lastError: row.last_error,
    environments: environmentsOf(row.environments),
    lagBytes: row.lag_bytes === null ? null : Number(row.lag_bytes),
    retainedWalBytes: row.retained_wal_bytes === null ? null : Number(row.retained_wal_bytes),
    slotLostRecently: row.slot_lost_recently,
    fresh: row.fresh,
    notStreamingSeconds: row.not_streaming_seconds,
    unroutableRows: row.unroutable_rows,
    unroutableTop: row.unroutable_top,
  }));
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

/**
 * Judges whether a source's reader streams (`cdc.reader_down`): bad once it has not reported
 * streaming for longer than the window, good while it reports streaming, and in between otherwise
 * (a reconnect, a status a little late): that neither fires nor counts towards resolving. Pure.
 */
export function judgeReader(figures: Pick<SourceFigures, 'state' | 'lastError' | 'fresh' | 'notStreamingSeconds'>, windowMs: number): Verdict {
  const seconds = figures.notStreamingSeconds;
  if (seconds * 1000 > windowMs) {
    const last = figures.lastError === null ? figures.state : `${figures.state}: ${figures.lastError}`;
    return { kind: 'bad', severity: 'critical', value: Math.round(seconds), message: `the CDC reader has not reported streaming for ${Math.round(seconds)} s (last state: ${last})` };
  }
  return figures.fresh && figures.state === 'streaming' ? { kind: 'good', value: 0 } : { kind: 'between', value: Math.round(seconds) };
}

/** A figure rule: a status older than the window is unknown (`cdc.reader_down` says why nobody measures). */
const measured = (judge: (figures: SourceFigures) => Verdict) => (figures: SourceFigures): Verdict =>
  figures.fresh ? judge(figures) : { kind: 'unknown', reason: 'no recent status from the reader' };

function cdcRule(db: Queryable, name: string, description: string, judge: (figures: SourceFigures, windowMs: number) => Verdict): AlertRule {
  return {
    name,
    description,
    async read({ windowMs }) {
      const sources = await readSources(db, windowMs);
      const configured = await withCdcSource(db, sources.flatMap((figures) => figures.environments));
      const fresh = freshlyRead(sources);
      return sources.flatMap((figures) => {
        const verdict = judge(figures, windowMs);
        return figures.environments
          .filter((environment) => {
            const key = environmentKey(environment);
            return configured.has(key) && (figures.fresh || !readByAnother(fresh, figures.source, key));
          })
          .map((environment): Reading => ({ subject: `cdc:${figures.source}`, scope: { ...environment, tenant: undefined }, verdict }));
      });
    },
    async gone(subjects: readonly RuleSubject[], { windowMs }) {
      const configured = await withCdcSource(db, subjects.map((subject) => subject.scope));
      const fresh = freshlyRead(await readSources(db, windowMs));
      return subjects.filter((subject) => {
        const key = environmentKey(subject.scope);
        if (!configured.has(key)) return true;
        const source = subject.subject.slice('cdc:'.length);
        const listed = fresh.get(source);
        return listed ? !listed.has(key) : readByAnother(fresh, source, key);
      });
    },
  };
}

export interface CdcThresholds {
  /** @default 100 MiB */
  readonly maxLagBytes: number;
  /** @default 1 GiB */
  readonly maxRetainedWalBytes: number;
  /** Row changes matched but not routed that one source may have in the window before it is a warning. @default 0 */
  readonly unroutableRowsAllowed?: number;
}

/** Judges a source's row changes matched but not routed in the window: pure. */
export function judgeUnroutable(figures: Pick<SourceFigures, 'unroutableRows' | 'unroutableTop'>, windowMs: number, allowed: number): Verdict {
  const rows = figures.unroutableRows;
  const why = figures.unroutableTop === null ? '' : ` (most often ${figures.unroutableTop})`;
  return judgeLimit(rows, allowed, {
    severity: 'warning',
    message: `${rows} row ${rows === 1 ? 'change' : 'changes'} matched by a mapping could not be routed in full in the last ${Math.round(windowMs / 1000)} s${why}`,
  });
}

export function cdcRules(db: Queryable, thresholds: CdcThresholds): AlertRule[] {
  return [
    cdcRule(db, 'cdc.reader_down', 'A CDC reader that has not reported streaming for longer than the window, per source', judgeReader),
    cdcRule(db, 'cdc.lag', 'WAL written after the position a CDC reader confirmed, per source', measured((figures) =>
      judgeBytes(figures.lagBytes, thresholds.maxLagBytes, 'warning', 'replication lag'),
    )),
    cdcRule(db, 'cdc.retained_wal', "WAL a CDC reader's slot keeps on its source server, per source", measured((figures) =>
      judgeBytes(figures.retainedWalBytes, thresholds.maxRetainedWalBytes, 'critical', 'retained WAL'),
    )),
    cdcRule(db, 'cdc.slot_lost', 'A replication slot found lost and recreated (changes missed), per source', measured((figures) =>
      figures.slotLostRecently
        ? { kind: 'bad', severity: 'critical', value: 1, message: 'the replication slot was lost and recreated: changes were missed, subscribers resynced' }
        : { kind: 'good', value: 0 },
    )),
    cdcRule(db, 'cdc.unroutable_rows', 'Row changes a mapping matched but could not route within the window, per source', (figures, windowMs) =>
      judgeUnroutable(figures, windowMs, thresholds.unroutableRowsAllowed ?? 0),
    ),
  ];
}
