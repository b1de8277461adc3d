/**
 * Webhook endpoints in the platform database (migration 0007). One function per statement.
 * Secrets are returned to the caller only by `createEndpoint` and `rotateSecret` (the API shows
 * them once); every other read leaves them out of what reaches the API layer.
 */
import { randomBytes } from 'node:crypto';
import type { Queryable } from '../../db/database.ts';

export interface WebhookEndpoint {
  readonly id: string;
  readonly app: string;
  readonly env: string;
  /** Null: every tenant of the environment. */
  readonly tenant: string | null;
  readonly url: string;
  readonly description: string;
  /** Event types and topic patterns it selects. */
  readonly events: readonly string[];
  readonly enabled: boolean;
  readonly disabledReason: string | null;
  /** Deliveries started per second at most; null: no limit. */
  readonly rateLimitPerSecond: number | null;
  /** Attempts in flight at once at most. */
  readonly maxConcurrency: number;
  readonly failingSince: Date | null;
  readonly lastSuccessAt: Date | null;
  /** Since when its backlog has been full (no deliveries stored for it); null: not full. */
  readonly backlogFullSince: Date | null;
  /** When the previous secret stops signing; null when none is left. */
  readonly previousSecretExpiresAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** The secrets that sign an endpoint's deliveries now (the current one first). */
export interface SigningEndpoint extends WebhookEndpoint {
  readonly secrets: readonly string[];
}

export interface NewEndpoint {
  readonly app: string;
  readonly env: string;
  readonly tenant: string | null;
  readonly url: string;
  readonly description: string;
  readonly events: readonly string[];
  readonly rateLimitPerSecond: number | null;
  readonly maxConcurrency: number;
  readonly secret: string;
}

export type EndpointChanges = Partial<Pick<WebhookEndpoint, 'url' | 'description' | 'events' | 'rateLimitPerSecond' | 'maxConcurrency'>>;

type Row = {
  id: string;
  app: string;
  env: string;
  tenant: string | null;
  url: string;
  description: string;
  events: string[];
  enabled: boolean;
  disabled_reason: string | null;
  rate_limit_per_second: number | null;
  max_concurrency: number;
  failing_since: Date | null;
  last_success_at: Date | null;
  backlog_full_since: Date | null;
  previous_secret_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
  secret: string;
  previous_secret: string | null;
  previous_valid: boolean;
};

const COLUMNS = `id, app, env, tenant, url, description, events, enabled, disabled_reason, rate_limit_per_second, max_concurrency,
  failing_since, last_success_at, backlog_full_since, previous_secret_expires_at, created_at, updated_at, secret, previous_secret,
  (previous_secret IS NOT NULL AND previous_secret_expires_at > now()) AS previous_valid`;

function endpointOf(row: Row): SigningEndpoint {
  return {
    id: row.id,
    app: row.app,
    env: row.env,
    tenant: row.tenant,
    url: row.url,
    description: row.description,
    events: row.events,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    rateLimitPerSecond: row.rate_limit_per_second,
    maxConcurrency: row.max_concurrency,
    failingSince: row.failing_since,
    lastSuccessAt: row.last_success_at,
    backlogFullSince: row.backlog_full_since,
    previousSecretExpiresAt: row.previous_valid ? row.previous_secret_expires_at : null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    secrets: row.previous_valid && row.previous_secret !== null ? [row.secret, row.previous_secret] : [row.secret],
  };
}

export function newEndpointId(): string {
  return `ep_${randomBytes(12).toString('base64url')}`;
}

export async function insertEndpoint(db: Queryable, endpoint: NewEndpoint): Promise<SigningEndpoint> {
  const { rows } = await db.query<Row>(
    `INSERT INTO webhook_endpoints (id, app, env, tenant, url, description, events, rate_limit_per_second, max_concurrency, secret)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLUMNS}`,
    [
      newEndpointId(),
      endpoint.app,
      endpoint.env,
      endpoint.tenant,
      endpoint.url,
      endpoint.description,
      endpoint.events,
      endpoint.rateLimitPerSecond,
      endpoint.maxConcurrency,
      endpoint.secret,
    ],
  );
  return endpointOf(rows[0]!);
}

/** Every endpoint of every environment (what the routing tap and the workers cache). */
export async function listAllEndpoints(db: Queryable): Promise<SigningEndpoint[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM webhook_endpoints ORDER BY id`);
  return rows.map(endpointOf);
}

export async function listEndpoints(db: Queryable, app: string, env: string): Promise<SigningEndpoint[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM webhook_endpoints WHERE app = $1 AND env = $2 ORDER BY created_at, id`, [app, env]);
  return rows.map(endpointOf);
}

/**
 * Endpoints of an environment (all its tenants'), and those of one of its tenants (0 for none),
 * counted under a lock on the environment's creations held until `tx` ends: creations one at a
 * time, so two at once cannot both pass a limit by the same count.
 */
export async function lockAndCountEndpoints(tx: Queryable, app: string, env: string, tenant: string | null): Promise<{ environment: number; tenant: number }> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtext('tributary.webhook.endpoints'), hashtext($1))`, [`${app}/${env}`]);
  const { rows } = await tx.query<{ environment: number; tenant: number }>(
    `SELECT count(*)::int AS environment, count(*) FILTER (WHERE tenant = $3)::int AS tenant FROM webhook_endpoints WHERE app = $1 AND env = $2`,
    [app, env, tenant],
  );
  return rows[0] ?? { environment: 0, tenant: 0 };
}

export async function getEndpoint(db: Queryable, id: string): Promise<SigningEndpoint | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM webhook_endpoints WHERE id = $1`, [id]);
  return rows[0] && endpointOf(rows[0]);
}

/**
 * What caches reload by: a counter every creation, deletion and change of `updated_at` raises in its
 * own transaction (migrations/0023), so a new value is seen only with the change that made it —
 * whenever that change's transaction started — and no two states share one.
 */
export async function endpointsVersion(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ version: string }>(`SELECT version::text AS version FROM webhook_endpoints_version`);
  return rows[0]!.version;
}

export async function updateEndpoint(db: Queryable, id: string, changes: EndpointChanges): Promise<SigningEndpoint | undefined> {
  const { rows } = await db.query<Row>(
    `UPDATE webhook_endpoints SET
       url = coalesce($2, url), description = coalesce($3, description), events = coalesce($4, events),
       rate_limit_per_second = CASE WHEN $5::boolean THEN $6 ELSE rate_limit_per_second END,
       max_concurrency = coalesce($7, max_concurrency), updated_at = clock_timestamp()
     WHERE id = $1 RETURNING ${COLUMNS}`,
    [
      id,
      changes.url ?? null,
      changes.description ?? null,
      changes.events ?? null,
      changes.rateLimitPerSecond !== undefined,
      changes.rateLimitPerSecond ?? null,
      changes.maxConcurrency ?? null,
    ],
  );
  return rows[0] && endpointOf(rows[0]);
}

/**
 * Enables a disabled endpoint, clearing its reason and its failure streak; undefined when it was
 * enabled already (or is gone), which is left as it is: its streak still disables it in time.
 */
export async function enableEndpoint(db: Queryable, id: string): Promise<SigningEndpoint | undefined> {
  const { rows } = await db.query<Row>(
    `UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL, failing_since = NULL, updated_at = clock_timestamp()
     WHERE id = $1 AND NOT enabled RETURNING ${COLUMNS}`,
    [id],
  );
  return rows[0] && endpointOf(rows[0]);
}

/** The reason an admin's disable gives (`setWebhookEndpointEnabled`): every other reason is the engine's own (410, failing too long). */
export const ADMIN_DISABLE_REASON = 'disabled by an admin';

/**
 * Disables an enabled endpoint with a reason; undefined when it was disabled already (or is gone),
 * which keeps the reason and time it has: of the attempts that find it failing at once, in any
 * process, one disables it and tells; an admin's disable of one disabled already changes nothing.
 */
export async function disableEndpoint(db: Queryable, id: string, reason: string): Promise<SigningEndpoint | undefined> {
  const { rows } = await db.query<Row>(
    `UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = clock_timestamp() WHERE id = $1 AND enabled RETURNING ${COLUMNS}`,
    [id, reason],
  );
  return rows[0] && endpointOf(rows[0]);
}

/**
 * Marks the endpoint's backlog full (`full`) or no longer; the row when this changed it, undefined
 * when it already was so (or is gone): of the processes that find it at once, one marks and tells.
 */
export async function setBacklogFull(db: Queryable, id: string, full: boolean): Promise<SigningEndpoint | undefined> {
  const { rows } = await db.query<Row>(
    `UPDATE webhook_endpoints SET backlog_full_since = CASE WHEN $2 THEN clock_timestamp() END, updated_at = clock_timestamp()
     WHERE id = $1 AND (backlog_full_since IS NULL) = $2 RETURNING ${COLUMNS}`,
    [id, full],
  );
  return rows[0] && endpointOf(rows[0]);
}

/** A new secret; the old one keeps signing for `overlapSeconds` (none with 0). */
export async function rotateEndpointSecret(db: Queryable, id: string, secret: string, overlapSeconds: number): Promise<SigningEndpoint | undefined> {
  const { rows } = await db.query<Row>(
    `UPDATE webhook_endpoints SET previous_secret = CASE WHEN $3 > 0 THEN secret END, secret = $2,
       previous_secret_expires_at = CASE WHEN $3 > 0 THEN clock_timestamp() + $3::double precision * interval '1 second' END, updated_at = clock_timestamp()
     WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, secret, overlapSeconds],
  );
  return rows[0] && endpointOf(rows[0]);
}

/**
 * Clears every previous secret whose overlap has ended (both columns back to NULL); returns how many
 * went. Reads already ignore such a secret (`previous_valid`, the same `now()` comparison): it
 * would only lie in the row until the next rotation. A rotation committed meanwhile is not undone:
 * its row is compared again as it now stands, with an expiry still ahead.
 *
 * `updated_at` is left alone. The endpoint caches reload when it changes (`endpointsVersion`), and
 * nothing any read returns changes here — no secret that signs, no `previousSecretExpiresAt` (null
 * already once expired) — so no instance needs to reload; nor did the endpoint change for an
 * admin reading its `updatedAt`. An instance still holding the row as loaded before the expiry
 * signs without the old secret all the same: the deliverer checks the expiry as it signs.
 */
export async function forgetExpiredSecrets(db: Queryable): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE webhook_endpoints SET previous_secret = NULL, previous_secret_expires_at = NULL WHERE previous_secret_expires_at <= now()`,
  );
  return rowCount;
}

export async function deleteEndpoint(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM webhook_endpoints WHERE id = $1', [id]);
  return rowCount > 0;
}

/**
 * After an attempt: a success ends the failure streak, a failure starts it (when not started).
 * Returns the streak's start as it stands (null: not failing).
 */
export async function recordEndpointOutcome(db: Queryable, id: string, success: boolean): Promise<{ failingSince: Date | null } | undefined> {
  const { rows } = await db.query<{ failing_since: Date | null }>(
    success
      ? `UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = now() WHERE id = $1 RETURNING failing_since`
      : `UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()) WHERE id = $1 RETURNING failing_since`,
    [id],
  );
  return rows[0] && { failingSince: rows[0].failing_since };
}
