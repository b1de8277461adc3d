/**
 * The common GraphQL request served without yoga's Fetch-API layer: a JSON POST of a query or
 * mutation (`{query, variables?, operationName?}`), from a client that is not a browser page
 * (no `Origin`). It runs through the same envelope as any yoga request — parser limits and
 * cache, validation rules, context, error masking — and is answered by yoga's own result
 * processor, with the media type yoga would pick.
 *
 * Only a request that is going to execute, or whose token is refused, is taken: anything else —
 * another shape or media type, persisted-query extensions, a syntax or validation error, a
 * subscription — is left to yoga, which answers it as it always did. The Fetch-API layer costs
 * more than the rest of a small mutation together (a request object, a body stream, an abort
 * controller per request, and the garbage they leave), which is what a `publish` at a thousand
 * a second cannot afford. A refused token is answered here, as yoga would answer it: handed on,
 * it would be verified a second time, for nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, OperationTypeNode, type DocumentNode } from 'graphql';
import { processRegularResult } from 'graphql-yoga';
import type { TokenVerifier } from '../auth/token-verifier.ts';
import type { Metrics } from '../metrics.ts';
import type { Principal } from '../auth/principal.ts';
import { toGraphQLError } from '../schema/errors.ts';
import { withStatusOfAnswers } from './root-field-answers.ts';
import { envelopedFor, isClientMistake, type TributaryYoga } from './yoga.ts';

/** Serves the request and resolves true, or resolves false having done nothing (yoga serves it). */
export type GraphQLPostHandler = (request: IncomingMessage, response: ServerResponse, body: Buffer) => Promise<boolean>;

interface Params {
  readonly query: string;
  readonly variables: Record<string, unknown> | undefined;
  readonly operationName: string | undefined;
}

export function createGraphQLPostHandler(yoga: TributaryYoga, verifier: TokenVerifier, metrics: Pick<Metrics, 'graphqlDirectPosts'>): GraphQLPostHandler {
  return async (request, response, body) => {
    const { headers } = request;
    if (headers.origin !== undefined || !isJson(headers['content-type'])) return false;
    const mediaType = regularMediaType(headers.accept);
    const params = mediaType && paramsOf(body);
    if (!mediaType || !params) return false;

    let principal: Principal;
    try {
      principal = await verifier.verify(headers.authorization);
    } catch (error) {
      // Anything but the client's own mistake (a 503 while the key set cannot be fetched, a
      // fault) is yoga's to answer and log.
      if (!isClientMistake(error)) return false;
      await answer(response, processRegularResult({ errors: [toGraphQLError(error)] }, yoga.fetchAPI, mediaType));
      return true;
    }
    const { parse, validate, contextFactory, execute, schema } = envelopedFor(yoga, { principal, transport: 'http' });
    let document: DocumentNode;
    try {
      document = parse(params.query);
    } catch {
      return false;
    }
    if (validate(schema, document).length > 0) return false;
    const operation = getOperationAST(document, params.operationName);
    if (!operation || operation.operation === OperationTypeNode.SUBSCRIPTION) return false;

    const result = await execute({
      schema,
      document,
      operationName: params.operationName,
      variableValues: params.variables,
      contextValue: await contextFactory(),
    });
    // Yoga's `onResultProcess` hooks do not run here: the status of a partial answer is set as theirs does.
    await answer(response, processRegularResult(withStatusOfAnswers(result), yoga.fetchAPI, mediaType));
    metrics.graphqlDirectPosts.inc();
    return true;
  };
}

async function answer(response: ServerResponse, processed: Response): Promise<void> {
  const text = await processed.text();
  if (response.destroyed) return;
  response.writeHead(processed.status, { ...Object.fromEntries(processed.headers), 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/** `application/json`, with no charset but utf-8 (what yoga's JSON parser reads). */
function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const [type, ...parameters] = contentType.toLowerCase().replace(/\s/g, '').split(';');
  return type === 'application/json' && parameters.every((parameter) => parameter === 'charset=utf-8');
}

const REGULAR_MEDIA_TYPES = ['application/graphql-response+json', 'application/json'] as const;
type RegularMediaType = (typeof REGULAR_MEDIA_TYPES)[number];

/**
 * The media type yoga answers a single result with for this `Accept` (its result processors
 * pick the last match over the accepted types in reverse order and theirs in order — the first
 * listed, in effect; `*\/*` or none gives `application/json`); undefined when its JSON
 * processor would not answer at all.
 */
function regularMediaType(accept: string | undefined): RegularMediaType | undefined {
  const asked = (accept ?? '*/*')
    .replace(/\s/g, '')
    .toLowerCase()
    .split(',')
    .filter((entry) => {
      const charset = entry.split(';').slice(1).find((parameter) => parameter.includes('charset='));
      return charset === undefined || charset === 'charset=utf-8';
    })
    .map((entry) => entry.split(';')[0] ?? '')
    .reverse();
  let chosen: RegularMediaType | undefined;
  for (const type of asked) {
    for (const offered of REGULAR_MEDIA_TYPES) if (matches(type, offered)) chosen = offered;
  }
  return chosen;
}

function matches(asked: string, offered: string): boolean {
  const [askedType, askedSubtype] = asked.split('/');
  const [type, subtype] = offered.split('/');
  return (askedType === '*' || askedType === type) && (askedSubtype === '*' || askedSubtype === subtype);
}

/** The body as a plain request, or undefined for anything yoga should look at (it explains what is wrong). */
function paramsOf(body: Buffer): Params | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const { query, variables, operationName, ...others } = parsed as Record<string, unknown>;
  if (Object.keys(others).length > 0 || typeof query !== 'string' || query === '') return undefined;
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return undefined;
  if (operationName != null && typeof operationName !== 'string') return undefined;
  return {
    query,
    variables: (variables ?? undefined) as Record<string, unknown> | undefined,
    operationName: operationName ?? undefined,
  };
}
