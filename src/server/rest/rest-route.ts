/** What a REST route is (`admin-api.ts` serves them), and the helpers routes share. */
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { ResolverContext } from '../../resolvers/context.ts';

/** Answers a verified caller's query with the JSON body, or throws a TributaryError. */
export type RestRoute = (context: ResolverContext, query: URLSearchParams) => Promise<unknown>;

/** A query parameter was wrong. */
export function badQuery(field: string, message: string): TributaryError {
  return new TributaryError(ErrorCode.BAD_USER_INPUT, message, { details: { field } });
}

/**
 * A parameter's value; null when absent. Given twice (`window=1m&window=1h`) it is refused: read
 * as its first value, the second was silently ignored, and the caller got an answer to another
 * question than the one it thought it asked.
 */
export function singleParam(query: URLSearchParams, name: string): string | null {
  const values = query.getAll(name);
  if (values.length > 1) throw badQuery(name, `${name} may be given once (got ${values.length} values)`);
  return values[0] ?? null;
}

/** A comma-separated list of allowed values, case-insensitive; undefined when absent. */
export function listParam<T extends string>(query: URLSearchParams, name: string, allowed: readonly T[]): T[] | undefined {
  const raw = singleParam(query, name);
  if (raw === null || raw.trim() === '') return undefined;
  const values = raw.split(',').map((value) => value.trim().toLowerCase());
  const wrong = values.find((value) => !(allowed as readonly string[]).includes(value));
  if (wrong !== undefined) throw badQuery(name, `${name} must be any of ${allowed.join(', ')} (got "${wrong}")`);
  return values as T[];
}

/** Decimal digits, maybe a minus sign (the resolver says which range it takes). */
const INTEGER = /^-?\d{1,15}$/;

/**
 * An integer parameter, written in decimal digits; undefined when absent (the resolver's default
 * applies). Not `Number()` alone: it reads `1e1`, `0x0A`, ` 10` and `10.0` as 10 too.
 */
export function integerParam(query: URLSearchParams, name: string): number | undefined {
  const raw = singleParam(query, name);
  if (raw === null || raw === '') return undefined;
  if (!INTEGER.test(raw)) throw badQuery(name, `${name} must be an integer in decimal digits (got "${raw}")`);
  return Number(raw);
}
