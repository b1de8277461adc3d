/**
 * What a response says when some of its root fields were refused and others answered.
 *
 * Mutation root fields are nullable (builder.ts): one refused is null with its error in `errors`
 * (at its path), and the fields that ran keep their answers. Such a request was executed: over
 * HTTP it is answered 200 (GraphQL over HTTP, "application/graphql-response+json": a response
 * with data is 2xx), not with the status of a code (401, 403, 429, 503) — a client that retries
 * a 429 or 503 would run again the fields that did answer (publish an event twice). A request
 * with no answer at all — every root field refused, or refused before execution — keeps its
 * code's status, and a mutation whose every field was refused answers `data: null`, as it did
 * when its fields were non-null.
 */
import { getOperationAST, GraphQLError, OperationTypeNode, type DocumentNode, type ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { GraphQLContext } from '../schema/index.ts';

/**
 * Whether a root field of the result answered: one not null, or null with no error at it (a
 * field whose value is null). A root field is refused when it is null and an error names it
 * first in its path — raised there or below it and carried up to it (its type non-null).
 */
export function answersSomeRootField(result: ExecutionResult): boolean {
  const { data, errors } = result;
  if (data === null || data === undefined) return false;
  const refused = new Set(errors?.map((error) => error.path?.[0]));
  return Object.entries(data).some(([key, value]) => value !== null || !refused.has(key));
}

/**
 * The result as it is answered over HTTP: with an answer for some root field, its errors carry
 * no HTTP status (nor the headers that go with it: `Retry-After` asks to send the whole request
 * again), so the response is 200; otherwise as it is.
 */
export function withStatusOfAnswers<T extends ExecutionResult>(result: T): T {
  if (!result.errors?.some((error) => error.extensions['http'] !== undefined) || !answersSomeRootField(result)) return result;
  return { ...result, errors: result.errors.map(withoutHttp) };
}

function withoutHttp(error: GraphQLError): GraphQLError {
  if (error.extensions['http'] === undefined) return error;
  const { http: _http, ...extensions } = error.extensions;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions,
  });
}

/**
 * A mutation whose every root field was refused answers `data: null` (every transport: it runs
 * in the envelope's `execute`), and HTTP responses take their status from `withStatusOfAnswers`
 * (yoga's; the plain-POST path calls it itself). The statuses are set by the error masker,
 * which runs after every `onExecuteDone`, so they are judged where the result is processed.
 */
export function useRootFieldAnswers(): Plugin<GraphQLContext> {
  return {
    onExecute({ args }) {
      const { document, operationName } = args as { document: DocumentNode; operationName?: string | null };
      if (getOperationAST(document, operationName)?.operation !== OperationTypeNode.MUTATION) return;
      return {
        onExecuteDone({ result, setResult }) {
          if (isAsyncIterable(result) || result.data === null || result.data === undefined || !result.errors?.length) return;
          if (!answersSomeRootField(result)) setResult({ ...result, data: null });
        },
      };
    },
    onResultProcess(processed) {
      const { result } = processed;
      if (Array.isArray(result)) processed.setResult(result.map(withStatusOfAnswers));
      else if (!isAsyncIterable(result)) processed.setResult(withStatusOfAnswers(result));
    },
  };
}
