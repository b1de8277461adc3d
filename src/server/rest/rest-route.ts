/** What a REST route is (`admin-api.ts` serves them), and the helpers routes share. */
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { ResolverContext } from '../../resolvers/context.ts';

/** Answers a verified caller's query with the JSON body, or throws a TributaryError. */
export type RestRoute = (context: ResolverContext, query: URLSearchParams) => Promise<unknown>;

/** A query parameter was wrong. */
export function badQuery(field: string, message: string): TributaryError {
  return new TributaryError(ErrorCode.BAD_USER_INPUT, message, { details: { field } });
}

/** A comma-separated list of allowed values, case-insensitive; undefined when absent. */
export function listParam<T extends string>(query: URLSearchParams, name: string, allowed: readonly T[]): T[] | undefined {
  const raw = query.get(name);
  if (raw === null || raw.trim() === '') return undefined;
  const values = raw.split(',').map((value) => value.trim().toLowerCase());
  const wrong = values.find((value) => !(allowed as readonly string[]).includes(value));
  if (wrong !== undefined) throw badQuery(name, `${name} must be any of ${allowed.join(', ')} (got "${wrong}")`);
  return values as T[];
}

/** An integer parameter; undefined when absent (the resolver's default applies). */
export function integerParam(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) throw badQuery(name, `${name} must be an integer`);
  return value;
}
