import { z } from 'zod';

/** Field parsers shared by the configuration's sections (`config.ts`, `config-alerts.ts`). */

/** A string, trimmed; empty counts as unset. */
export const optionalString = z
  .string()
  .transform((value) => value.trim())
  .transform((value) => (value === '' ? undefined : value))
  .optional();

/** An integer from `min` to `max`; `fallback` when unset. */
export const integer = (min: number, max: number, fallback: number) =>
  z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return fallback;
      const parsed = Number(value);
      if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
        ctx.addIssue({ code: 'custom', message: `must be an integer from ${min} to ${max} (got "${value}")` });
        return z.NEVER;
      }
      return parsed;
    });
