import { ErrorCode, TributaryError } from '../errors.ts';

/** Longest topic or channel name accepted. */
export const MAX_NAME_LENGTH = 200;

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
