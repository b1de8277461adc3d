import {
  getOperationAST,
  GraphQLError,
  OperationTypeNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { isAsyncIterable } from 'graphql-yoga';
import type { SubscribePayload } from 'graphql-ws';
import type { Principal } from '../../auth/principal.ts';
import { ErrorCode } from '../../errors.ts';
import type { GraphQLContext } from '../../schema/index.ts';
import type { TributaryYoga } from '../yoga.ts';

/** What running one `subscribe` message produced. */
export type OperationOutcome =
  /** Refused before execution (syntax, validation, limits): sent as an `error` message. */
  | { readonly kind: 'rejected'; readonly errors: readonly GraphQLError[] }
  /** A query or mutation: one `next`, then `complete`. */
  | { readonly kind: 'single'; readonly result: ExecutionResult }
  /** A subscription: `next` per result until it ends or the client completes it. */
  | { readonly kind: 'stream'; readonly results: AsyncIterableIterator<ExecutionResult> };

export type OperationExecutor = (principal: Principal, payload: SubscribePayload) => Promise<OperationOutcome>;

/**
 * Runs graphql-ws operations through yoga's envelope: the same parser limits, validation rules,
 * context and error masking as HTTP.
 */
export function createOperationExecutor(yoga: TributaryYoga): OperationExecutor {
  return async (principal, payload) => {
    const { parse, validate, contextFactory, execute, subscribe, schema } = yoga.getEnveloped({ principal }) as Enveloped;

    let document: DocumentNode;
    try {
      document = parse(payload.query);
    } catch (error) {
      return { kind: 'rejected', errors: [asGraphQLError(error)] };
    }
    const errors = validate(schema, document);
    if (errors.length > 0) return { kind: 'rejected', errors };

    const operation = getOperationAST(document, payload.operationName ?? undefined);
    if (!operation) {
      return {
        kind: 'rejected',
        errors: [new GraphQLError('Could not determine which operation to run', { extensions: { code: ErrorCode.BAD_USER_INPUT } })],
      };
    }

    const args = {
      schema,
      document,
      operationName: payload.operationName ?? undefined,
      variableValues: payload.variables ?? undefined,
      contextValue: await contextFactory(),
    };
    const result = await (operation.operation === OperationTypeNode.SUBSCRIPTION ? subscribe(args) : execute(args));
    return isAsyncIterable(result) ? { kind: 'stream', results: result } : { kind: 'single', result };
  };
}

/** The typed face of what `getEnveloped` returns (envelop types it loosely). */
interface Enveloped {
  readonly schema: GraphQLSchema;
  readonly parse: (source: string) => DocumentNode;
  readonly validate: (schema: GraphQLSchema, document: DocumentNode) => readonly GraphQLError[];
  readonly contextFactory: () => GraphQLContext | Promise<GraphQLContext>;
  readonly execute: (args: ExecutionArgs) => ExecutionResult | Promise<ExecutionResult>;
  readonly subscribe: (
    args: ExecutionArgs,
  ) => ExecutionResult | AsyncIterableIterator<ExecutionResult> | Promise<ExecutionResult | AsyncIterableIterator<ExecutionResult>>;
}

function asGraphQLError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) return error;
  return new GraphQLError(error instanceof Error ? error.message : 'Invalid operation', {
    extensions: { code: ErrorCode.BAD_USER_INPUT },
  });
}
