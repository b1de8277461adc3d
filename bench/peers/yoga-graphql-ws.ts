/**
 * The reference stack: graphql-yoga + graphql-ws wired exactly as yoga's "Subscriptions with
 * graphql-ws" recipe documents it — `useServer` from `graphql-ws/use/ws` on a `ws`
 * WebSocketServer sharing yoga's HTTP server, and an `onSubscribe` that runs every operation
 * through `yoga.getEnveloped(ctx)` (parse, validate, contextFactory, execute/subscribe).
 * The envelop's `execute`/`subscribe` travel in `rootValue`, as the recipe does, because the
 * plugins may wrap them per operation. Subscriptions use yoga's own `createPubSub()`: `channel`
 * and `broadcast` as Tributary's channels, `events(topic, where)` and `publish` as its topic events
 * without the log (ids and cursors are made to Tributary's shape and size, see `event-ids.ts`;
 * `where`: the part of the filter the benchmarks send, `event-where.ts`, with yoga's `pipe` and `filter`),
 * and sync documents as an in-memory map: `createDocument`, `mergeDocument` (a shallow merge
 * that adds one to the revision and publishes the change) and `document(service, id)`, which
 * yields every change from the moment it subscribes (no snapshot first, unlike Tributary).
 * Defaults are left as yoga and graphql-ws ship them: this is the peer as users would run it.
 */
import { createServer } from 'node:http';
import { GraphQLError, type DocumentNode, type ExecutionArgs, type GraphQLSchema } from 'graphql';
import { JSONResolver } from 'graphql-scalars';
import type { OperationResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createPubSub, createSchema, createYoga, filter, pipe } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { createEventIdentities } from './event-ids.ts';
import { compileWhere, EVENT_WHERE_SDL, type EventWhere } from './event-where.ts';
import { closeListener, listenOnLoopback } from './http-listener.ts';
import type { RunningPeer } from './peer.ts';

/** The same shape and values as Tributary's development principal, so responses are byte-equal. */
const PRINCIPAL = Object.freeze({
  subject: 'development',
  app: 'default',
  env: 'default',
  tenant: 'default',
  roles: ['admin'],
  permissions: [],
  expiresAt: null,
});

interface ChannelMessage {
  readonly channel: string;
  readonly event: string;
  readonly data: unknown;
}

/** The fields of Tributary's `Event` the benchmarks select. */
interface TopicEvent {
  readonly id: string;
  readonly topic: string;
  readonly type: string;
  readonly payload: unknown;
  readonly cursor: string;
}

/** A sync document of the in-memory map. */
interface SyncDocument {
  readonly service: string;
  readonly id: string;
  readonly revision: number;
  readonly data: Record<string, unknown>;
}

/** One message of a `document` subscription (the fields of Tributary's `DocumentChange` the benchmarks select). */
interface DocumentChange {
  readonly operation: 'CREATED' | 'UPDATED';
  readonly service: string;
  readonly id: string;
  readonly revision: number;
  readonly data: Record<string, unknown>;
}

/** The part of Tributary's schema the benchmarks use (see schema.graphql). */
const typeDefs = /* GraphQL */ `
  scalar JSON
  type Viewer {
    subject: String!
    app: String!
    env: String!
    tenant: String
    roles: [String!]!
    permissions: [String!]!
    expiresAt: String
  }
  type ChannelMessage {
    channel: String!
    event: String!
    data: JSON
  }
  type Event {
    id: ID!
    topic: String!
    type: String!
    payload: JSON!
    cursor: String!
  }
  type Document {
    service: String!
    id: ID!
    revision: Int!
    data: JSON!
  }
  enum DocumentOperation {
    SNAPSHOT
    CREATED
    UPDATED
    DELETED
  }
  type DocumentChange {
    operation: DocumentOperation!
    service: String!
    id: ID!
    revision: Int!
    data: JSON
  }
  type Query {
    viewer: Viewer!
  }
  type Mutation {
    broadcast(channel: String!, event: String!, data: JSON): Boolean!
    publish(topic: String!, type: String, payload: JSON!): Event!
    createDocument(service: String!, id: ID!, data: JSON!): Document!
    mergeDocument(service: String!, id: ID!, patch: JSON!, expectedRevision: Int): Document!
  }
  type Subscription {
    channel(name: String!): ChannelMessage!
    events(topic: String!, where: EventWhere): Event!
    document(service: String!, id: ID!): DocumentChange!
  }
  ${EVENT_WHERE_SDL}
`;

/** What the recipe puts in `rootValue`: the envelop's own execute and subscribe. */
interface EnvelopedRoot {
  readonly execute: (args: ExecutionArgs) => OperationResult;
  readonly subscribe: (args: ExecutionArgs) => OperationResult;
}

/** The typed face of what `getEnveloped` returns (envelop types it loosely). */
interface Enveloped extends EnvelopedRoot {
  readonly schema: GraphQLSchema;
  readonly parse: (source: string) => DocumentNode;
  readonly validate: (schema: GraphQLSchema, document: DocumentNode) => readonly GraphQLError[];
  readonly contextFactory: () => unknown;
}

export async function startYogaGraphQLWsPeer(): Promise<RunningPeer> {
  const pubSub = createPubSub<{
    channel: [name: string, message: ChannelMessage];
    events: [topic: string, event: TopicEvent];
    document: [key: string, change: DocumentChange];
  }>();
  const identities = createEventIdentities();
  /** `service/id` → the document. */
  const documents = new Map<string, SyncDocument>();
  const write = (document: SyncDocument, operation: DocumentChange['operation']) => {
    const key = `${document.service}/${document.id}`;
    documents.set(key, document);
    pubSub.publish('document', key, { operation, ...document });
    return document;
  };
  const yoga = createYoga({
    schema: createSchema({
      typeDefs,
      resolvers: {
        JSON: JSONResolver,
        Query: { viewer: () => PRINCIPAL },
        Mutation: {
          broadcast: (_root: unknown, args: { channel: string; event: string; data?: unknown }) => {
            pubSub.publish('channel', args.channel, { channel: args.channel, event: args.event, data: args.data ?? null });
            return true;
          },
          publish: (_root: unknown, args: { topic: string; type?: string | null; payload: unknown }) => {
            const event: TopicEvent = { ...identities.next(), topic: args.topic, type: args.type ?? 'message', payload: args.payload };
            pubSub.publish('events', args.topic, event);
            return event;
          },
          createDocument: (_root: unknown, args: { service: string; id: string; data: unknown }) => {
            if (documents.has(`${args.service}/${args.id}`)) throw new GraphQLError('A document with this id already exists', { extensions: { code: 'CONFLICT' } });
            return write({ service: args.service, id: args.id, revision: 1, data: jsonObject('data', args.data) }, 'CREATED');
          },
          mergeDocument: (_root: unknown, args: { service: string; id: string; patch: unknown; expectedRevision?: number | null }) => {
            const current = documents.get(`${args.service}/${args.id}`);
            if (!current) throw new GraphQLError(`No document "${args.id}" in service "${args.service}"`, { extensions: { code: 'NOT_FOUND' } });
            if (args.expectedRevision != null && args.expectedRevision !== current.revision) {
              throw new GraphQLError('The document is at another revision', { extensions: { code: 'CONFLICT', currentRevision: current.revision } });
            }
            const data = { ...current.data, ...jsonObject('patch', args.patch) };
            return write({ ...current, revision: current.revision + 1, data }, 'UPDATED');
          },
        },
        Subscription: {
          channel: {
            subscribe: (_root: unknown, args: { name: string }) => pubSub.subscribe('channel', args.name),
            resolve: (message: ChannelMessage) => message,
          },
          events: {
            // A `where` filters each subscriber's events as yoga's docs show it: pipe + filter.
            subscribe: (_root: unknown, args: { topic: string; where?: EventWhere | null }) => {
              const matches = compileWhere(args.where);
              const events = pubSub.subscribe('events', args.topic);
              return matches ? pipe(events, filter((event: TopicEvent) => matches(event as unknown as Record<string, unknown>))) : events;
            },
            resolve: (event: TopicEvent) => event,
          },
          document: {
            subscribe: (_root: unknown, args: { service: string; id: string }) => pubSub.subscribe('document', `${args.service}/${args.id}`),
            resolve: (change: DocumentChange) => change,
          },
        },
      },
    }),
  });

  // The recipe's `createServer(yoga)`; yoga answers its own errors, so the promise is not ours to handle.
  const server = createServer((request, response) => void yoga.requestListener(request, response));
  const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const graphqlWs = useServer(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
        }) as Enveloped;
        const args: ExecutionArgs = {
          schema,
          operationName: params.operationName,
          document: parse(params.query),
          variableValues: params.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe } satisfies EnvelopedRoot,
        };
        const errors = validate(args.schema, args.document);
        if (errors.length > 0) return errors;
        return args;
      },
    },
    wsServer,
  );

  const port = await listenOnLoopback(server);

  let disposed: Promise<void> | undefined;
  return {
    port,
    path: yoga.graphqlEndpoint,
    dispose: () =>
      (disposed ??= (async () => {
        // graphql-ws closes its sockets (1001) and the WebSocketServer; then the HTTP listener.
        await graphqlWs.dispose();
        await closeListener(server);
      })()),
  };
}

function jsonObject(field: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GraphQLError(`${field} must be a JSON object`, { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return value as Record<string, unknown>;
}
