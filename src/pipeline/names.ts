import { MAX_TENANT_LENGTH } from '../auth/principal.ts';
import { ErrorCode, TributaryError } from '../errors.ts';

/** Longest topic or channel name accepted. */
export const MAX_NAME_LENGTH = 200;

/**
 * Longest tenant id (a token's tenant claim is bounded alike: `auth/principal.ts`) and entity key
 * an event may carry, in characters. Both end up in indexed columns — a webhook delivery's lane
 * (`tenant|entity`), the analytics tables' keys — where a value past Postgres's btree limit
 * (~2.7 kB) fails the insert, and with it the routing of every event behind it. A source sets such
 * an event aside (an outbox row as dead, a CDC row as unroutable).
 */
export { MAX_TENANT_LENGTH };
export const MAX_ENTITY_LENGTH = MAX_NAME_LENGTH;

/**
 * Topics and channels: letters, digits and `_ . : / -`, starting with a letter or digit.
 * No wildcards, whitespace or control characters, so a name is never a pattern and never
 * reaches a Redis key or a log line unescaped.
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/;

/** `kind` names the argument in the error: topic, channel, or an event type or name. */
export function assertName(kind: 'topic' | 'channel' | 'type' | 'event', name: string): string {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME.test(name)) {
    throw new TributaryError(
      ErrorCode.BAD_USER_INPUT,
      `Invalid ${kind} name: use 1–${MAX_NAME_LENGTH} characters of letters, digits and _ . : / -, starting with a letter or digit`,
      { details: { field: kind } },
    );
  }
  return name;
}
