/**
 * The connections of one source database, made in one place: a small pool for what the reader and
 * the service ask over a normal connection (checks, slot set-up, catalog reads, the slot's lag),
 * and the settings of the replication connection, which the replication library opens itself.
 * The composition root passes {@link createSourceConnections} (or another factory) to the CDC
 * service; each source disposes its own.
 */
import { Socket } from 'node:net';
import pg from 'pg';
import type { Logger } from '../../../logger.ts';

/** A server that does not answer at all must not hold up a reconnect or stop() for minutes, in ms. */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * TCP keepalive of the replication connection starts after this much idle time, in ms: keeps NAT
 * entries alive through quiet spells. A silent server is noticed by the session (it asks for a
 * keepalive every status interval), not by this.
 */
const REPLICATION_KEEPALIVE_DELAY_MS = 30_000;

export interface SourceConnections {
  /** Runs `use` on a pooled connection, released afterwards (destroyed when `use` failed). */
  withClient<T>(use: (client: pg.ClientBase) => Promise<T>): Promise<T>;
  /** Settings of a replication connection to the same database (`application_name` included: a CDC source puts its deployment's, `deployment-slots.ts`). */
  replicationConfig(): pg.ClientConfig;
  /**
   * The path to the server may have died without closing (the replication connection went silent):
   * every pooled connection made so far is closed when next taken instead of used, as a statement
   * sent on it could wait for an answer for as long as the kernel keeps the socket (~15 min).
   */
  retirePooledConnections(): void;
  /**
   * Closes the pool, and ends every connection (pooled or replication) the server has not answered
   * at all yet rather than wait out its connect timeout. Idempotent.
   */
  dispose(): Promise<void>;
}

export type SourceConnectionFactory = (databaseUrl: string) => SourceConnections;

export interface SourceConnectionOptions {
  /** Where a lost connection is logged: an idle one at `warn`, a checked-out one at `debug` (its statement rejects too). @default not logged */
  readonly logger?: Logger;
  /** Pooled connections at most. @default 2 */
  readonly max?: number;
  /** An idle pooled connection is closed after this, in ms (a source polled every 5 s keeps one). @default 30000 */
  readonly idleTimeoutMs?: number;
  /** As `pg_stat_activity` shows the pooled connections. @default 'tributary-cdc-setup' */
  readonly applicationName?: string;
  /** Longest a connection attempt is waited for, in ms. @default CONNECT_TIMEOUT_MS */
  readonly connectTimeoutMs?: number;
  /**
   * Longest a statement's answer is waited for, in ms: past it the statement rejects (and its
   * connection is discarded), whether or not the server is still there. @default none — slot
   * creation waits for the transactions running on the source, however long they take.
   */
  readonly queryTimeoutMs?: number;
  /** The server ends a transaction left idle this long, in ms. @default none */
  readonly idleInTransactionMs?: number;
  /**
   * TCP keepalive probes of the pooled connections start after this much idle time, in ms (the
   * replication connection always has them, see {@link REPLICATION_KEEPALIVE_DELAY_MS}). @default no keepalive
   */
  readonly keepAliveInitialDelayMs?: number;
}

/**
 * Every session's date style ISO, whatever the source server's or database's (`SQL, DMY`,
 * `German`…): pgoutput prints values in the walsender's, and the row values, outbox event ids
 * included (`created_at`), are read from that text (`row-values.ts`); pg parses dates as ISO too.
 * Options in the database URL replace these.
 */
const SESSION_OPTIONS = '-c DateStyle=ISO,MDY';

export function createSourceConnections(databaseUrl: string, options: SourceConnectionOptions = {}): SourceConnections {
  // Every socket of these connections, so that a dispose can end the ones still waiting for the server's first word.
  const sockets = new Set<Socket>();
  const stream = () => {
    const socket = new Socket();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    return socket;
  };
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    options: SESSION_OPTIONS,
    stream,
    application_name: options.applicationName ?? 'tributary-cdc-setup',
    connectionTimeoutMillis: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    max: options.max ?? 2,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
    ...(options.queryTimeoutMs !== undefined && { query_timeout: options.queryTimeoutMs }),
    ...(options.idleInTransactionMs !== undefined && { idle_in_transaction_session_timeout: options.idleInTransactionMs }),
    ...(options.keepAliveInitialDelayMs !== undefined && { keepAlive: true, keepAliveInitialDelayMillis: options.keepAliveInitialDelayMs }),
  });
  // An error on an idle client (server restart) must not crash the process; the next query fails instead.
  pool.on('error', (error) => options.logger?.warn({ err: error }, 'source database connection lost'));
  // Pooled connections made before the last retirePooledConnections() are not used again.
  let generation = 0;
  const generationOf = new WeakMap<pg.ClientBase, number>();
  pool.on('connect', (client) => {
    generationOf.set(client, generation);
    // The same for a checked-out one: the statement in progress rejects (an idle one's error is the pool's too, logged above).
    client.on('error', (error) => options.logger?.debug({ err: error }, 'source database connection lost while in use'));
  });
  let disposed: Promise<void> | undefined;
  return {
    async withClient(use) {
      let client = await pool.connect();
      while ((generationOf.get(client) ?? generation) < generation) {
        client.release(true);
        client = await pool.connect();
      }
      let failed = false;
      try {
        return await use(client);
      } catch (error) {
        failed = true;
        throw error;
      } finally {
        // A failed statement may have left the session in an unknown state (or the server gone).
        client.release(failed);
      }
    },
    replicationConfig: () => ({
      connectionString: databaseUrl,
      options: SESSION_OPTIONS,
      application_name: 'tributary-cdc',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      stream,
      keepAlive: true,
      keepAliveInitialDelayMillis: REPLICATION_KEEPALIVE_DELAY_MS,
    }),
    retirePooledConnections() {
      generation += 1;
    },
    dispose() {
      if (disposed) return disposed;
      disposed = pool.end().catch(() => undefined);
      for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
      return disposed;
    },
  };
}
