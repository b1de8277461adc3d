/**
 * Who is calling, as established by a verified token (never by anything else the client sends).
 *
 * Terminology:
 * - app / env: the application and its environment (seed 000's `applicationId` + `environment`).
 * - tenant: the customer inside an application (seed 004's `tenantId`); absent for a principal
 *   that acts for the application as a whole (a back-end service).
 * - permissions: strings such as `crm.contacts.read` (`{module}.{model}.read`, seed 004).
 * - roles: `admin` unlocks admin operations.
 */
/** Longest tenant id, in characters (a token's claim is refused past it; `pipeline/names.ts` says why). */
export const MAX_TENANT_LENGTH = 200;

export interface Principal {
  readonly subject: string;
  readonly app: string;
  readonly env: string;
  readonly tenant: string | undefined;
  readonly roles: readonly string[];
  readonly permissions: readonly string[];
  /** When the token stops being valid, in ms since the epoch; `undefined` for no expiry. */
  readonly expiresAt: number | undefined;
}

const ADMIN_ROLE = 'admin';

/** The principal every request acts as in development mode (no JWT configuration). */
export const DEVELOPMENT_PRINCIPAL: Principal = Object.freeze({
  subject: 'development',
  app: 'default',
  env: 'default',
  tenant: 'default',
  roles: Object.freeze([ADMIN_ROLE]),
  permissions: Object.freeze([]),
  expiresAt: undefined,
});

export function isAdmin(principal: Principal): boolean {
  return principal.roles.includes(ADMIN_ROLE);
}
