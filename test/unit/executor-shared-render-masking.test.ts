/**
 * A subscription served by the dispatcher renders each event once for its whole cohort. A field
 * that fails there is masked like on every other path: an internal error reaches the clients as
 * INTERNAL_SERVER_ERROR with the generic message (logged with its cause), a client-facing one
 * keeps its message and code.
 */
import { GraphQLObjectType, GraphQLSchema, GraphQLString } from 'graphql';
import { createYoga } from 'graphql-yoga';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.ts';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { dispatchTicket } from '../../src/pipeline/dispatch/subscription-contract.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { createErrorMasker } from '../../src/schema/errors.ts';
import type { GraphQLContext } from '../../src/schema/index.ts';
import { createOperationExecutor } from '../../src/server/ws/executor.ts';
import type { HttpServerContext, TributaryYoga } from '../../src/server/yoga.ts';

const PRINCIPAL: Principal = { subject: 'user-1', app: 'shop', env: 'prod', tenant: 'tenant-a', roles: [], permissions: [], expiresAt: undefined };
const SCOPE = { app: 'shop', env: 'prod', tenant: 'tenant-a' };
const EVENT: RealtimeEvent = {
  id: 'evt_1',
  topic: 'orders',
  source: 'socket',
  type: 'message',
  payload: { n: 1 },
  metadata: { timestamp: 0, scope: SCOPE },
  cursor: 'c',
};

const Event = new GraphQLObjectType({
  name: 'Event',
  fields: {
    id: { type: GraphQLString, resolve: (event: RealtimeEvent) => event.id },
    broken: {
      type: GraphQLString,
      resolve: () => {
        throw new Error('connect ECONNREFUSED 10.0.0.7:5432 (user tributary)');
      },
    },
    refused: {
      type: GraphQLString,
      resolve: () => {
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, 'payload.n is not a string');
      },
    },
  },
});

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLString } } }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      events: {
        type: Event,
        subscribe: () => dispatchTicket({ stream: streamOf(SCOPE, 'orders'), filter: undefined, after: undefined, denied: false, readableBy: () => true }),
        resolve: (event: RealtimeEvent) => event,
      },
    },
  }),
});

async function renderOnce(query: string): Promise<unknown> {
  const yoga = createYoga<HttpServerContext, GraphQLContext>({ schema, logging: false }) as unknown as TributaryYoga;
  const execute = createOperationExecutor(yoga, { maskError: createErrorMasker(createLogger({ level: 'silent' })) });
  const outcome = await execute(PRINCIPAL, { query }, 'connection-1');
  if (outcome.kind !== 'dispatch') throw new Error(`expected a dispatched subscription, got ${outcome.kind}`);
  return JSON.parse(outcome.cohort.render(EVENT));
}

describe('a shared render of a dispatched subscription', () => {
  it('masks an internal error a field throws', async () => {
    const rendered = (await renderOnce('subscription { events { id broken } }')) as { data: unknown; errors: { message: string; extensions?: Record<string, unknown> }[] };
    expect(rendered.data).toEqual({ events: { id: 'evt_1', broken: null } });
    expect(rendered.errors.map(({ message, extensions }) => ({ message, extensions }))).toEqual([
      { message: 'Unexpected error.', extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } },
    ]);
    expect(JSON.stringify(rendered)).not.toContain('ECONNREFUSED');
  });

  it('keeps a client-facing error with its message and code', async () => {
    const rendered = (await renderOnce('subscription { events { refused } }')) as { errors: { message: string; extensions?: Record<string, unknown> }[] };
    expect(rendered.errors.map(({ message, extensions }) => ({ message, code: extensions?.['code'] }))).toEqual([
      { message: 'payload.n is not a string', code: ErrorCode.BAD_USER_INPUT },
    ]);
  });
});
