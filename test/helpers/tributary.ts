/**
 * A real Tributary server for a test: the same `startTributary` that `npm start` runs, on a free
 * port of 127.0.0.1. Its platform database is a fresh copy of the run's migrated template in the
 * shared Postgres (fast to create; the server's own migration finds nothing to apply), or the
 * embedded PGlite with `{ embedded: true }`, in a copy of the run's initialised PGlite folder
 * (slower: ~1–2 s to boot and migrate).
 * Teardown is registered with `onTestFinished` at creation unless `autoDispose: false`.
 */
import { rm } from 'node:fs/promises';
import type { DestinationStream } from 'pino';
import { onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startTributary, type Tributary } from '../../src/main.ts';
import { pgliteDataDir } from './pglite-template.ts';
import { createTestDatabase } from './services.ts';

export interface TestServer extends Tributary {
  /** `http://127.0.0.1:port/graphql` */
  readonly graphqlUrl: string;
  /** `ws://127.0.0.1:port/graphql` */
  readonly wsUrl: string;
}

export interface TestServerOptions {
  /** Register `dispose()` with `onTestFinished`. @default true */
  readonly autoDispose?: boolean;
  /** Use the embedded database (in memory) instead of a fresh Postgres database. @default false */
  readonly embedded?: boolean;
  /** Where the server's JSON log lines go (with `LOG_LEVEL` in `env`), e.g. a `captureLogs()` sink. @default standard output */
  readonly logDestination?: DestinationStream;
  /** The clock of time windows (analytics minutes), e.g. one a test moves forward. @default Date.now */
  readonly now?: () => number;
}

/** Starts a server with these environment variables on top of the test defaults. */
export async function startTestServer(env: Record<string, string> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const autoDispose = options.autoDispose !== false;
  const database =
    options.embedded === true || env['DATABASE_URL'] !== undefined ? undefined : await createTestDatabase({ autoDispose, migrated: true });
  // The embedded database in a copy of the run's migrated PGlite folder (in memory, every start
  // would pay PGlite's initdb: ~7 s; from the initialised one, its migrations: ~0.5 s of CPU — the
  // server's own first start is process.test's and storage.test's).
  const dataDir = options.embedded === true && env['DATA_DIR'] === undefined ? await pgliteDataDir({ migrated: true }) : undefined;
  const removeDataDir = () => (dataDir === undefined ? Promise.resolve() : rm(dataDir, { recursive: true, force: true }));
  if (autoDispose) onTestFinished(removeDataDir);
  const config = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dataDir ?? 'memory://',
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    ...(database && { DATABASE_URL: database.url }),
    ...env,
  });
  const tributary = await startTributary(config, {
    logger: createLogger({ level: config.logLevel, ...(options.logDestination && { destination: options.logDestination }) }),
    ...(options.now && { now: options.now }),
  });
  // Registered after the database's teardown, so it runs first (onTestFinished runs in reverse).
  if (autoDispose) onTestFinished(() => tributary.dispose());
  return {
    ...tributary,
    async dispose() {
      await tributary.dispose();
      await database?.dispose();
      await removeDataDir();
    },
    graphqlUrl: `http://127.0.0.1:${tributary.port}/graphql`,
    wsUrl: `ws://127.0.0.1:${tributary.port}/graphql`,
  };
}

/** A log sink that keeps every JSON line the server writes, parsed, for assertions on levels and messages. */
export function captureLogs(): DestinationStream & { readonly lines: readonly LogLine[] } {
  const lines: LogLine[] = [];
  return { lines, write: (line: string) => void lines.push(JSON.parse(line) as LogLine) };
}

/** One pino line: `level` is numeric (20 debug, 30 info, 40 warn, 50 error). */
export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly err?: { readonly message?: string; readonly stack?: string };
  readonly [field: string]: unknown;
}

/** POSTs one GraphQL operation and returns the HTTP status and parsed body. */
export async function postGraphQL(
  url: string,
  body: { query: string; variables?: Record<string, unknown>; operationName?: string },
  headers: Record<string, string> = {},
): Promise<{ status: number; body: GraphQLResponseBody }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as GraphQLResponseBody };
}

export interface GraphQLResponseBody {
  readonly data?: Record<string, unknown> | null;
  readonly errors?: readonly { message: string; extensions?: Record<string, unknown> }[];
}
