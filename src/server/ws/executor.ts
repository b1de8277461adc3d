import {
  createSourceEventStream,
  execute as executeSync,
  getOperationAST,
  GraphQLError,
  Kind,
  OperationTypeNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type OperationDefinitionNode,
} from 'graphql';
import type { SubscribePayload } from 'graphql-ws';
import { isAsyncIterable } from 'graphql-yoga';
import type { Principal } from '../../auth/principal.ts';
import { ErrorCode, InternalError } from '../../errors.ts';
import {
  cohortRenderer,
  isDispatchTicket,
  type CohortRender,
  type CohortSpec,
  type DispatchTicket,
} from '../../pipeline/dispatch/subscription-contract.ts';
import { readableByOf } from '../../pipeline/dispatch/guarded-stream.ts';
import { variablesTooDeep } from '../operation-limits.ts';
import { envelopedFor, type TributaryYoga } from '../yoga.ts';
import type { PersistedQueries } from '../persisted-queries.ts';
import type { FilterAdmission } from './filter-budget.ts';
import { filterBytesOf, rootFieldOf } from './filter-bytes.ts';
import { formatResult } from './format.ts';

/** What running one `subscribe` message produced. */
export type OperationOutcome =
  /** Refused before execution (syntax, validation, limits): an `error` message. */
  | { readonly kind: 'rejected'; readonly errors: readonly GraphQLError[] }
  /** A query or mutation: one `next`, then `complete`. */
  | { readonly kind: 'single'; readonly result: ExecutionResult }
  /**
   * A subscription served per subscriber: `next` per result until it ends or is completed.
   * `readableBy` is its source's check of a refreshed principal (`guardedStream`).
   */
  | {
      readonly kind: 'stream';
      readonly field: string;
      readonly results: AsyncIterableIterator<ExecutionResult>;
      readonly readableBy: (principal: Principal) => boolean;
    }
  /** A subscription served by the dispatcher, in a cohort with every identical one. */
  | { readonly kind: 'dispatch'; readonly field: string; readonly ticket: DispatchTicket; readonly cohort: Omit<CohortSpec, 'filter'> };

/**
 * Runs one `subscribe` message for the principal of connection `connectionId`. A subscription
 * with a filter is first admitted with the filter's bytes (`admitFilter`, the principal's
 * `WS_MAX_FILTER_BYTES_PER_SUBJECT`): refused, it is `rejected` with that error, its resolver not run.
 */
export type OperationExecutor = (principal: Principal, payload: SubscribePayload, connectionId: string, admitFilter?: FilterAdmission) => Promise<OperationOutcome>;

export interface OperationExecutorOptions {
  /** Turns errors thrown while setting up a subscription into client-facing ones (yoga's masker). */
  readonly maskError: (error: unknown, message: string) => Error;
  /** Automatic persisted queries (`query: ""` with `extensions.persistedQuery`). @default none */
  readonly persistedQueries?: PersistedQueries;
}

/**
 * Runs graphql-ws operations through yoga's envelope: the same parser limits, validation rules,
 * context and error masking as HTTP. Subscriptions whose field hands back a `DispatchTicket` go
 * to the dispatcher with a render executed once per cohort per event, under the subscription
 * contract (`pipeline/dispatch/subscription-contract.ts`).
 */
export function createOperationExecutor(yoga: TributaryYoga, options: OperationExecutorOptions): OperationExecutor {
  // Each event's result is masked like any other: a field's internal error never reaches clients raw.
  // Made once for every operation: a cohort keeps its render (and what that holds) for its life.
  const mask = (error: GraphQLError) => asGraphQLError(options.maskError(error, 'Unexpected error.'));
  const masked = (result: ExecutionResult): ExecutionResult => (result.errors ? { ...result, errors: result.errors.map(mask) } : result);
  const serialize = (result: ExecutionResult) => JSON.stringify(formatResult(masked(result)));
  return async (principal, received, connectionId, admitFilter) => {
    const { parse, validate, contextFactory, execute, schema } = envelopedFor(yoga, { principal, connectionId });

    let payload: SubscribePayload;
    let document: DocumentNode;
    try {
      payload = { ...received, query: options.persistedQueries?.resolve(received.query, received.extensions) ?? received.query };
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

    const args: ExecutionArgs = {
      schema,
      document,
      operationName: payload.operationName ?? undefined,
      variableValues: payload.variables ?? undefined,
      contextValue: await contextFactory(),
    };
    if (operation.operation !== OperationTypeNode.SUBSCRIPTION) return { kind: 'single', result: await execute(args) };
    // The envelope's `execute` checks the variables' nesting (operation limits); a subscription
    // skips it, its source being made here: answered like any refused variable, `next` then `complete`.
    const tooDeep = variablesTooDeep(args.variableValues);
    if (tooDeep) return { kind: 'single', result: { errors: [tooDeep] } };

    const root = rootFieldOf(operation, document);
    const filterBytes = admitFilter ? filterBytesOf(schema, operation, root, args.variableValues) : 0;
    // Before the resolver runs: a refused subscription costs no stream, no snapshot, no lookup.
    const refused = filterBytes > 0 ? admitFilter?.(filterBytes) : undefined;
    if (refused) return { kind: 'rejected', errors: [refused] };
    const source = await createSourceEventStream(args);
    const field = root?.name.value ?? 'unknown';
    if (isDispatchTicket(source)) {
      return { kind: 'dispatch', field, ticket: source, cohort: { key: cohortKey(source, operation, payload), render: renderer(args, serialize) } };
    }
    if (!isAsyncIterable(source)) {
      // The subscribe resolver refused (bad arguments…): like graphql-ws's reference server, a
      // `next` carrying the errors, then `complete`.
      return { kind: 'single', result: { errors: (source.errors ?? []).map(mask) } };
    }
    const readableBy = readableByOf(source);
    if (!readableBy) {
      await (source as AsyncIterableIterator<unknown>).return?.();
      throw new InternalError('UNGUARDED_SUBSCRIPTION', `Subscription field ${field} returned a source without readableBy (guardedStream)`);
    }
    // Each source event is executed like graphql-js's own subscribe does; yoga's `execute` would
    // start a new subscription for a subscription document, so the plain one runs here, masked.
    return {
      kind: 'stream',
      field,
      readableBy,
      results: mapSource(source, async (event) => masked(await executeSync({ ...args, rootValue: event }))),
    };
  };
}

/**
 * Subscribers share a cohort when rendering an event gives them the same bytes: same stream,
 * operation text and variables — except the variables that only feed `after`, which decides
 * where a subscriber starts, not what it receives.
 */
function cohortKey(ticket: DispatchTicket, operation: OperationDefinitionNode, payload: SubscribePayload): string {
  const resumeVariables = new Set<string>();
  for (const selection of operation.selectionSet.selections) {
    if (selection.kind !== Kind.FIELD) continue;
    for (const argument of selection.arguments ?? []) {
      if (argument.name.value === 'after' && argument.value.kind === Kind.VARIABLE) resumeVariables.add(argument.value.name.value);
    }
  }
  const variables = payload.variables
    ? Object.entries(payload.variables).filter(([name]) => !resumeVariables.has(name))
    : [];
  return `${ticket.stream.key}\u0000${payload.operationName ?? ''}\u0000${payload.query}\u0000${JSON.stringify(variables)}`;
}

/**
 * Executes the subscription's selection for one event to the `next` payload JSON (`serialize`
 * masks its errors). The cohort's members share it, so it runs with the contract's guarded
 * context, not this subscriber's: the subscriber's is not kept either (the cohort may outlive it).
 */
function renderer(args: ExecutionArgs, serialize: (result: ExecutionResult) => string): CohortRender {
  const { schema, document, operationName, variableValues } = args;
  return cohortRenderer(
    (event, contextValue) => executeSync({ schema, document, operationName, variableValues, contextValue, rootValue: event }),
    serialize,
  );
}

/**
 * Maps source events to results. Not an async generator: a generator's `return()` waits for the
 * pending `next()` (i.e. the next event), so a completed subscription would hold its source
 * until something is published; here `return()` reaches the source at once.
 */
function mapSource(
  source: AsyncIterable<unknown>,
  run: (event: unknown) => Promise<ExecutionResult>,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  const done = { value: undefined, done: true } as const;
  const mapped: AsyncIterableIterator<ExecutionResult> = {
    async next() {
      const step = await iterator.next();
      return step.done ? done : { value: await run(step.value), done: false };
    },
    async return() {
      await iterator.return?.();
      return done;
    },
    [Symbol.asyncIterator]: () => mapped,
  };
  return mapped;
}

function asGraphQLError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) return error;
  return new GraphQLError(error instanceof Error ? error.message : 'Invalid operation', {
    extensions: { code: ErrorCode.BAD_USER_INPUT },
  });
}
