/**
 * What the `cdc` workload sets up around the servers: the source database (a private Postgres
 * with logical WAL), one table and publication per peer (so a commit for one peer is decoded
 * but filtered out by the others' walsenders, and each peer's subscribers see only its own
 * rows), a slot per peer and group, the subscribers' tokens, and Tributary's source and mapping,
 * saved over GraphQL as an administrator would.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import pg from 'pg';
import { startPostgres } from '../../test/helpers/postgres.ts';
import { waitFor } from '../../test/helpers/wait-for.ts';
import type { PeerName } from '../peers/peer.ts';
import { createProcessSetCpu, processCpuMicros, type ProcessSetCpu } from '../lib/cpu.ts';
import { clockMillis } from '../lib/fanout-payload.ts';
import { graphqlData } from '../lib/graphql-http.ts';
import type { PeerProcess } from '../lib/peer-process.ts';
import { contactsTableSql, tenantOf } from '../lib/row-writer.ts';
import type { WorkloadContext } from '../lib/workload.ts';

/** Every subscriber's module and model: the permission is `crm.contacts.read`. */
const MODULE = 'crm';
export const MODEL = 'contacts';

export interface SourceDatabase {
  /** `postgres://…` (trust auth, superuser). */
  readonly url: string;
  /** HS256 secret of every token of the run. */
  readonly secret: string;
  /** Creates the peer's table and publication (once per peer). */
  preparePeer(name: PeerName): Promise<void>;
  /**
   * Resolves with `clockMillis()` once the slot has confirmed `walLsn` (or has no lag at all),
   * polling every 10 ms; rejects after `timeoutMs`.
   */
  waitForSlot(slot: string, walLsn: string, timeoutMs: number): Promise<number>;
  /** Creates an empty database on the same server; resolves with its URL. */
  createDatabase(name: string): Promise<string>;
  /**
   * Drops a database made by `createDatabase` (its connections ended; a missing one is fine), so
   * no autovacuum of its dead rows runs on into the next measurement.
   */
  dropDatabase(name: string): Promise<void>;
  /**
   * CPU time so far of the server processes (backends) connected to `database`, in µs, from
   * /proc: what Tributary's platform database costs Postgres. Every backend seen connected at a
   * reading stays counted, at its last reading, once it ends (`createProcessSetCpu`): a pool
   * closes idle connections (pg's default: after 10 s), and a backend that ended between two
   * readings must not take its lifetime out of the second. Read it around a step; NaN without /proc.
   */
  databaseCpuMicros(database: string): Promise<number>;
  /** Drops the slot, ending the walsender that still holds it. Missing slots are fine. */
  dropSlot(slot: string): Promise<void>;
}

/** The peer's table, publication and slot names (lower-case identifiers). */
export function namesOf(name: PeerName, group: string): { table: string; publication: string; slot: string } {
  const key = name.replaceAll('-', '_');
  return { table: `${key}_contacts`, publication: `${key}_pub`, slot: `${key}_${group}` };
}

export interface SourceDatabaseOptions {
  /**
   * postgresql.conf settings over this module's (e.g. autovacuum back on, for a workload that
   * updates rows at a high rate as production does; an extension to preload). @default {}
   */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
}

/** A private Postgres (stopped by the runner at the end) and a monitoring connection to it. */
export async function startSourceDatabase(context: WorkloadContext, options: SourceDatabaseOptions = {}): Promise<SourceDatabase> {
  const postgres = await startPostgres({
    settings: {
      // The harness turns it off to make tests fast, but then a commit reaches the walsenders
      // only when the WAL writer flushes (up to wal_writer_delay, 200 ms, later): every CDC
      // latency would be that. fsync stays off, so a commit is still cheap.
      synchronous_commit: true,
      // Nothing but the workload writes WAL, so a slot's lag is the workload's.
      autovacuum: false,
      ...options.settings,
    },
  });
  context.defer(`postgres (${postgres.dataDir})`, () => postgres.dispose());
  const monitor = new pg.Client({ connectionString: postgres.url, application_name: 'bench-monitor' });
  monitor.on('error', () => {});
  await monitor.connect();
  context.defer('postgres monitoring connection', () => monitor.end());
  const prepared = new Set<PeerName>();
  /** Per database, its backends' CPU over every reading. */
  const backends = new Map<string, ProcessSetCpu>();

  return {
    url: postgres.url,
    secret: randomBytes(32).toString('base64url'),
    async preparePeer(name) {
      if (prepared.has(name)) return;
      prepared.add(name);
      const { table, publication } = namesOf(name, '');
      for (const statement of contactsTableSql(table)) await monitor.query(statement);
      await monitor.query(`CREATE PUBLICATION ${pg.escapeIdentifier(publication)} FOR TABLE ${pg.escapeIdentifier(table)}`);
    },
    waitForSlot(slot, walLsn, timeoutMs) {
      return waitFor(
        async () => {
          const { rows } = await monitor.query<{ done: boolean }>(
            `SELECT confirmed_flush_lsn >= $2::pg_lsn OR pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) <= 0 AS done
               FROM pg_replication_slots WHERE slot_name = $1`,
            [slot, walLsn],
          );
          return rows[0]?.done === true ? clockMillis() : 0;
        },
        { timeoutMs, intervalMs: 10, message: `slot ${slot} did not confirm ${walLsn}` },
      );
    },
    async createDatabase(name) {
      await monitor.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      const url = new URL(postgres.url);
      url.pathname = `/${name}`;
      return url.toString();
    },
    async dropDatabase(name) {
      await monitor.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    },
    async databaseCpuMicros(database) {
      const { rows } = await monitor.query<{ pid: number; started: string }>(
        'SELECT pid, backend_start::text AS started FROM pg_stat_activity WHERE datname = $1',
        [database],
      );
      const readings = await Promise.all(rows.map(async ({ pid, started }) => [`${pid} ${started}`, await processCpuMicros(pid)] as const));
      let tally = backends.get(database);
      if (!tally) backends.set(database, (tally = createProcessSetCpu()));
      return tally.record(readings);
    },
    async dropSlot(slot) {
      for (let attempt = 0; attempt < 50; attempt += 1) {
        const { rows } = await monitor.query<{ active_pid: number | null }>('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot]);
        const row = rows[0];
        if (!row) return;
        if (row.active_pid === null) {
          await monitor.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
        } else {
          await monitor.query('SELECT pg_terminate_backend($1)', [row.active_pid]);
        }
        await sleep(100);
      }
    },
  };
}

/** The server's environment: its slot for this group, its publication, the token secret. */
export function peerEnvironment(name: PeerName, group: string, source: SourceDatabase, redisUrl: string, platformUrl?: string): Record<string, string> {
  const { table, publication, slot } = namesOf(name, group);
  const common = { JWT_SECRET: source.secret, REDIS_URL: redisUrl };
  // Tributary names its slot per source (configureTributary); the reference peer reads its own settings.
  if (name !== 'pg-redis-graphql-ws') return { ...common, ...(platformUrl !== undefined && { DATABASE_URL: platformUrl }) };
  return { ...common, CDC_SLOT_NAME: slot, CDC_PUBLICATION_NAME: publication, CDC_DATABASE_URL: source.url, CDC_TABLE: table, CDC_MODEL: MODEL, CDC_MODULE: MODULE };
}

/** `connection_init` payloads, one per topic: topic k is tenant `tenantOf(k)`, allowed to read the model. */
export async function subscriberPayloads(secret: string, topics: number): Promise<Record<string, unknown>[]> {
  const payloads: Record<string, unknown>[] = [];
  for (let topic = 0; topic < topics; topic += 1) {
    const tenant = tenantOf(topic, topics);
    const token = await sign(secret, { sub: `bench-${tenant}`, tenant, roles: [], permissions: [`${MODULE}.${MODEL}.read`] });
    payloads.push({ authorization: `Bearer ${token}` });
  }
  return payloads;
}

/**
 * Points Tributary at the source database and saves the mapping (admin token, app and env
 * "default"), then waits until its reader streams. The mapping routes by `tenant_id`, so a row
 * of tenant `t3` reaches the subscribers whose token says tenant `t3`.
 */
export async function configureTributary(peer: PeerProcess, source: SourceDatabase, group: string): Promise<void> {
  const options = { token: await sign(source.secret, { sub: 'bench-admin', roles: ['admin'], permissions: [] }) };
  const { table } = namesOf(peer.name, '');
  // Every peer and group reads the one source database on a slot of its own: named per source.
  const { slot, publication } = namesOf(peer.name, group);
  await graphqlData(
    peer.httpUrl,
    'mutation($url: String!, $slot: String, $pub: String) { setCdcSource(databaseUrl: $url, slotName: $slot, publicationName: $pub) { host } }',
    { url: source.url, slot, pub: publication },
    options,
  );
  await graphqlData(peer.httpUrl, 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', {
    m: { name: MODEL, table, events: ['insert', 'update', 'delete'], topic: `${MODULE}.contact-events`, module: MODULE, model: MODEL, tenantColumn: 'tenant_id' },
  }, options);
  await waitFor(
    async () => {
      const data = await graphqlData(peer.httpUrl, '{ cdcSource { status { state lastError } } }', {}, options);
      const status = (data['cdcSource'] as { status: { state: string; lastError: string | null } | null } | null)?.status;
      // Thrown, so a timeout names the last status seen.
      if (status?.state !== 'streaming') throw new Error(`status ${JSON.stringify(status)}`);
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 100, message: `${peer.name}: the CDC reader is not streaming` },
  );
}

/** An HS256 token for app and env "default", valid for two hours. */
export async function sign(secret: string, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT({ app: 'default', env: 'default', ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(secret));
}
