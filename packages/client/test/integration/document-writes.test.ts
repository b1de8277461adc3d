/**
 * Writing documents from the SDK against a real server: create, replace, merge and delete, typed,
 * with `expectedRevision` (CONFLICT with the current revision when the document moved) and an
 * `idempotencyKey` (a retry under it writes nothing more and answers as the first try did); and
 * `updateDocument`, which reads, applies and writes at the revision it read, reading again after
 * a CONFLICT — a bounded number of times; and (against a scripted server, which can lose an
 * answer on demand) sends a write whose answer was lost again with the same key, applying the
 * update once.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, TributaryRequestError, type TributaryClient } from '@tributary/client';
import { signHs256, TEST_SECRET } from '../../../../test/helpers/tokens.ts';
import { postGraphQL, startTestServer, type TestServer } from '../../../../test/helpers/tributary.ts';
import { startScriptedServer } from '../helpers/scripted-server.ts';

interface Board {
  readonly title: string;
  readonly done?: boolean;
  readonly count?: number;
  readonly owner?: string;
}

const CLAIMS = { sub: 'editor', tenant: 'a', permissions: ['sync.boards.read', 'sync.boards.write'] };

async function setUp(): Promise<{ server: TestServer; client: TributaryClient; token: string }> {
  const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
  const token = await signHs256(CLAIMS);
  const client = createClient({ url: server.wsUrl, getToken: () => token });
  onTestFinished(() => client.close());
  return { server, client, token };
}

/** The error a promise rejects with. */
async function rejection(promise: Promise<unknown>): Promise<TributaryRequestError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(TributaryRequestError);
  return error as TributaryRequestError;
}

describe('document writes from the SDK', () => {
  it('creates, replaces, merges and deletes — refused with the current revision when it moved, written once per idempotency key', async () => {
    const { client } = await setUp();

    const created = await client.createDocument<Board>('boards', { title: 'Sprint' }, { id: 'w1' });
    expect(created).toMatchObject({ service: 'boards', id: 'w1', revision: 1, data: { title: 'Sprint' } });
    expect(Date.parse(created.createdAt)).not.toBeNaN();
    const again = await rejection(client.createDocument('boards', { title: 'Other' }, { id: 'w1' }));
    expect(again.code).toBe('CONFLICT');

    const replaced = await client.replaceDocument<Board>('boards', 'w1', { title: 'Sprint 2' }, { expectedRevision: 1 });
    expect(replaced).toMatchObject({ revision: 2, data: { title: 'Sprint 2' } });
    const stale = await rejection(client.replaceDocument('boards', 'w1', { title: 'lost update' }, { expectedRevision: 1 }));
    expect(stale.code).toBe('CONFLICT');
    expect(stale.errors[0]?.extensions?.['currentRevision']).toBe(2);

    // A merge under an idempotency key, sent twice: written once, both answered alike.
    const merged = await client.mergeDocument<Board>('boards', 'w1', { done: true }, { expectedRevision: 2, idempotencyKey: 'merge-w1-1' });
    expect(merged).toMatchObject({ revision: 3, data: { title: 'Sprint 2', done: true } });
    const retried = await client.mergeDocument<Board>('boards', 'w1', { done: true }, { expectedRevision: 2, idempotencyKey: 'merge-w1-1' });
    expect(retried).toMatchObject({ id: 'w1', revision: 3 });
    expect(await client.getDocument<Board>('boards', 'w1')).toMatchObject({ revision: 3, data: { title: 'Sprint 2', done: true } });

    // A create with a key, its answer lost and sent again: the same document, not CONFLICT.
    const first = await client.createDocument<Board>('boards', { title: 'Generated' }, { idempotencyKey: 'create-1' });
    const second = await client.createDocument<Board>('boards', { title: 'Generated' }, { idempotencyKey: 'create-1' });
    expect(second).toMatchObject({ id: first.id, revision: 1 });

    const deleted = await client.deleteDocument('boards', 'w1', { expectedRevision: 3 });
    expect(deleted).toMatchObject({ id: 'w1', revision: 4 });
    expect(await client.getDocument('boards', 'w1')).toBeNull();
  });

  it('updateDocument applies the function to what it read and writes at that revision; after a CONFLICT it reads again and applies it again', async () => {
    const { server, client, token } = await setUp();
    await client.createDocument<Board>('boards', { title: 'Counter', count: 0 }, { id: 'c1' });
    const concurrently = async (patch: object) => {
      const { body } = await postGraphQL(server.graphqlUrl, { query: 'mutation($p: JSON!) { mergeDocument(service: "boards", id: "c1", patch: $p) { revision } }', variables: { p: patch } }, { authorization: `Bearer ${token}` });
      expect(body.errors).toBeUndefined();
    };

    // Another writer changes the document between the read and the write, once.
    const seen: number[] = [];
    const updated = await client.updateDocument<Board>('boards', 'c1', async (board, current) => {
      seen.push(current.revision);
      if (seen.length === 1) await concurrently({ owner: 'ann' });
      return { ...board, count: (board.count ?? 0) + 1 };
    });
    expect(seen).toEqual([1, 2]);
    expect(updated).toMatchObject({ revision: 3, data: { title: 'Counter', count: 1, owner: 'ann' } });

    // A writer that always gets in between: given up after `attempts`, with the CONFLICT.
    let calls = 0;
    const refused = await rejection(
      client.updateDocument<Board>(
        'boards',
        'c1',
        async (board) => {
          calls += 1;
          await concurrently({ owner: `writer ${calls}` });
          return { ...board, count: (board.count ?? 0) + 1 };
        },
        { attempts: 3 },
      ),
    );
    expect(refused.code).toBe('CONFLICT');
    expect(calls).toBe(3);
    expect(await client.getDocument<Board>('boards', 'c1')).toMatchObject({ revision: 6, data: { count: 1, owner: 'writer 3' } });

    const missing = await rejection(client.updateDocument<Board>('boards', 'nope', (board) => board));
    expect(missing.code).toBe('NOT_FOUND');
  });

  it('updateDocument sends a write whose answer was lost (the socket went) again with the same key and revision, without applying the update again', async () => {
    const stored = { service: 'boards', id: 'c1', revision: 7, data: { count: 1 }, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' };
    const server = await startScriptedServer((operation, reply) => {
      if (operation.query.includes('document(')) {
        reply.next({ document: stored });
        return reply.complete();
      }
      if (!operation.query.includes('replaceDocument(')) return;
      // The first write: the socket goes before its answer (was it made? the client cannot know).
      if (server.operations.filter((each) => each.query.includes('replaceDocument(')).length === 1) return void reply.socket.terminate();
      reply.next({ replaceDocument: { ...stored, revision: 8, data: operation.variables['data'] } });
      reply.complete();
    });
    const client = createClient({ url: server.url, webSocketImpl: WebSocket, backoff: { initialMs: 10, maxMs: 50 } });
    onTestFinished(() => client.close());

    let applied = 0;
    const updated = await client.updateDocument<{ count: number }>('boards', 'c1', (board) => {
      applied += 1;
      return { count: board.count + 1 };
    });
    expect(updated).toMatchObject({ revision: 8, data: { count: 2 } });
    expect(applied).toBe(1);
    const writes = server.operations.filter((each) => each.query.includes('replaceDocument('));
    expect(writes).toHaveLength(2);
    expect(writes[1]?.variables).toEqual(writes[0]?.variables);
    expect(writes[0]?.variables).toMatchObject({ expectedRevision: 7, data: { count: 2 }, idempotencyKey: expect.any(String) as unknown });
    expect(server.sockets).toHaveLength(2);
  });
});
