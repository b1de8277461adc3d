import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { createYoga, type CORSOptions, type Plugin, type YogaInitialContext, type YogaServerInstance } from 'graphql-yoga';
import type { Principal } from '../auth/principal.ts';
import type { TokenVerifier } from '../auth/token-verifier.ts';
import type { CorsConfig, Limits } from '../config.ts';
import { ErrorCode, isClientFacing, type TributaryError } from '../errors.ts';
import { componentLogger, type Logger } from '../logger.ts';
import type { Services } from '../resolvers/context.ts';
import { createErrorMasker } from '../schema/errors.ts';
import type { GraphQLContext } from '../schema/index.ts';
import { GRAPHIQL_EXAMPLE, renderTributaryGraphiQL } from './graphiql.ts';
import { useOperationLimits } from './operation-limits.ts';
import { createParseCaches } from './parse-cache.ts';
import { usePersistedQueries, type PersistedQueries } from './persisted-queries.ts';
import { createRequestAuthentication } from './request-authentication.ts';
import { useRootFieldAnswers } from './root-field-answers.ts';

export const GRAPHQL_PATH = '/graphql';

/** What the Node adapter hands yoga for an HTTP request. */
export interface HttpServerContext {
  readonly req?: IncomingMessage;
  readonly res?: ServerResponse;
  /** Set by the WebSocket executor (verified at `connection_init`) and the plain-POST path: the caller. */
  readonly principal?: Principal;
  /** Set with `principal`: the transport the operation came over. @default 'ws' */
  readonly transport?: 'http' | 'ws';
  /** Set by the WebSocket executor: the connection the operation arrived on. */
  readonly connectionId?: string;
}

export type TributaryYoga = YogaServerInstance<HttpServerContext, GraphQLContext>;

export interface YogaOptions {
  readonly schema: GraphQLSchema;
  readonly verifier: TokenVerifier;
  readonly services: Services;
  readonly limits: Limits;
  /** Origins allowed cross-origin (`CORS_ORIGINS`). */
  readonly cors: CorsConfig;
  /** Automatic persisted queries, shared with the WebSocket executor. */
  readonly persistedQueries: PersistedQueries;
  readonly logger: Logger;
}

/**
 * The GraphQL engine for both transports: HTTP requests are served by yoga itself; the WebSocket
 * server runs operations through `yoga.getEnveloped`, so every plugin (limits, error masking)
 * applies to both.
 */
export function createYogaServer(options: YogaOptions): TributaryYoga {
  const { verifier, services, logger } = options;
  const authentication = createRequestAuthentication(verifier);
  return createYoga<HttpServerContext, GraphQLContext>({
    schema: options.schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    maxRequestBodySize: options.limits.httpMaxBodyBytes,
    cors: corsPolicy(options.cors),
    graphiql: { title: 'Tributary', subscriptionsProtocol: 'WS', defaultQuery: GRAPHIQL_EXAMPLE },
    renderGraphiQL: renderTributaryGraphiQL,
    logging: yogaLogger(componentLogger(logger, 'yoga')),
    maskedErrors: { maskError: createErrorMasker(componentLogger(logger, 'graphql')) },
    parserAndValidationCache: createParseCaches(),
    context: async (initial: YogaInitialContext & HttpServerContext): Promise<GraphQLContext> => {
      if (initial.principal) return { principal: initial.principal, services, transport: initial.transport ?? 'ws', connectionId: initial.connectionId };
      const principal =
        authentication.principalOf(initial.request) ?? (await verifier.verify(initial.request.headers.get('authorization') ?? undefined));
      return { principal, services, transport: 'http', connectionId: undefined };
    },
    // Authentication first: nothing of a request refused as unauthenticated is parsed or kept.
    // Parsed documents are shared and compact (`compactDocument`, parse-cache.ts): a plugin must not
    // change one in place (its empty lists are one frozen array); graphql-js's `visit` copies.
    // A request whose root fields answered in part is HTTP 200 (root-field-answers.ts).
    plugins: [
      authentication.plugin,
      usePersistedQueries(options.persistedQueries),
      useOperationLimits(options.limits),
      useSubscriptionsOverWebSocketOnly(),
      useRootFieldAnswers(),
    ],
  });
}

/** What `yoga.getEnveloped` hands a transport that runs operations itself (envelop types it loosely). */
export interface EnvelopedOperation {
  readonly schema: GraphQLSchema;
  readonly parse: (source: string) => DocumentNode;
  readonly validate: (schema: GraphQLSchema, document: DocumentNode) => readonly GraphQLError[];
  readonly contextFactory: () => GraphQLContext | Promise<GraphQLContext>;
  readonly execute: (args: ExecutionArgs) => ExecutionResult | Promise<ExecutionResult>;
}

/** The envelope for one operation of a caller verified outside yoga's own request handling. */
export function envelopedFor(yoga: TributaryYoga, initial: Pick<HttpServerContext, 'principal' | 'transport' | 'connectionId'>): EnvelopedOperation {
  return yoga.getEnveloped(initial);
}

/**
 * CORS headers only for an allowed `Origin` (no headers at all otherwise, so the browser refuses
 * the response). Never credentialed: tokens travel in `Authorization`, not in cookies.
 */
function corsPolicy(cors: CorsConfig): (request: Request) => CORSOptions {
  const allowed = cors.origins === '*' ? undefined : new Set(cors.origins);
  return (request) => {
    const origin = request.headers.get('origin');
    if (origin === null || (allowed !== undefined && !allowed.has(origin))) return false;
    // '*' makes yoga reflect the (already checked) origin and add `Vary: Origin` for caches.
    return { origin: '*', credentials: false, methods: ['GET', 'POST'], maxAge: 600 };
  };
}

/**
 * Subscriptions are served over graphql-ws only: that is where per-connection caps, token
 * expiry and (later) resumable delivery live. Over HTTP they get a clear error instead of SSE.
 */
function useSubscriptionsOverWebSocketOnly(): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args, setResultAndStopExecution }) {
      if (args.contextValue.transport === 'ws') return;
      setResultAndStopExecution({
        errors: [
          new GraphQLError(`Subscriptions are served over WebSocket (graphql-transport-ws) at ${GRAPHQL_PATH}`, {
            extensions: { code: ErrorCode.WEBSOCKET_ONLY },
          }),
        ],
      });
    },
  };
}

/**
 * Whether an error is the caller's own mistake (a token refused, input refused): answered with
 * its code, and no sign of trouble in the server. UNAVAILABLE is client-facing but not one — a
 * key set that cannot be fetched is the operator's to see.
 */
export function isClientMistake(error: unknown): error is TributaryError {
  return isClientFacing(error) && error.code !== ErrorCode.UNAVAILABLE;
}

/**
 * yoga's log calls on pino. GraphQL errors it reports are the client's (coded) or already logged
 * with their cause by the error masker, so they go to debug. So do the client's mistakes thrown
 * before execution (a token refused in `onParams` or the context): yoga logs each at error,
 * twice, and anyone without a token could fill the log with them.
 */
function yogaLogger(logger: Logger) {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]) => {
      const [first, ...rest] = args;
      if (first instanceof GraphQLError || isClientMistake(first)) logger.debug({ err: first }, first.message);
      else if (first instanceof Error) logger[level]({ err: first }, first.message);
      else logger[level]({ details: rest.length > 0 ? rest : undefined }, String(first));
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
