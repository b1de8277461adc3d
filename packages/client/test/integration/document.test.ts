/** subscribeDocument against a real server: snapshot, changes, and a fresh snapshot after a lost socket. */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, type LiveDocument } from '@tributary/client';
import { startTcpProxy } from '../../../../test/helpers/tcp-proxy.ts';
import { signHs256, TEST_SECRET } from '../../../../test/helpers/tokens.ts';
import { postGraphQL, startTestServer } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const CLAIMS = { sub: 'editor', tenant: 'tenant-a', permissions: ['sync.boards.read', 'sync.boards.write'] };

describe('subscribeDocument', () => {
  it('delivers the snapshot, then each change; after a lost socket the new snapshot brings what was missed, never an older revision', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const proxy = await startTcpProxy(server.port);
    const token = await signHs256(CLAIMS);
    const merge = async (patch: object) => {
      const { body } = await postGraphQL(server.graphqlUrl, { query: 'mutation($p: JSON!) { mergeDocument(service: "boards", id: "b1", patch: $p) { revision } }', variables: { p: patch } }, { authorization: `Bearer ${token}` });
      expect(body.errors).toBeUndefined();
    };
    const { body } = await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "boards", id: "b1", data: { title: "Sprint" }) { revision } }' }, { authorization: `Bearer ${token}` });
    expect(body.errors).toBeUndefined();

    const client = createClient({ url: `ws://127.0.0.1:${proxy.port}/graphql`, getToken: () => token, backoff: { initialMs: 50, maxMs: 200 } });
    onTestFinished(() => client.close());
    const seen: LiveDocument[] = [];
    const subscription = client.subscribeDocument('boards', 'b1', { onDocument: (document) => void seen.push(document) });
    await waitFor(() => seen.length === 1, { message: 'the snapshot' });
    expect(seen[0]).toMatchObject({ operation: 'SNAPSHOT', revision: 1, data: { title: 'Sprint' } });
    await merge({ done: false });
    await waitFor(() => seen.length === 2, { message: 'a change' });

    proxy.refuse(true);
    proxy.dropAll();
    await waitFor(() => client.state === 'reconnecting', { message: 'lost' });
    await merge({ done: true });
    await merge({ owner: 'ann' });
    proxy.refuse(false);
    await waitFor(() => subscription.current?.revision === 4, { timeoutMs: 10_000, message: 'the new snapshot' });
    expect(subscription.current).toMatchObject({ operation: 'SNAPSHOT', data: { title: 'Sprint', done: true, owner: 'ann' } });
    expect(seen.map((document) => document.revision)).toEqual([1, 2, 4]);
  });

  it('shows a deletion made while the socket was lost: the new snapshot (no data, the deletion\'s revision) is taken', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const proxy = await startTcpProxy(server.port);
    const token = await signHs256(CLAIMS);
    const mutate = async (query: string) => {
      const { body } = await postGraphQL(server.graphqlUrl, { query }, { authorization: `Bearer ${token}` });
      expect(body.errors).toBeUndefined();
    };
    await mutate('mutation { createDocument(service: "boards", id: "b2", data: { title: "Old" }) { revision } }');
    await mutate('mutation { mergeDocument(service: "boards", id: "b2", patch: { step: 2 }) { revision } }');
    await mutate('mutation { mergeDocument(service: "boards", id: "b2", patch: { step: 3 }) { revision } }');

    const client = createClient({ url: `ws://127.0.0.1:${proxy.port}/graphql`, getToken: () => token, backoff: { initialMs: 50, maxMs: 200 } });
    onTestFinished(() => client.close());
    const subscription = client.subscribeDocument('boards', 'b2', { onDocument: () => {} });
    await waitFor(() => subscription.current?.revision === 3, { message: 'the snapshot' });

    proxy.refuse(true);
    proxy.dropAll();
    await waitFor(() => client.state === 'reconnecting', { message: 'lost' });
    await mutate('mutation { deleteDocument(service: "boards", id: "b2") { revision } }');
    proxy.refuse(false);
    await waitFor(() => subscription.current?.revision === 4, { timeoutMs: 10_000, message: 'the deletion, from the new snapshot' });
    expect(subscription.current).toMatchObject({ operation: 'SNAPSHOT', revision: 4, data: null });

    // Its re-creation comes next, one revision above the deletion.
    await mutate('mutation { createDocument(service: "boards", id: "b2", data: { title: "New" }) { revision } }');
    await waitFor(() => subscription.current?.revision === 5, { message: 'the re-creation' });
    expect(subscription.current).toMatchObject({ operation: 'CREATED', data: { title: 'New' } });
  });
});
