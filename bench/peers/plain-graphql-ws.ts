/**
 * The lighter Node GraphQL stack: graphql-ws's own recipe — `useServer({ schema }, wsServer)` from
 * `graphql-ws/use/ws` on a `ws` WebSocketServer, a graphql-js schema, and graphql-subscriptions'
 * in-memory `PubSub` (with `withFilter` for a `where`) — with no yoga, no envelop and no plugins
 * in the path. It serves what the fan-out workload asks of every GraphQL peer: `events(topic,
 * where)` (ids and cursors of Tributary's shape and size, `event-ids.ts`; `where` as
 * `event-where.ts`) and `publish(topic, type, payload)` over HTTP POST at the same path,
 * executed by graphql-js's `graphql()`; plus `viewer`, the same principal as the other peers.
 * Defaults are left as the libraries ship them.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  graphql,
  GraphQLID,
  GraphQLInputObjectType,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
  type GraphQLFieldConfig,
  type GraphQLNullableType,
} from 'graphql';
import { JSONResolver } from 'graphql-scalars';
import { PubSub, withFilter } from 'graphql-subscriptions';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { createEventIdentities } from './event-ids.ts';
import { compileWhere, type EventWhere } from './event-where.ts';
import { closeListener, listenOnLoopback } from './http-listener.ts';
import type { RunningPeer } from './peer.ts';

const PATH = '/graphql';
/** Larger request bodies are refused (413). */
const MAX_BODY_BYTES = 1024 * 1024;

/** The same values as Tributary's development principal (and the yoga peer's). */
const PRINCIPAL = Object.freeze({ subject: 'development', app: 'default', env: 'default', tenant: 'default', roles: ['admin'], permissions: [], expiresAt: null });

interface TopicEvent {
  readonly id: string;
  readonly topic: string;
  readonly type: string;
  readonly payload: unknown;
  readonly cursor: string;
}

interface EventsArgs {
  readonly topic: string;
  readonly where?: EventWhere | null;
}

const nonNull = <T extends GraphQLNullableType>(type: T) => new GraphQLNonNull(type);
const stringList = nonNull(new GraphQLList(nonNull(GraphQLString)));

const Viewer = new GraphQLObjectType({
  name: 'Viewer',
  fields: {
    subject: { type: nonNull(GraphQLString) },
    app: { type: nonNull(GraphQLString) },
    env: { type: nonNull(GraphQLString) },
    tenant: { type: GraphQLString },
    roles: { type: stringList },
    permissions: { type: stringList },
    expiresAt: { type: GraphQLString },
  },
});

const Event = new GraphQLObjectType({
  name: 'Event',
  fields: {
    id: { type: nonNull(GraphQLID) },
    topic: { type: nonNull(GraphQLString) },
    type: { type: nonNull(GraphQLString) },
    payload: { type: nonNull(JSONResolver) },
    cursor: { type: nonNull(GraphQLString) },
  },
});

const EventWhereInput = new GraphQLInputObjectType({
  name: 'EventWhere',
  fields: { field: { type: GraphQLString }, eq: { type: JSONResolver }, ne: { type: JSONResolver }, gt: { type: JSONResolver }, gte: { type: JSONResolver }, lt: { type: JSONResolver }, lte: { type: JSONResolver } },
});

function createSchema(pubSub: PubSub, identities: ReturnType<typeof createEventIdentities>): GraphQLSchema {
  const events: GraphQLFieldConfig<unknown, unknown, EventsArgs> = {
    type: nonNull(Event),
    args: { topic: { type: nonNull(GraphQLString) }, where: { type: EventWhereInput } },
    subscribe: (root, args, context, info) => {
      const source = () => pubSub.asyncIterableIterator<TopicEvent>(`events:${args.topic}`);
      const matches = compileWhere(args.where);
      // graphql-subscriptions' filter recipe: every event tested once per subscriber.
      return matches
        ? withFilter(source, (event: unknown) => typeof event === 'object' && event !== null && matches(event as Record<string, unknown>))(root, args, context, info)
        : source();
    },
    resolve: (event: unknown) => event,
  };
  return new GraphQLSchema({
    query: new GraphQLObjectType({ name: 'Query', fields: { viewer: { type: nonNull(Viewer), resolve: () => PRINCIPAL } } }),
    mutation: new GraphQLObjectType({
      name: 'Mutation',
      fields: {
        publish: {
          type: nonNull(Event),
          args: { topic: { type: nonNull(GraphQLString) }, type: { type: GraphQLString }, payload: { type: nonNull(JSONResolver) } },
          resolve: async (_root: unknown, args: { topic: string; type?: string | null; payload: unknown }) => {
            const event: TopicEvent = { ...identities.next(), topic: args.topic, type: args.type ?? 'message', payload: args.payload };
            await pubSub.publish(`events:${args.topic}`, event);
            return event;
          },
        },
      },
    }),
    subscription: new GraphQLObjectType({ name: 'Subscription', fields: { events } }),
  });
}

export async function startPlainGraphQLWsPeer(): Promise<RunningPeer> {
  const schema = createSchema(new PubSub(), createEventIdentities());
  const server = createServer((request, response) => handleHttp(schema, request, response));
  const wsServer = new WebSocketServer({ server, path: PATH });
  const graphqlWs = useServer({ schema }, wsServer);
  const port = await listenOnLoopback(server);

  let disposed: Promise<void> | undefined;
  return {
    port,
    path: PATH,
    dispose: () =>
      (disposed ??= (async () => {
        await graphqlWs.dispose();
        await closeListener(server);
      })()),
  };
}

/** A GraphQL request over HTTP POST (`{ query, variables, operationName }`), executed by graphql-js. */
function handleHttp(schema: GraphQLSchema, request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'POST') {
    response.writeHead(405).end();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  request.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  request.on('end', () => {
    if (size > MAX_BODY_BYTES) {
      response.writeHead(413).end();
      return;
    }
    let body: { query?: unknown; variables?: unknown; operationName?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
    } catch {
      response.writeHead(400).end();
      return;
    }
    if (typeof body.query !== 'string') {
      response.writeHead(400).end();
      return;
    }
    void graphql({
      schema,
      source: body.query,
      variableValues: typeof body.variables === 'object' && body.variables !== null ? (body.variables as Record<string, unknown>) : undefined,
      operationName: typeof body.operationName === 'string' ? body.operationName : undefined,
    }).then((result) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result)));
  });
}
