/**
 * Deployments and their replication slots.
 *
 * A deployment is one platform database and the instances that share it (with Redis, one of them
 * reads each source database at a time). A logical slot keeps one position: a change one reader
 * confirms on it is never sent to another reader of that slot. Two deployments reading one
 * database on one slot would each miss what the other confirmed, and neither would be told. So:
 * - Each deployment reads on a slot of its own. Its id, made at its first start that reads CDC and
 *   kept in its platform database (migration 0036), gives the slot name's last part
 *   (`replication-names.ts`). Two deployments on one database then each get every change — and
 *   each slot retains the WAL its own reader has not confirmed yet. A deployment that read CDC
 *   before 0036 keeps the names it had, without that part (`legacySlotNames`): its slots, and
 *   their positions, carry on through the upgrade. The publication stays the database's, shared.
 * - Its replication connections carry `application_name` `tributary-cdc/{tag}`. A reader that
 *   finds its slot streamed terminates that walsender only when it is its own deployment's (a
 *   previous leader whose lease expired, not gone yet). Anyone else's — a deployment whose source
 *   names the same slot, another tool — is left alone: MISCONFIGURED, retried until the slot is free.
 * A copy of a platform database (a restored backup) is the same deployment: started against the
 * same source databases while the original runs, the two take each other's slots as their own.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ErrorCode, TributaryError, isTributaryError } from '../../errors.ts';
import type { CdcDeployment } from './cdc-store.ts';
import { defaultReplicationNames, type DatabaseIdentity, type ReplicationNames } from './wal/replication-names.ts';
import type { SourceConnections } from './wal/source-connections.ts';

export interface DeploymentNaming {
  /** 12 hex digits of the deployment's id: the last part of the slot names it derives. */
  readonly tag: string;
  /** The `application_name` of its replication connections. */
  readonly applicationName: string;
  /** The names of a database whose source sets none. */
  derived(identity: DatabaseIdentity): ReplicationNames;
  /** A walsender under this `application_name` is this deployment's own. */
  owns(applicationName: string | null): boolean;
}

/** The `application_name` of every version's replication connections before deployments had their own. */
const SHARED_APPLICATION_NAME = 'tributary-cdc';

export function deploymentNaming(deployment: CdcDeployment): DeploymentNaming {
  const tag = createHash('sha256').update(deployment.id).digest('hex').slice(0, 12);
  const applicationName = `${SHARED_APPLICATION_NAME}/${tag}`;
  return {
    tag,
    applicationName,
    derived: (identity) => defaultReplicationNames(identity, deployment.legacySlotNames ? undefined : tag),
    // Upgraded from before 0036: its instances not upgraded yet (a rolling upgrade) stream under the shared name.
    owns: (name) => name === applicationName || (deployment.legacySlotNames && name === SHARED_APPLICATION_NAME),
  };
}

/** A source read without a deployment (a source on its own, in tests): the names and walsenders of before 0036. */
export const UNNAMED_DEPLOYMENT: DeploymentNaming = deploymentNaming({ id: '', legacySlotNames: true });

/**
 * `connections` whose replication connections carry `applicationName`, over one the URL sets
 * (which would win): it is how a reader tells its deployment's walsenders from others'.
 */
export function withApplicationName(connections: SourceConnections, applicationName: string): SourceConnections {
  return {
    withClient: <T>(use: (client: pg.ClientBase) => Promise<T>) => connections.withClient(use),
    replicationConfig() {
      const config = connections.replicationConfig();
      const url = config.connectionString;
      return { ...config, ...(url !== undefined && { connectionString: withoutApplicationName(url) }), application_name: applicationName };
    },
    retirePooledConnections: () => connections.retirePooledConnections(),
    dispose: () => connections.dispose(),
  };
}

function withoutApplicationName(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (!parsed.searchParams.has('application_name')) return url;
  parsed.searchParams.delete('application_name');
  return parsed.toString();
}

interface HolderRow {
  pid: number;
  application_name: string | null;
  client_addr: string | null;
  walsender: boolean;
}

/** What a refused reader's `lastError` says: the reason a status read later (by another instance, too) recognises. */
const SLOT_IN_USE = 'is streamed by another reader';

/**
 * Frees the slot for this deployment's reader: a walsender of its own deployment still streaming
 * it is terminated; anyone else's is not. Resolves with why the slot is not free, if it is not:
 * MISCONFIGURED (`details.reason` `SLOT_IN_USE`) while another reader streams it, UNAVAILABLE
 * while a backend holds it otherwise (creating it). Not thrown: the connection is fine to reuse.
 */
export async function claimSlot(client: pg.ClientBase, slotName: string, naming: DeploymentNaming): Promise<TributaryError | undefined> {
  const { rows } = await client.query<HolderRow>(
    `SELECT s.active_pid AS pid, a.application_name, host(a.client_addr) AS client_addr,
            EXISTS (SELECT 1 FROM pg_stat_replication r WHERE r.pid = s.active_pid) AS walsender
       FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
      WHERE s.slot_name = $1 AND s.active_pid IS NOT NULL`,
    [slotName],
  );
  const holder = rows[0];
  if (!holder) return undefined;
  if (holder.walsender && naming.owns(holder.application_name)) {
    // Only while that pid is still that walsender: a pid is reused once its backend exits.
    await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND application_name = $2', [holder.pid, holder.application_name]);
    return undefined;
  }
  const who = `backend ${holder.pid}, application_name "${holder.application_name ?? 'unknown'}"${holder.client_addr === null ? '' : `, from ${holder.client_addr}`}`;
  if (!holder.walsender) {
    return new TributaryError(ErrorCode.UNAVAILABLE, `replication slot "${slotName}" is held by ${who} (which may be creating it); retrying`);
  }
  return new TributaryError(
    ErrorCode.MISCONFIGURED,
    `replication slot "${slotName}" ${SLOT_IN_USE} (${who}), not by this deployment, and is left to it: two readers of one slot ` +
      `each miss the changes the other confirms. If another Tributary deployment reads this database on the same slot name, ` +
      `give one of them a slot of its own (setCdcSource(slotName: …)); this reader retries until the slot is free`,
    { details: { reason: 'SLOT_IN_USE', slot: slotName, pid: holder.pid } },
  );
}

/** The reader status's `lastError` for a failed start: MISCONFIGURED says so, the operator has to act. */
export function startErrorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return isTributaryError(error) && error.code === ErrorCode.MISCONFIGURED ? `${ErrorCode.MISCONFIGURED}: ${message}` : message;
}

/** The failed start was refused the slot by another reader (`claimSlot`). */
export function isSlotInUse(error: unknown): boolean {
  return isTributaryError(error) && error.details?.['reason'] === 'SLOT_IN_USE';
}

/** A reader status (of any instance of the deployment) last said another reader streamed the slot. */
export function notedSlotInUse(lastError: string | null | undefined): boolean {
  return lastError?.startsWith(`${ErrorCode.MISCONFIGURED}: replication slot `) === true && lastError.includes(SLOT_IN_USE);
}
