import { DEVELOPMENT_PRINCIPAL, isAdmin, type Principal } from '../auth/principal.ts';
import { ErrorCode, TributaryError } from '../errors.ts';

/** Admin operations (sources, mappings, outboxes) need the `admin` role in the caller's token. */
export function requireAdmin(principal: Principal): void {
  if (!isAdmin(principal)) throw new TributaryError(ErrorCode.FORBIDDEN, 'This operation needs the admin role');
}

/**
 * Operations on what the whole environment shares — its CDC source and mappings, its outbox — act
 * for every tenant and show where the environment's database is: they need the admin token of the
 * environment, one without a tenant. An admin whose token names a tenant administers that tenant's
 * share only (webhook endpoints, analytics), as everywhere else.
 */
export function requireEnvironmentAdmin(principal: Principal): void {
  requireAdmin(principal);
  if (isEnvironmentAdmin(principal)) return;
  throw new TributaryError(
    ErrorCode.FORBIDDEN,
    `This operation acts for the whole environment: it needs an admin token without a tenant (this one is limited to tenant "${principal.tenant}")`,
  );
}

/** The admin of the whole environment (`requireEnvironmentAdmin`): the admin role, and no tenant in the token. */
export function isEnvironmentAdmin(principal: Principal): boolean {
  // Development mode's principal (tenant `default`) stands for every caller: it keeps every admin operation.
  return isAdmin(principal) && (principal.tenant === undefined || principal === DEVELOPMENT_PRINCIPAL);
}

/**
 * An operator: an environment admin (`isEnvironmentAdmin`) of the operators' environment
 * (`OPERATOR_SCOPE`) — who may read the cluster dashboard, every application's traffic.
 */
export function isOperator(principal: Principal, operators: { readonly app: string; readonly env: string }): boolean {
  return isEnvironmentAdmin(principal) && principal.app === operators.app && principal.env === operators.env;
}
