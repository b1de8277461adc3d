import type { ExecutionResult, GraphQLError, GraphQLFormattedError } from 'graphql';

/**
 * Errors as the socket sends them: their JSON form without `extensions.http`, which only means
 * something to the HTTP transport (yoga strips it there; the socket must too).
 */
export function formatError(error: GraphQLError): GraphQLFormattedError {
  const formatted = error.toJSON();
  if (formatted.extensions?.['http'] === undefined) return formatted;
  const { http: _http, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}

/** A result as the socket sends it; results without errors pass through untouched. */
export function formatResult(result: ExecutionResult): ExecutionResult | (Omit<ExecutionResult, 'errors'> & { errors: GraphQLFormattedError[] }) {
  if (!result.errors || result.errors.length === 0) return result;
  return { ...result, errors: result.errors.map(formatError) };
}
