/**
 * "Saved but not finished" against "not saved": both answer UNAVAILABLE, and only the former has
 * `extensions.saved: true` with the revision it was saved as — a client retrying it would make a
 * second change. A change whose event the log refused (every way documents are stored), and a
 * change of sync durability the database has not taken yet (its connection cut), over GraphQL with
 * an idempotency key: the retry answers the same, and writes nothing. The sync log lines of those
 * changes name the document service `documentService`, with its scope, not a second `service`
 * beside the root logger's `"service":"tributary"`.
 */
import { rm } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createCachedDocumentService } from '../../src/pipeline/sync/cached-documents.ts';
import type { DocumentKey, DocumentService } from '../../src/pipeline/sync/documents.ts';
import { createPostgresDocumentService } from '../../src/pipeline/sync/postgres-documents.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

type Mode = 'postgres' | 'embedded' | 'sync' | 'async';
const MODES: readonly Mode[] = ['postgres', 'embedded', 'sync', 'async'];

const key: DocumentKey = { scope: { app: 'a', env: 'e', tenant: 't1' }, service: 'boards', id: 'd' };

/** A log sink keeping each line as written: JSON.parse would keep one of a key written twice. */
function rawLines() {
  const lines: string[] = [];
  return { lines, write: (line: string) => void lines.push(line) };
}

async function database(mode: Mode): Promise<Database> {
  if (mode === 'embedded') {
    const dataDir = await pgliteDataDir();
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const db = await createEmbeddedDatabase({ dataDir });
    onTestFinished(() => db.close());
    await migrate(db, { logger: createLogger({ level: 'silent' }) });
    return db;
  }
  const created = await createTestDatabase({ migrated: true });
  const db = createPostgresDatabase({ url: created.url, logger: createLogger({ level: 'silent' }) });
  onTestFinished(() => db.close());
  return db;
}

/** The document service of `mode` over a log whose appends the test can refuse, logging to `sink`. */
async function start(mode: Mode, sink: { write: (line: string) => void }) {
  const db = await database(mode);
  const log = createMemoryLog({ retention: { maxEvents: 1000, maxAgeMs: 3_600_000 }, publish: () => undefined });
  onTestFinished(() => log.close());
  const gate = { refusing: false };
  const refusable: EventLog = { ...log, append: (stream, event) => (gate.refusing ? Promise.reject(new Error('the log refuses the event')) : log.append(stream, event)) };
  const router = createEventRouter({ log: refusable, logger: createLogger({ level: 'silent' }) });
  const logger = createLogger({ level: 'debug', destination: sink });
  const republish = { republishGraceMs: 200, republishIntervalMs: 50 };
  let service: DocumentService;
  if (mode === 'postgres' || mode === 'embedded') {
    service = createPostgresDocumentService({ db, router, logger, ...republish });
  } else {
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    service = createCachedDocumentService({ db, redis, keyPrefix: uniquePrefix(), router, logger, durability: mode, ttlSeconds: 600, ...republish });
  }
  onTestFinished(() => service.close());
  return { service, gate };
}

/** The first raw line with this message, parsed, after checking that it names `service` once. */
function lineOf(lines: readonly string[], msg: string): Record<string, unknown> {
  const line = lines.find((raw) => (JSON.parse(raw) as { msg: string }).msg === msg);
  expect(line, `a line "${msg}"`).toBeDefined();
  expect(line!.match(/"service":/g)).toHaveLength(1);
  return JSON.parse(line!) as Record<string, unknown>;
}

describe.each(MODES)('a change saved whose event the log refused (%s)', (mode) => {
  it('is UNAVAILABLE with saved: true and its revision, and its log lines name the document service once, with its scope', async () => {
    const sink = rawLines();
    const { service, gate } = await start(mode, sink);
    await service.create(key, { v: 1 });

    gate.refusing = true;
    await expect(service.merge(key, { v: 2 }, undefined)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { saved: true, revision: 2 } });
    gate.refusing = false;
    // Saved: the sweep publishes it.
    await waitFor(() => sink.lines.some((raw) => raw.includes('document event published again')), { timeoutMs: 10_000, message: 'the event was published again' });

    const scope = { app: 'a', env: 'e', tenant: 't1', documentService: 'boards', documentId: 'd' };
    expect(lineOf(sink.lines, 'document event not published')).toMatchObject({ service: 'tributary', ...scope, revision: 2 });
    expect(lineOf(sink.lines, 'document event published again (its first publish failed or was cut short)')).toMatchObject({ service: 'tributary', ...scope, revision: 2 });
    expect((await service.get(key))?.revision).toBe(2);
  });
});

describe('a change of sync durability the database has not taken yet', () => {
  it('is UNAVAILABLE with saved: true and its revision, retried under its key writes nothing; what saved nothing has no saved', { timeout: 60_000 }, async () => {
    // The platform database behind a proxy the test can cut; Redis (the cache) stays up.
    const created = await createTestDatabase({ migrated: true });
    const url = new URL(created.url);
    const proxy = await startTcpProxy(Number(url.port));
    url.port = String(proxy.port);
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, DATABASE_URL: url.toString(), REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), SYNC_DURABILITY: 'sync' });
    const token = await signHs256({ sub: 'writer', permissions: ['sync.read', 'sync.write'] });
    const call = async (query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponseBody> =>
      (await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` })).body;
    const MERGE = 'mutation($p: JSON!, $k: String) { mergeDocument(service: "boards", id: "d", patch: $p, idempotencyKey: $k) { revision } }';
    const GET = 'query { document(service: "boards", id: "d") { revision data } }';
    const refusal = (body: GraphQLResponseBody) => body.errors?.map((error) => ({ code: error.extensions?.['code'], saved: error.extensions?.['saved'], revision: error.extensions?.['revision'] }));

    expect((await call('mutation { createDocument(service: "boards", id: "d", data: { v: 1 }) { revision } }')).errors).toBeUndefined();
    proxy.refuse(true);
    proxy.dropAll();
    const first = await call(MERGE, { p: { v: 2 }, k: 'merge-2' });
    expect(refusal(first)).toEqual([{ code: 'UNAVAILABLE', saved: true, revision: 2 }]);
    // Answered as the first try was, and not made again.
    const retry = await call(MERGE, { p: { v: 2 }, k: 'merge-2' });
    expect(retry.errors?.[0]?.message).toBe(first.errors?.[0]?.message);
    expect(refusal(retry)).toEqual([{ code: 'UNAVAILABLE', saved: true, revision: 2 }]);
    // The next change waits for that one to reach the database: UNAVAILABLE, nothing saved.
    expect(refusal(await call(MERGE, { p: { v: 3 } }))).toEqual([{ code: 'UNAVAILABLE', saved: undefined, revision: undefined }]);

    proxy.refuse(false);
    await waitFor(async () => ((await call(GET)).data?.['document'] as { revision: number } | null)?.revision === 2, { timeoutMs: 15_000, message: 'revision 2 reached the database' });
    expect(refusal(await call(MERGE, { p: { v: 2 }, k: 'merge-2' }))).toEqual([{ code: 'UNAVAILABLE', saved: true, revision: 2 }]);
    expect((await call(GET)).data?.['document']).toEqual({ revision: 2, data: { v: 2 } });
  });
});
