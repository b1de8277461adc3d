/**
 * The straightforward CDC pipeline issue 5 measures Tributary against, each part used as its
 * documentation shows it:
 *
 *   pg-logical-replication (pgoutput) → graphql-redis-subscriptions (Redis pub/sub) →
 *   graphql-ws `useServer` on `ws`, graphql-js executing once per subscriber per change.
 *
 * The reader creates its slot and publication when missing and streams from the slot with the
 * library's defaults: it acknowledges every message as it is *received* (`acknowledge.auto`),
 * before the change is published — the early acknowledgement ARCHITECTURE §6 warns about, and
 * what a first version of such a pipeline does. Every insert, update or delete of `table` is
 * published once, as a `ModelChange` `{ operation, model, id, record }` (the row as the library
 * decodes it), on the Redis channel of the row's tenant and the model; a subscriber's
 * `changes(model:)` listens on its own tenant's channel. The tenant comes from the token sent in
 * `connection_init` (HS256, verified with jose once per socket), as on Tributary; the permission
 * `{module}.{model}.read` is checked once per subscription.
 *
 * Configured by its environment (`serve.ts`): `CDC_DATABASE_URL`, `CDC_TABLE`, `CDC_MODEL`,
 * `CDC_MODULE`, `CDC_SLOT_NAME`, `CDC_PUBLICATION_NAME`, `REDIS_URL`, `JWT_SECRET`.
 * It serves `changes` over graphql-transport-ws only (no HTTP operations).
 */
import { createServer } from 'node:http';
import {
  GraphQLBoolean,
  GraphQLEnumType,
  GraphQLError,
  GraphQLID,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
} from 'graphql';
import { RedisPubSub } from 'graphql-redis-subscriptions';
import { JSONResolver } from 'graphql-scalars';
import { useServer } from 'graphql-ws/use/ws';
import { Redis } from 'ioredis';
import { jwtVerify } from 'jose';
import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { WebSocketServer } from 'ws';
import { closeListener, listenOnLoopback } from './http-listener.ts';
import type { RunningPeer } from './peer.ts';

export interface PgRedisPeerOptions {
  /** The source database (its role may replicate). */
  readonly databaseUrl: string;
  /** The table whose changes are published (in `public`). */
  readonly table: string;
  /** The model name `changes(model:)` is asked for. */
  readonly model: string;
  /** The permission is `{module}.{model}.read`. */
  readonly module: string;
  readonly slotName: string;
  readonly publicationName: string;
  readonly redisUrl: string;
  /** HS256 secret of the subscribers' tokens. */
  readonly jwtSecret: string;
}

/** What one change carries through Redis to every subscriber of its channel. */
interface ModelChange {
  readonly operation: 'CREATED' | 'UPDATED' | 'DELETED';
  readonly model: string;
  readonly id: string;
  readonly record: Readonly<Record<string, unknown>> | null;
}

/** The part of a verified token this peer uses. */
interface Caller {
  readonly tenant: string;
  readonly permissions: readonly string[];
}

interface Context {
  readonly caller: Caller | undefined;
}

const OPERATIONS = { insert: 'CREATED', update: 'UPDATED', delete: 'DELETED' } as const;

/** The channel of one tenant's changes of one model. */
function channelOf(tenant: string, model: string): string {
  return `changes:${tenant}:${model}`;
}

function buildSchema(pubSub: RedisPubSub, module: string): GraphQLSchema {
  const ModelChangeType = new GraphQLObjectType<ModelChange>({
    name: 'ModelChange',
    fields: {
      operation: {
        type: new GraphQLNonNull(
          new GraphQLEnumType({ name: 'ChangeOperation', values: { CREATED: { value: 'CREATED' }, UPDATED: { value: 'UPDATED' }, DELETED: { value: 'DELETED' } } }),
        ),
      },
      model: { type: new GraphQLNonNull(GraphQLString) },
      id: { type: new GraphQLNonNull(GraphQLID) },
      record: { type: JSONResolver },
    },
  });
  return new GraphQLSchema({
    query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLBoolean, resolve: () => true } } }),
    subscription: new GraphQLObjectType<unknown, Context>({
      name: 'Subscription',
      fields: {
        changes: {
          type: new GraphQLNonNull(ModelChangeType),
          args: { model: { type: new GraphQLNonNull(GraphQLString) } },
          subscribe: (_root, args: { model: string }, context) => {
            const caller = context.caller;
            if (!caller) throw new GraphQLError('Unauthenticated', { extensions: { code: 'UNAUTHENTICATED' } });
            if (!caller.permissions.includes(`${module}.${args.model}.read`)) {
              throw new GraphQLError('Forbidden', { extensions: { code: 'FORBIDDEN' } });
            }
            return pubSub.asyncIterableIterator(channelOf(caller.tenant, args.model)) as AsyncIterable<ModelChange>;
          },
          // The change as published is the result: no per-field work beyond graphql-js' own.
          resolve: (change: unknown) => change,
        },
      },
    }),
  });
}

export async function startPgRedisGraphQLWsPeer(options: PgRedisPeerOptions): Promise<RunningPeer> {
  const secret = new TextEncoder().encode(options.jwtSecret);
  // graphql-redis-subscriptions' documented setup: one client to publish, one to subscribe.
  const publisher = new Redis(options.redisUrl);
  const subscriber = new Redis(options.redisUrl);
  const report = (what: string) => (error: unknown) => process.stderr.write(`[pg-redis-graphql-ws] ${what}: ${String(error)}\n`);
  publisher.on('error', report('redis'));
  subscriber.on('error', report('redis'));
  const pubSub = new RedisPubSub({ publisher, subscriber });
  const schema = buildSchema(pubSub, options.module);

  const server = createServer((_request, response) => response.writeHead(404).end());
  const wsServer = new WebSocketServer({ server, path: '/graphql' });
  const graphqlWs = useServer<Record<string, unknown>, { caller: Caller }>(
    {
      schema,
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.['authorization'];
        if (typeof authorization !== 'string' || !authorization.startsWith('Bearer ')) return false;
        try {
          const { payload } = await jwtVerify(authorization.slice('Bearer '.length), secret, { algorithms: ['HS256'] });
          if (typeof payload['tenant'] !== 'string') return false;
          const permissions = Array.isArray(payload['permissions']) ? payload['permissions'].filter((value) => typeof value === 'string') : [];
          ctx.extra.caller = { tenant: payload['tenant'], permissions };
          return true;
        } catch {
          return false;
        }
      },
      context: (ctx): Context => ({ caller: ctx.extra.caller }),
    },
    wsServer,
  );

  await prepareSource(options);
  const replication = new LogicalReplicationService({ connectionString: options.databaseUrl, application_name: 'pg-redis-graphql-ws' });
  replication.on('error', report('replication'));
  replication.on('data', (_lsn: string, message: Pgoutput.Message) => {
    if (message.tag !== 'insert' && message.tag !== 'update' && message.tag !== 'delete') return;
    if (message.relation.name !== options.table) return;
    const row = message.tag === 'delete' ? (message.old ?? message.key) : message.new;
    if (!row || typeof row['tenant_id'] !== 'string') return;
    const change: ModelChange = { operation: OPERATIONS[message.tag], model: options.model, id: String(row['id']), record: row };
    pubSub.publish(channelOf(row['tenant_id'], options.model), change).catch(report('publish'));
  });
  const started = new Promise<void>((resolve) => replication.on('start', () => resolve()));
  const streaming = replication.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [options.publicationName] }), options.slotName);
  streaming.catch(report('replication stream'));
  await Promise.race([started, streaming.then(() => Promise.reject(new Error('the replication stream ended before it started')))]);

  const port = await listenOnLoopback(server);

  let disposed: Promise<void> | undefined;
  return {
    port,
    path: '/graphql',
    dispose: () =>
      (disposed ??= (async () => {
        await replication.destroy();
        await graphqlWs.dispose();
        await closeListener(server);
        await pubSub.close();
      })()),
  };
}

/** The publication and slot, created when missing (the publication for `table` only). */
async function prepareSource(options: PgRedisPeerOptions): Promise<void> {
  const client = new pg.Client({ connectionString: options.databaseUrl });
  await client.connect();
  try {
    const publication = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [options.publicationName]);
    if (!publication.rowCount) {
      await client.query(`CREATE PUBLICATION ${pg.escapeIdentifier(options.publicationName)} FOR TABLE ${pg.escapeIdentifier(options.table)}`);
    }
    const slot = await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [options.slotName]);
    if (!slot.rowCount) await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [options.slotName]);
  } finally {
    await client.end();
  }
}
