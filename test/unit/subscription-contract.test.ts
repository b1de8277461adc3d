import { execute, GraphQLObjectType, GraphQLSchema, GraphQLString, parse, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { InternalError } from '../../src/errors.ts';
import { cohortRenderer, dispatchTicket, isDispatchTicket } from '../../src/pipeline/dispatch/subscription-contract.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { streamOf } from '../../src/pipeline/stream.ts';

const EVENT: RealtimeEvent = {
  id: 'evt_1',
  topic: 'orders',
  source: 'socket',
  type: 'message',
  payload: { n: 1 },
  metadata: { timestamp: 0, scope: { app: 'shop', env: 'prod', tenant: undefined } },
  cursor: 'c',
};

/** A schema with one field per way of resolving: from the event, from the context, asynchronously. */
const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: {
      fromEvent: { type: GraphQLString, resolve: (event: RealtimeEvent) => event.id },
      fromContext: { type: GraphQLString, resolve: (_event, _args, context: { principal: { subject: string } }) => context.principal.subject },
      later: { type: GraphQLString, resolve: (event: RealtimeEvent) => Promise.resolve(event.id) },
    },
  }),
});

function renderOf(query: string) {
  const document = parse(query);
  return cohortRenderer(
    (event, contextValue) => execute({ schema, document, rootValue: event, contextValue }),
    (result: ExecutionResult) => JSON.stringify(result),
  );
}

describe('subscription contract', () => {
  it('renders fields that depend on the event only', () => {
    expect(renderOf('{ fromEvent }')(EVENT)).toBe('{"data":{"fromEvent":"evt_1"}}');
  });

  it('refuses a render that reads the context: one subscriber’s view is never sent to a cohort', () => {
    expect(() => renderOf('{ fromEvent fromContext }')(EVENT)).toThrow(InternalError);
    expect(() => renderOf('{ fromContext }')(EVENT)).toThrow(/read the context \(read principal\)/);
    // The check belongs to each render: a refused one leaves nothing behind for the next.
    expect(renderOf('{ fromEvent }')(EVENT)).toBe('{"data":{"fromEvent":"evt_1"}}');
  });

  it('refuses a render that resolves asynchronously', () => {
    expect(() => renderOf('{ later }')(EVENT)).toThrow(/resolved asynchronously/);
  });

  it('recognises a ticket by its brand, not by being iterable', () => {
    const ticket = dispatchTicket({ stream: streamOf({ app: 'shop', env: 'prod', tenant: undefined }, 'orders'), filter: undefined, after: undefined, denied: false, readableBy: () => true });
    expect(isDispatchTicket(ticket)).toBe(true);
    expect(isDispatchTicket({ ...ticket })).toBe(true);
    expect(isDispatchTicket({ stream: ticket.stream, [Symbol.asyncIterator]: ticket[Symbol.asyncIterator] })).toBe(false);
    expect(isDispatchTicket(null)).toBe(false);
    // graphql-js only checks that a subscription source is async-iterable; iterating a ticket is a fault.
    expect(() => ticket[Symbol.asyncIterator]()).toThrow(InternalError);
    expect(Object.isFrozen(ticket)).toBe(true);
  });
});
