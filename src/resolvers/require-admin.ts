import { isAdmin, type Principal } from '../auth/principal.ts';
import { ErrorCode, TributaryError } from '../errors.ts';

/** Admin operations (sources, mappings, outboxes) need the `admin` role in the caller's token. */
export function requireAdmin(principal: Principal): void {
  if (!isAdmin(principal)) throw new TributaryError(ErrorCode.FORBIDDEN, 'This operation needs the admin role');
}
