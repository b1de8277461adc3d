import { randomUUID } from 'node:crypto';
import type { Database } from '../../db/database.ts';
import { addMinuteCounts, CDC_UNROUTABLE_COUNTS } from '../../db/minute-counts.ts';
import { parseMapping, type DomainMapping } from './mapping/mapping.ts';
import { createRawChangeLog, type RawChangeLog } from './raw-change-log.ts';
import { createUnroutableTally, type UnroutableNote } from './unroutable-tally.ts';
import type { OtherSlots } from './wal/other-slots.ts';
import type { SlotWalSafety } from './wal/slot-readings.ts';

/**
 * What CDC keeps in the platform database (migration 0003): each environment's source database,
 * its mappings, the readers' status, the replication slots to drop (migration 0025) and the
 * deployment's id (migration 0036). The raw changes are `raw-change-log.ts`'s: the store carries
 * that log too, so CDC is handed one store.
 */
export interface CdcSourceRecord {
  readonly app: string;
  readonly env: string;
  readonly databaseUrl: string;
  /** The source's own slot name; null: derived from the database's identity (`replication-names.ts`). */
  readonly slotName: string | null;
  /** The source's own publication name; null: derived like the slot's. */
  readonly publicationName: string | null;
  readonly updatedAt: Date;
}

/**
 * A replication slot to drop on its source database (migration 0025): what the configuration that
 * retired it named. The drop is `retired-slots.ts`'s.
 */
export interface RetiredSlotNote {
  readonly id: string;
  /** The database's identity key (`identityKey`); null: not known when noted, taken at the first contact. */
  readonly database: string | null;
  readonly databaseUrl: string;
  /** null: the name derived from the database's identity. */
  readonly slotName: string | null;
}

/** The identity key of the database `url` reaches, as the caller knows it: noted with a slot retired from that URL. */
export interface KnownDatabase {
  readonly url: string;
  readonly database: string;
}

/** The deployment this platform database is (`deployment-slots.ts`). */
export interface CdcDeployment {
  readonly id: string;
  /** It read CDC before deployments had slots of their own: it keeps the names it had. */
  readonly legacySlotNames: boolean;
}

export interface StoredMapping {
  readonly app: string;
  readonly env: string;
  readonly mapping: DomainMapping;
  readonly updatedAt: Date;
}

export interface ReaderStatusRecord {
  readonly source: string;
  readonly state: string;
  readonly leader: string | null;
  readonly lastLsn: string | null;
  readonly lagBytes: number | null;
  readonly retainedWalBytes: number | null;
  /** The slot's `wal_status` and `safe_wal_size`, as measured with the figures (migration 0041; the `cdc.slot_at_risk` alert). @default null: not measured */
  readonly walSafety?: SlotWalSafety | null;
  /** The database's other Tributary slots, as measured with the figures (migration 0038; the `cdc.retained_wal` alert). @default null: not measured */
  readonly otherSlots?: OtherSlots | null;
  readonly lastError: string | null;
  /** The environments reading this source (for the alert rules: its status is per database). @default unchanged */
  readonly environments?: readonly { readonly app: string; readonly env: string }[];
  readonly updatedAt: Date;
  /** How long ago it was written, in ms, by the platform database's clock (as `getStatus` reads it). */
  readonly ageMs?: number;
}

export type { UnroutableNote };

export interface CdcStore extends RawChangeLog {
  /** The deployment's id, made (at random) by the first call when there is none yet. */
  deployment(): Promise<CdcDeployment>;
  listSources(): Promise<CdcSourceRecord[]>;
  getSource(app: string, env: string): Promise<CdcSourceRecord | undefined>;
  /** Also notes the slot the environment's previous URL or slot name named (`RetiredSlotNote`), in the same statement. */
  setSource(
    app: string,
    env: string,
    databaseUrl: string,
    names?: { slotName: string | null; publicationName: string | null },
    previous?: KnownDatabase,
  ): Promise<CdcSourceRecord>;
  /** Also notes the slot the environment named, in the same statement. */
  removeSource(app: string, env: string, previous?: KnownDatabase): Promise<boolean>;
  /** Notes a slot to drop (one a reload stopped reading that its configuration no longer names). */
  noteRetiredSlot(note: Omit<RetiredSlotNote, 'id'>): Promise<void>;
  listRetiredSlots(): Promise<RetiredSlotNote[]>;
  /** Records the database of a note saved without it, unless another instance did first: resolves with the one stored (undefined: the note is gone). */
  pinRetiredSlot(id: string, database: string): Promise<string | undefined>;
  /** Deletes the notes (their slot dropped, claimed again, or given up). */
  settleRetiredSlots(ids: readonly string[]): Promise<void>;
  /** Mappings of one environment, or of all when omitted, by name. */
  listMappings(scope?: { app: string; env: string }): Promise<StoredMapping[]>;
  saveMapping(app: string, env: string, mapping: DomainMapping): Promise<StoredMapping>;
  deleteMapping(app: string, env: string, name: string): Promise<boolean>;
  /** Changes whenever a source or mapping is saved or removed: what readers poll to reload. */
  version(): Promise<string>;
  /**
   * Counts a row change a mapping matched but could not route (`UnroutableRowError`), in memory
   * and at once (the reader's hot path): the next `saveStatus` of that source adds the counts to
   * the platform database for `cdc.unroutable_rows` (migration 0031).
   */
  noteUnroutable(source: string, row: UnroutableNote): void;
  /** Also adds the source's unroutable rows noted since the last save (`noteUnroutable`); kept for the next save when it fails. */
  saveStatus(status: Omit<ReaderStatusRecord, 'updatedAt'>): Promise<void>;
  getStatus(source: string): Promise<ReaderStatusRecord | undefined>;
  /** Notes that the source's slot was found lost and recreated (the `cdc.slot_lost` alert). */
  noteSlotLost(source: string): Promise<void>;
  /** Forgets a source's reader status, once its slot is dropped (no environment reads the database any more). */
  forgetReader(source: string): Promise<void>;
}

type SourceRow = { app: string; env: string; database_url: string; slot_name: string | null; publication_name: string | null; updated_at: Date };
const SOURCE_COLUMNS = 'app, env, database_url, slot_name, publication_name, updated_at';
type MappingRow = { app: string; env: string; definition: unknown; updated_at: Date };
type StatusRow = {
  source: string;
  state: string;
  leader: string | null;
  last_lsn: string | null;
  lag_bytes: string | null;
  retained_wal_bytes: string | null;
  other_slots: OtherSlots | null;
  wal_status: string | null;
  safe_wal_bytes: string | null;
  max_slot_wal_keep_bytes: string | null;
  last_error: string | null;
  updated_at: Date;
  age_ms: number;
};

/**
 * The status's `wal_status` columns (migration 0041) as read: only those written with the status
 * itself (`wal_safety_at = updated_at`), not left over from before a previous version's write.
 */
export const WAL_SAFETY_COLUMNS = `CASE WHEN wal_safety_at = updated_at THEN wal_status END AS wal_status,
  CASE WHEN wal_safety_at = updated_at THEN safe_wal_bytes END::text AS safe_wal_bytes,
  CASE WHEN wal_safety_at = updated_at THEN max_slot_wal_keep_bytes END::text AS max_slot_wal_keep_bytes`;

/** What `WAL_SAFETY_COLUMNS` read: null when not measured (no `wal_status`). */
export function walSafetyOf(row: { wal_status: string | null; safe_wal_bytes: string | null; max_slot_wal_keep_bytes: string | null }): SlotWalSafety | null {
  if (row.wal_status === null) return null;
  const bytes = (value: string | null) => (value === null ? null : Number(value));
  return { walStatus: row.wal_status, safeWalBytes: bytes(row.safe_wal_bytes), maxSlotWalKeepBytes: bytes(row.max_slot_wal_keep_bytes) };
}

export function createCdcStore(db: Database): CdcStore {
  const toSource = (row: SourceRow): CdcSourceRecord => ({
    app: row.app,
    env: row.env,
    databaseUrl: row.database_url,
    slotName: row.slot_name,
    publicationName: row.publication_name,
    updatedAt: row.updated_at,
  });
  // Stored definitions were validated on save; parsing again gives the normalized, typed form.
  const toMapping = (row: MappingRow): StoredMapping => ({ app: row.app, env: row.env, mapping: parseMapping(row.definition), updatedAt: row.updated_at });
  const unroutable = createUnroutableTally();

  return {
    async deployment() {
      // The row this statement inserts is not in its own snapshot of the table: the union reads either.
      const { rows } = await db.query<{ id: string; legacy_slot_names: boolean }>(
        `WITH made AS (
           INSERT INTO cdc_deployment (id) VALUES ($1) ON CONFLICT (singleton) DO NOTHING RETURNING id, legacy_slot_names
         )
         SELECT id, legacy_slot_names FROM made UNION ALL SELECT id, legacy_slot_names FROM cdc_deployment`,
        [randomUUID()],
      );
      return { id: rows[0]!.id, legacySlotNames: rows[0]!.legacy_slot_names };
    },

    async listSources() {
      const { rows } = await db.query<SourceRow>(`SELECT ${SOURCE_COLUMNS} FROM cdc_sources ORDER BY app, env`);
      return rows.map(toSource);
    },

    async getSource(app, env) {
      const { rows } = await db.query<SourceRow>(`SELECT ${SOURCE_COLUMNS} FROM cdc_sources WHERE app = $1 AND env = $2`, [app, env]);
      return rows[0] && toSource(rows[0]);
    },

    async setSource(app, env, databaseUrl, names, previous) {
      // One statement with the note: a process that stops right after the save still leaves the
      // note for another to drop the slot. One that names the same slot is deleted as claimed.
      const { rows } = await db.query<SourceRow>(
        `WITH previous AS (SELECT database_url, slot_name FROM cdc_sources WHERE app = $1 AND env = $2 FOR UPDATE),
         noted AS (
           INSERT INTO cdc_retired_slots (database, database_url, slot_name)
           SELECT CASE WHEN database_url = $6::text THEN $7::text END, database_url, slot_name FROM previous
           WHERE database_url <> $3 OR slot_name IS DISTINCT FROM $4::text
         )
         INSERT INTO cdc_sources (app, env, database_url, slot_name, publication_name) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (app, env) DO UPDATE SET database_url = excluded.database_url, slot_name = excluded.slot_name,
           publication_name = excluded.publication_name, updated_at = now()
         RETURNING ${SOURCE_COLUMNS}`,
        [app, env, databaseUrl, names?.slotName ?? null, names?.publicationName ?? null, previous?.url ?? null, previous?.database ?? null],
      );
      return toSource(rows[0]!);
    },

    async removeSource(app, env, previous) {
      const { rows } = await db.query<{ removed: number }>(
        `WITH removed AS (DELETE FROM cdc_sources WHERE app = $1 AND env = $2 RETURNING database_url, slot_name),
         noted AS (
           INSERT INTO cdc_retired_slots (database, database_url, slot_name)
           SELECT CASE WHEN database_url = $3::text THEN $4::text END, database_url, slot_name FROM removed
         )
         SELECT count(*)::int AS removed FROM removed`,
        [app, env, previous?.url ?? null, previous?.database ?? null],
      );
      return rows[0]!.removed > 0;
    },

    async noteRetiredSlot(note) {
      await db.query('INSERT INTO cdc_retired_slots (database, database_url, slot_name) VALUES ($1, $2, $3)', [note.database, note.databaseUrl, note.slotName]);
    },

    async listRetiredSlots() {
      const { rows } = await db.query<{ id: string; database: string | null; database_url: string; slot_name: string | null }>(
        'SELECT id::text, database, database_url, slot_name FROM cdc_retired_slots ORDER BY id',
      );
      return rows.map((row) => ({ id: row.id, database: row.database, databaseUrl: row.database_url, slotName: row.slot_name }));
    },

    async pinRetiredSlot(id, database) {
      await db.query('UPDATE cdc_retired_slots SET database = $2 WHERE id = $1 AND database IS NULL', [id, database]);
      const { rows } = await db.query<{ database: string | null }>('SELECT database FROM cdc_retired_slots WHERE id = $1', [id]);
      return rows[0]?.database ?? undefined;
    },

    async settleRetiredSlots(ids) {
      if (ids.length > 0) await db.query('DELETE FROM cdc_retired_slots WHERE id = ANY($1::bigint[])', [ids]);
    },

    async listMappings(scope) {
      const { rows } = scope
        ? await db.query<MappingRow>('SELECT app, env, definition, updated_at FROM cdc_mappings WHERE app = $1 AND env = $2 ORDER BY name', [scope.app, scope.env])
        : await db.query<MappingRow>('SELECT app, env, definition, updated_at FROM cdc_mappings ORDER BY app, env, name');
      return rows.map(toMapping);
    },

    async saveMapping(app, env, mapping) {
      const { rows } = await db.query<MappingRow>(
        `INSERT INTO cdc_mappings (app, env, name, definition) VALUES ($1, $2, $3, $4)
         ON CONFLICT (app, env, name) DO UPDATE SET definition = excluded.definition, updated_at = now()
         RETURNING app, env, definition, updated_at`,
        [app, env, mapping.name, JSON.stringify(mapping)],
      );
      return toMapping(rows[0]!);
    },

    async deleteMapping(app, env, name) {
      return (await db.query('DELETE FROM cdc_mappings WHERE app = $1 AND env = $2 AND name = $3', [app, env, name])).rowCount > 0;
    },

    async version() {
      const { rows } = await db.query<{ version: string }>(
        `SELECT (SELECT count(*) || '@' || coalesce(max(updated_at)::text, '') FROM cdc_sources) || '/' ||
                (SELECT count(*) || '@' || coalesce(max(updated_at)::text, '') FROM cdc_mappings) AS version`,
      );
      return rows[0]!.version;
    },

    noteUnroutable(source, row) {
      unroutable.note(source, row);
    },

    async saveStatus(status) {
      const counted = unroutable.take(status.source);
      try {
        await addMinuteCounts(db, CDC_UNROUTABLE_COUNTS, status.source, [...counted.values()]);
      } catch (error) {
        unroutable.restore(status.source, counted);
        throw error;
      }
      await db.query(
        `INSERT INTO cdc_reader_status (source, state, leader, last_lsn, lag_bytes, retained_wal_bytes, other_slots, last_error, environments, updated_at, not_streaming_since,
                                        wal_status, safe_wal_bytes, max_slot_wal_keep_bytes, wal_safety_at)
         VALUES ($1, $2, $3, $4, $5, $6, $9::jsonb, $7, $8::jsonb, now(), CASE WHEN $2 = 'streaming' AND $5::bigint IS NOT NULL THEN NULL ELSE now() END,
                 $10, $11, $12, now())
         ON CONFLICT (source) DO UPDATE SET state = excluded.state, leader = excluded.leader,
           last_lsn = coalesce(excluded.last_lsn, cdc_reader_status.last_lsn), lag_bytes = excluded.lag_bytes,
           retained_wal_bytes = excluded.retained_wal_bytes, other_slots = excluded.other_slots, last_error = excluded.last_error,
           -- With wal_safety_at = updated_at: what a previous version's leader writes leaves them stale, hence unread (migration 0041).
           wal_status = excluded.wal_status, safe_wal_bytes = excluded.safe_wal_bytes,
           max_slot_wal_keep_bytes = excluded.max_slot_wal_keep_bytes, wal_safety_at = now(),
           environments = coalesce(excluded.environments, cdc_reader_status.environments), updated_at = now(),
           -- Not streaming since the last report that said it streamed (migration 0027) with its lag
           -- measured: a reader streaming while its slot cannot be read (its source stopped answering
           -- the leader's readings) hides a lag that may grow without bound (cdc.reader_down).
           not_streaming_since = CASE WHEN excluded.state = 'streaming' AND excluded.lag_bytes IS NOT NULL THEN NULL
             ELSE coalesce(cdc_reader_status.not_streaming_since, cdc_reader_status.updated_at) END`,
        [
          status.source,
          status.state,
          status.leader,
          status.lastLsn,
          status.lagBytes,
          status.retainedWalBytes,
          status.lastError,
          status.environments === undefined ? null : JSON.stringify(status.environments),
          status.otherSlots == null ? null : JSON.stringify(status.otherSlots),
          status.walSafety?.walStatus ?? null,
          status.walSafety?.safeWalBytes ?? null,
          status.walSafety?.maxSlotWalKeepBytes ?? null,
        ],
      );
    },

    async getStatus(source) {
      const { rows } = await db.query<StatusRow>(
        `SELECT source, state, leader, last_lsn, lag_bytes::text, retained_wal_bytes::text, other_slots, last_error, updated_at,
                (extract(epoch FROM now() - updated_at) * 1000)::float8 AS age_ms, ${WAL_SAFETY_COLUMNS}
           FROM cdc_reader_status WHERE source = $1`,
        [source],
      );
      const row = rows[0];
      return (
        row && {
          source: row.source,
          state: row.state,
          leader: row.leader,
          lastLsn: row.last_lsn,
          lagBytes: row.lag_bytes === null ? null : Number(row.lag_bytes),
          retainedWalBytes: row.retained_wal_bytes === null ? null : Number(row.retained_wal_bytes),
          otherSlots: row.other_slots,
          walSafety: walSafetyOf(row),
          lastError: row.last_error,
          updatedAt: row.updated_at,
          ageMs: row.age_ms,
        }
      );
    },

    async noteSlotLost(source) {
      await db.query(
        `INSERT INTO cdc_reader_status (source, state, slot_lost_at, not_streaming_since) VALUES ($1, 'starting', now(), now())
         ON CONFLICT (source) DO UPDATE SET slot_lost_at = now()`,
        [source],
      );
    },

    async forgetReader(source) {
      await db.query('DELETE FROM cdc_reader_status WHERE source = $1', [source]);
      await db.query('DELETE FROM cdc_unroutable_counts WHERE source = $1', [source]);
    },

    ...createRawChangeLog(db),
  };
}

