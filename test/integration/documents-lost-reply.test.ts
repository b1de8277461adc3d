/**
 * A document write whose Redis write script ran but whose reply was lost (the connection cut once
 * the command was sent): the change is in the cache — flushed to Postgres and published by the
 * next write (sync), or at once (async) — so answering it UNAVAILABLE without `saved` ("saved
 * nothing: retry") was false: a retry with `expectedRevision` got CONFLICT for its own change, and
 * a retry under the same `idempotencyKey` (whose first try "saved nothing" freed it) wrote the
 * change a second time. Real Postgres and Redis; the instance's Redis link goes through a TCP proxy
 * that loses one reply (or one request), as `sync-cache-marks.test.ts` does it.
 */
import { createHash } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createMemoryPublishKeys } from '../../src/pipeline/idempotency/memory-publish-keys.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createCachedDocumentService, type SyncDurability } from '../../src/pipeline/sync/cached-documents.ts';
import { WRITE } from '../../src/pipeline/sync/document-cache-scripts.ts';
import { documentTopic, type DocumentKey } from '../../src/pipeline/sync/documents.ts';
import { writeFingerprint, writeOnce } from '../../src/pipeline/sync/keyed-writes.ts';
import { createRedisClient } from '../../src/redis-clients.ts';
import { createTestDatabase, openTestPool, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

const key: DocumentKey = { scope: { app: 'a', env: 'e', tenant: undefined }, service: 's', id: 'd' };
/**
 * A lost reply is given up on after this, in ms (the server's connections wait 5 s): on loopback a
 * healthy Redis answers within a millisecond, and every test here waits it out at least once.
 */
const COMMAND_TIMEOUT_MS = 1000;
/** How long the writer then asks the cache what its write did, in ms (5 s in the server): the link is back within ioredis's first reconnect, ~50 ms. */
const LOST_WRITE_WAIT_MS = 2000;
const WRITE_SCRIPT = new RegExp(createHash('sha1').update(WRITE).digest('hex'));

/**
 * A loopback link to Redis that can lose one request: the next chunk a client sends that matches
 * `command` is not passed on, and the connection is cut — the client cannot tell whether Redis ran
 * it (it did not). Resolves with the lost bytes once the request was lost.
 */
async function startLossyLink(targetPort: number): Promise<{ port: number; loseRequest(command: RegExp): Promise<Buffer> }> {
  let armed: { command: RegExp; lost: (chunk: Buffer) => void } | undefined;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.on('data', (chunk: Buffer) => {
      const held = armed;
      if (held?.command.test(chunk.toString('latin1'))) {
        armed = undefined;
        close();
        held.lost(chunk);
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    loseRequest: (command) => new Promise<Buffer>((lost) => (armed = { command, lost })),
  };
}

/** Sends `request` (RESP bytes) to Redis on a connection of its own: what a late packet of a dropped connection does. Resolves with the first reply. */
async function sendLate(port: number, request: Buffer): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  const reply = new Promise<string>((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1')));
    socket.once('error', reject);
  });
  socket.write(request);
  return reply;
}

/**
 * One instance of the cached document service whose Redis connection (the server's own kind: fails
 * fast, never re-sends; with shorter waits for a lost reply) goes to `redisPort`.
 */
async function start(durability: SyncDurability, redisPort: number) {
  const database = await createTestDatabase({ migrated: true });
  const quiet = createLogger({ level: 'silent' });
  const db = createPostgresDatabase({ url: database.url, logger: quiet });
  onTestFinished(() => db.close());
  const admin = openTestPool(database.url);
  const redis = createRedisClient(`redis://127.0.0.1:${redisPort}`, 'tributary', quiet, 'command', { commandTimeoutMs: COMMAND_TIMEOUT_MS });
  onTestFinished(() => redis.disconnect());
  await waitFor(() => redis.status === 'ready', { message: 'the instance reaches Redis' });
  const published: { topic: string; revision: unknown; data: unknown }[] = [];
  const log = createMemoryLog({
    retention: { maxEvents: 1000, maxAgeMs: 3_600_000 },
    publish: (_stream, event) => published.push({ topic: event.topic, revision: event.payload['revision'], data: event.payload['data'] }),
  });
  onTestFinished(() => log.close());
  const service = createCachedDocumentService({
    db,
    redis,
    keyPrefix: uniquePrefix(),
    router: createEventRouter({ log, logger: quiet }),
    logger: quiet,
    durability,
    ttlSeconds: 600,
    // Only the write path (and the waits) flush, and no sweep republishes.
    sweepIntervalMs: 3_600_000,
    lostWriteWaitMs: LOST_WRITE_WAIT_MS,
  });
  onTestFinished(() => service.close());
  // The keys of the resolvers' keyed writes, in this process's memory (Redis is the one cut here).
  const keys = createMemoryPublishKeys({ ttlMs: 3_600_000, inFlightMs: 60_000 });
  /** A merge of `patch` from `expectedRevision` as the resolvers make it under the idempotency key `idempotencyKey`. */
  const keyedMerge = (idempotencyKey: string, patch: { v: number }, expectedRevision: number) =>
    writeOnce(
      { keys, logger: quiet },
      {
        keyId: idempotencyKey,
        fingerprint: writeFingerprint('merge', 's', 'd', patch, expectedRevision),
        write: () => service.merge(key, patch, expectedRevision),
        dataOf: async () => (await service.get(key))?.data ?? {},
      },
    );
  const stored = async () => (await admin.query<{ revision: number; data: unknown }>("SELECT revision, data FROM sync_documents WHERE service = 's' AND id = 'd'")).rows[0];
  /** The document's changes as its own stream got them (what `document` subscribers and the sync.* topics get). */
  const changes = () => published.filter((event) => event.topic === documentTopic('s', 'd')).map(({ revision, data }) => ({ revision, data }));
  return { service, redis, keyedMerge, stored, changes };
}

/** A write's outcome: its revision and data, or its error's code and details. */
function settled(write: Promise<{ revision: number; data: unknown }>) {
  return write.then(
    ({ revision, data }) => ({ revision, data }),
    (error: { code?: unknown; details?: unknown }) => ({ code: error.code, details: error.details }),
  );
}

const change = (revision: number, v: number) => ({ revision, data: { v } });
const DURABILITIES: readonly SyncDurability[] = ['sync', 'async'];

describe.each(DURABILITIES)('a document write whose Redis reply is lost (%s durability)', (durability) => {
  it('is answered as the write it was once Redis answers again; its retry under the same key writes nothing', { timeout: 60_000 }, async () => {
    const link = await startTcpProxy(Number(new URL(testRedisUrl()).port));
    const A = await start(durability, link.port);
    await A.service.create(key, change(1, 1).data);
    await waitFor(async () => (await A.stored())?.revision === 1, { message: 'the creation flushed' });

    const cut = deferred();
    void link.cutReplyTo(WRITE_SCRIPT, { connectionName: 'tributary' }).then(() => cut.resolve());
    expect(await settled(A.keyedMerge('k-2', { v: 2 }, 1))).toEqual(change(2, 2));
    expect(cut.settled).toBe(true);
    // The retry the client makes when unsure, under its key: answered as the first, nothing written.
    expect(await settled(A.keyedMerge('k-2', { v: 2 }, 1))).toEqual(change(2, 2));

    await waitFor(async () => (await A.stored())?.revision === 2, { message: 'revision 2 flushed' });
    expect(await A.stored()).toEqual(change(2, 2));
    expect((await A.service.get(key))?.revision).toBe(2);
    await waitFor(() => A.changes().length === 2, { message: 'revision 2 published' });
    expect(A.changes()).toEqual([change(1, 1), change(2, 2)]);
  });

  it('is UNAVAILABLE with saved: null while Redis stays away, and its retry under the same key writes nothing', { timeout: 60_000 }, async () => {
    const link = await startTcpProxy(Number(new URL(testRedisUrl()).port));
    const A = await start(durability, link.port);
    await A.service.create(key, change(1, 1).data);
    await waitFor(async () => (await A.stored())?.revision === 1, { message: 'the creation flushed' });

    // The reply is cut, and Redis refuses the instance until the answer: whether the change landed cannot be known.
    void link.cutReplyTo(WRITE_SCRIPT, { connectionName: 'tributary' }).then(() => link.refuse(true));
    const unknown = { code: ErrorCode.UNAVAILABLE, details: { saved: null } };
    expect(await settled(A.keyedMerge('k-2', { v: 2 }, 1))).toEqual(unknown);
    link.refuse(false);
    await waitFor(() => A.redis.status === 'ready', { timeoutMs: 20_000, message: 'A reaches Redis again' });

    // The key is kept: its retry is answered the same, and writes nothing.
    expect(await settled(A.keyedMerge('k-2', { v: 2 }, 1))).toEqual(unknown);
    // It had landed: a write from revision 1 is refused, one from revision 2 is revision 3.
    expect(await settled(A.service.merge(key, { v: 9 }, 1))).toEqual({ code: ErrorCode.CONFLICT, details: { currentRevision: 2 } });
    expect(await settled(A.service.merge(key, { v: 3 }, 2))).toEqual(change(3, 3));
    await waitFor(async () => (await A.stored())?.revision === 3, { message: 'revision 3 flushed' });
    await waitFor(() => A.changes().length === 3, { message: 'revisions 2 and 3 published' });
    expect(A.changes()).toEqual([change(1, 1), change(2, 2), change(3, 3)]);
  });

  it('whose request never reached Redis is UNAVAILABLE without saved, changes nothing should it arrive late, and its retry under the same key writes it once', { timeout: 60_000 }, async () => {
    const redisPort = Number(new URL(testRedisUrl()).port);
    const link = await startLossyLink(redisPort);
    const A = await start(durability, link.port);
    await A.service.create(key, change(1, 1).data);
    await waitFor(async () => (await A.stored())?.revision === 1, { message: 'the creation flushed' });

    const lost = deferred<Buffer>();
    void link.loseRequest(WRITE_SCRIPT).then((request) => lost.resolve(request));
    expect(await settled(A.keyedMerge('k-2', { v: 2 }, 1))).toEqual({ code: ErrorCode.UNAVAILABLE, details: {} });
    expect(lost.settled).toBe(true);
    // The lost request reaches Redis after all, once answered: fenced by the look for it, it writes nothing.
    expect(await sendLate(redisPort, await lost.promise)).toBe('$4\r\nvoid\r\n');
    expect((await A.service.get(key))?.revision).toBe(1);

    expect(await settled(A.keyedMerge('k-2', { v: 2 }, 1))).toEqual(change(2, 2));
    expect(await settled(A.keyedMerge('k-2', { v: 2 }, 1))).toEqual(change(2, 2));
    await waitFor(async () => (await A.stored())?.revision === 2, { message: 'revision 2 flushed' });
    await waitFor(() => A.changes().length === 2, { message: 'revision 2 published' });
    expect(A.changes()).toEqual([change(1, 1), change(2, 2)]);
  });
});
