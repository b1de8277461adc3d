/**
 * What the `outbox` workload's latency arms set up around their servers: each arm's application
 * database with its one table (on the private Postgres of `cdc-setup.ts`), what each arm's
 * transaction inserts, the subscribers' tokens, and each Tributary configured as an administrator
 * would — `setOutboxSource(…, mode: POLL | WAL, createTable: true)` for the outbox arms,
 * `setCdcSource` and `saveCdcMapping` for the CDC baseline — over GraphQL with an admin token.
 *
 * A database per arm, not one for all: the WAL arm's reader is given no publication, so Tributary
 * creates its default one, FOR ALL TABLES of its database. With the CDC arm's table beside it, its
 * walsender sent every one of the baseline's rows to the idle WAL server while the baseline was
 * measured (and nothing the other way: the CDC arm's publication is FOR its table), which
 * flattered the `outbox-wal/cdc` ratio.
 */
import pg from 'pg';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { waitFor } from '../../test/helpers/wait-for.ts';
import { graphqlData, postGraphQL } from '../lib/graphql-http.ts';
import type { InsertRow } from '../lib/commit-writer.ts';
import type { PeerProcess } from '../lib/peer-process.ts';
import { contactsTableSql, tenantOf } from '../lib/row-writer.ts';
import { sign, type SourceDatabase } from './cdc-setup.ts';

/** The arms, in run order: the outbox polled, the outbox read from the WAL, and CDC (the baseline). */
export const ARMS = ['outbox-poll', 'outbox-wal', 'cdc'] as const;
export type ArmName = (typeof ARMS)[number];
export const BASELINE: ArmName = 'cdc';

/** Every arm's events go to this topic (each arm has a Tributary of its own), read with `bench.read`. */
export const TOPIC = 'bench.commits';
const READ_PERMISSION = 'bench.read';

/** Every subscriber sends this: the same subscription whichever source the events come from. */
export const EVENTS_SUBSCRIPTION = {
  query: 'subscription Commits($topic: String!) { events(topic: $topic) { id payload cursor } }',
  variables: { topic: TOPIC },
};

/** How long an arm may take to report (workers) or stream (CDC) after it was configured, in ms. */
const READY_TIMEOUT_MS = 60_000;

/** The arm's table (outbox or CDC-mapped), its application and platform databases, and (CDC) its slot and publication. */
export function namesOf(arm: ArmName): { table: string; database: string; platformDatabase: string; slot: string; publication: string } {
  const key = `outbox_bench_${arm.replaceAll('-', '_')}`;
  return { table: key, database: `${key}_app`, platformDatabase: `${key}_platform`, slot: key, publication: `${key}_pub` };
}

/**
 * Creates every arm's application database and, in the CDC arm's, its table (the `cdc` workload's
 * shape) and publication; the outbox tables are created by `setOutboxSource`. Resolves with each
 * arm's database URL, which its server reads and its writer commits to.
 */
export async function prepareArmDatabases(source: Pick<SourceDatabase, 'createDatabase'>): Promise<ReadonlyMap<ArmName, string>> {
  const urls = new Map<ArmName, string>();
  for (const arm of ARMS) urls.set(arm, await source.createDatabase(namesOf(arm).database));
  const { table, publication } = namesOf(BASELINE);
  const client = new pg.Client({ connectionString: urls.get(BASELINE), application_name: 'bench-outbox-setup' });
  await client.connect();
  try {
    for (const statement of contactsTableSql(table)) await client.query(statement);
    await client.query(`CREATE PUBLICATION ${pg.escapeIdentifier(publication)} FOR TABLE ${pg.escapeIdentifier(table)}`);
  } finally {
    await client.end();
  }
  return urls;
}

/**
 * What one transaction of the arm inserts for row `seq`: the same fields either way (seq, sentAt,
 * name, email, status) of tenant `tenantOf(seq, tenants)`. Outbox rows of one tenant are one entity,
 * so each subscriber (one per tenant) must receive its rows in commit order on every arm.
 */
export function insertOf(arm: ArmName, tenants: number): InsertRow {
  const { table } = namesOf(arm);
  if (arm === BASELINE) {
    // Prepared once per connection by name: one Bind/Execute per insert, as the row writer's.
    const text = `INSERT INTO ${pg.escapeIdentifier(table)} (tenant_id, seq, "sentAt", name, email, status) VALUES ($1, $2, $3, $4, $5, 'active')`;
    return (client, seq, sentAt) =>
      client.query({ name: `bench_insert_${table}`, text, values: [tenantOf(seq, tenants), seq, sentAt, `Contact ${seq}`, `contact${seq}@example.com`] });
  }
  return (client, seq, sentAt) => {
    const tenant = tenantOf(seq, tenants);
    return enqueueOutboxEvent(
      client,
      {
        topic: TOPIC,
        type: 'contact.created',
        payload: { seq, sentAt, name: `Contact ${seq}`, email: `contact${seq}@example.com`, status: 'active' },
        tenant,
        entity: `account:${tenant}`,
        table: 'contacts',
        operation: 'insert',
      },
      { table },
    );
  };
}

/** `connection_init` payloads, one per tenant `t0…`: each sees its tenant's rows of the topic. */
export async function subscriberPayloads(secret: string, tenants: number): Promise<Record<string, unknown>[]> {
  const payloads: Record<string, unknown>[] = [];
  for (let topic = 0; topic < tenants; topic += 1) {
    const tenant = tenantOf(topic, tenants);
    const token = await sign(secret, { sub: `bench-${tenant}`, tenant, roles: [], permissions: [READ_PERMISSION] });
    payloads.push({ authorization: `Bearer ${token}` });
  }
  return payloads;
}

/** `setOutboxSource` refused `mode: WAL`: the server does not have it (yet); the arm is reported, not failed. */
export class WalModeUnavailable extends Error {}

/** Where an arm's server reads: its application database, and the run's token secret. */
export interface ArmSource {
  /** The arm's application database (`prepareArmDatabases`). */
  readonly url: string;
  /** HS256 secret of the run's tokens. */
  readonly secret: string;
}

/**
 * Configures the arm's Tributary and waits until it reads its source: for an outbox arm, until the
 * workers have reported the outbox once with no error; for CDC, until its reader streams.
 * Resolves with the mode in effect (`POLL`, `WAL`, or `CDC`).
 */
export async function configureArm(peer: Pick<PeerProcess, 'httpUrl'>, arm: ArmName, source: ArmSource): Promise<string> {
  const options = { token: await sign(source.secret, { sub: 'bench-admin', roles: ['admin'], permissions: [] }) };
  const { table, slot, publication } = namesOf(arm);
  if (arm === BASELINE) {
    await graphqlData(
      peer.httpUrl,
      'mutation($url: String!, $slot: String, $pub: String) { setCdcSource(databaseUrl: $url, slotName: $slot, publicationName: $pub) { host } }',
      { url: source.url, slot, pub: publication },
      options,
    );
    await graphqlData(
      peer.httpUrl,
      'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }',
      // The model's own stream is `bench.contacts` (read with changes(model:)); the events go to the arms' topic.
      { m: { name: 'commits', table, events: ['insert'], topic: TOPIC, module: 'bench', model: 'contacts', tenantColumn: 'tenant_id' } },
      options,
    );
    await waitFor(
      async () => {
        const data = await graphqlData(peer.httpUrl, '{ cdcSource { status { state lastError } } }', {}, options);
        const status = (data['cdcSource'] as { status: { state: string } | null } | null)?.status;
        // Thrown, so a timeout names the last status seen.
        if (status?.state !== 'streaming') throw new Error(`status ${JSON.stringify(status)}`);
        return true;
      },
      { timeoutMs: READY_TIMEOUT_MS, intervalMs: 100, message: `${arm}: the CDC reader is not streaming` },
    );
    return 'CDC';
  }

  const mode = arm === 'outbox-wal' ? 'WAL' : 'POLL';
  // The mode as a variable: a server without WAL refuses the value with a message naming the enum.
  const { status, body } = await postGraphQL(
    peer.httpUrl,
    'mutation($url: String!, $table: String, $mode: OutboxMode) { setOutboxSource(databaseUrl: $url, table: $table, mode: $mode, createTable: true) { table requestedMode } }',
    { url: source.url, table, mode },
    options,
  );
  if (status !== 200 || body.errors !== undefined || !body.data) {
    const message = firstErrorMessage(body.errors) ?? `HTTP ${status}: ${JSON.stringify(body).slice(0, 300)}`;
    throw mode === 'WAL' ? new WalModeUnavailable(message) : new Error(`setOutboxSource: ${message}`);
  }
  // The workers pick a source up within 5 s and report it then: from that report on, rows are read.
  const reported = await waitFor(
    async () => {
      const data = await graphqlData(peer.httpUrl, '{ outboxStatus { mode lastError reportedAt } }', {}, options);
      const status = data['outboxStatus'] as { mode: string | null; lastError: string | null; reportedAt: string | null } | null;
      if (status?.reportedAt == null || status.lastError !== null) throw new Error(`status ${JSON.stringify(status)}`);
      return status.mode ?? '?';
    },
    { timeoutMs: READY_TIMEOUT_MS, intervalMs: 200, message: `${arm}: the workers did not report the outbox` },
  );
  if (reported !== mode) {
    const why = `requested ${mode}, the workers report mode ${reported}`;
    if (mode === 'WAL') throw new WalModeUnavailable(why);
    throw new Error(why);
  }
  return reported;
}

/** The message of a GraphQL response's first error, if it has one. */
function firstErrorMessage(errors: unknown): string | undefined {
  const first: unknown = Array.isArray(errors) ? errors[0] : undefined;
  if (typeof first !== 'object' || first === null || !('message' in first)) return undefined;
  return typeof first.message === 'string' ? first.message : undefined;
}

/** Drops every replication slot of the cluster (the arms' readers are stopped): none may decode the drain's WAL. */
export async function dropAllSlots(admin: pg.Client, source: SourceDatabase): Promise<void> {
  const { rows } = await admin.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots');
  for (const { slot_name: slot } of rows) await source.dropSlot(slot);
}
