import { MAX_TENANT_LENGTH } from '../auth/principal.ts';
import { ErrorCode, TributaryError } from '../errors.ts';

/** Longest topic or channel name accepted. */
export const MAX_NAME_LENGTH = 200;

/**
 * Longest tenant id an event may carry, in characters (a token's tenant claim is bounded alike:
 * `auth/principal.ts`), and longest entity key, in UTF-8 bytes of what is stored (`MAX_ENTITY_BYTES`).
 * Both end up in indexed columns — a webhook delivery's lane (`tenant|entity`), the analytics
 * tables' keys — where a value past Postgres's btree limit (2,704 bytes for an index row) fails
 * the insert, and with it the routing of every event behind it. A source sets such an event aside
 * (an outbox row as dead, a CDC row as unroutable).
 */
export { MAX_TENANT_LENGTH };

/**
 * Longest entity key, in UTF-8 bytes of the stored text (for CDC the key as built, its composite
 * parts URI-encoded). Bytes, not characters: a URL primary key of a few hundred characters or a
 * key in CJK script must still route, and it is bytes that the btree limit counts. The worst lane
 * stays well under that limit: a tenant of 200 UTF-16 units is at most 800 bytes even counted at 4
 * bytes a unit (it is at most 600: 3 bytes for a BMP character, 4 for a surrogate pair of 2 units,
 * 2 for `\` or `|` doubled by the lane's escaping), plus a leading `\` and the `|` separator, plus
 * this entity: 800 + 2 + 1,024 = 1,826 bytes, and the lane index's other columns (a short endpoint
 * id, a bigint) and tuple headers add well under 100.
 */
export const MAX_ENTITY_BYTES = 1024;

const CONTROL_CHARACTER = /\p{Cc}/u;

/**
 * Whether `text` holds a control character (NUL among them): no name, key or label an input gives
 * should — `publish` refuses such an entity (`resolvers/json-input.ts` re-exports this), an outbox
 * sets such a row aside.
 */
export function hasControlCharacter(text: string): boolean {
  return CONTROL_CHARACTER.test(text);
}

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
