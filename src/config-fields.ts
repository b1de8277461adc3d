import { isIP } from 'node:net';
import { z } from 'zod';

/** Field parsers shared by the configuration's sections (`config.ts`, `config-alerts.ts`). */

/** A string, trimmed; empty counts as unset. */
export const optionalString = z
  .string()
  .transform((value) => value.trim())
  .transform((value) => (value === '' ? undefined : value))
  .optional();

/**
 * An integer from `min` to `max`, written in decimal digits (a minus sign only where `min` is
 * negative); `fallback` when unset. Not `Number()` alone: it reads `0x1F90`, `8e3` and `0b1`
 * too, and PORT=0x1F90 listened on 8080.
 */
export const integer = (min: number, max: number, fallback: number) => {
  const digits = min < 0 ? /^-?\d+$/ : /^\d+$/;
  return z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return fallback;
      const parsed = digits.test(value) ? Number(value) : Number.NaN;
      if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
        ctx.addIssue({ code: 'custom', message: `must be an integer from ${min} to ${max} (got "${value}")` });
        return z.NEVER;
      }
      return parsed;
    });
};

/**
 * A name the last label of is all digits is an IPv4 address gone wrong (`999.1.1.1`), not a
 * host name (RFC 3696 §2); labels are letters, digits and inner hyphens, 63 at most.
 */
const HOST_NAME = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;
const NUMERIC_LAST_LABEL = /(?:^|\.)\d+\.?$/;

/**
 * HOST: an IP address (`0.0.0.0`, `::`, `10.0.0.5`) or a host name, as `listen()` takes it.
 * Checked at boot: `127.0.0.1:4000` or `http://…` used to pass and fail only at listen(), after
 * the database was opened and migrated, with an error that named no variable.
 */
export const hostAddress = optionalString.transform((value, ctx) => {
  if (value === undefined || isIP(value) !== 0 || (HOST_NAME.test(value) && !NUMERIC_LAST_LABEL.test(value))) return value;
  ctx.addIssue({ code: 'custom', message: `must be an IP address or a host name, without a port, scheme or brackets (got "${value}")` });
  return z.NEVER;
});
