/**
 * A token the server refuses (4403 at `connection_init`: none, or not a valid JWT), against a real
 * server reading a real Postgres (CDC): the SDK carries the server's reason ("Forbidden: …") into
 * the error it reports (a live model's, a subscription's `onRetry`, a document write's), a live
 * model says `unauthorized` (not `loading` for good) — and all of it goes once a good token connects.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, SessionEndedError, type TributaryClient } from '@tributary/client';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../../../../test/helpers/cdc.ts';
import { signHs256 } from '../../../../test/helpers/tokens.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const READER = { tenant: 'a', permissions: ['crm.contacts.read'] };

function connect(url: string, token: () => string | null | Promise<string>): TributaryClient {
  const client = createClient({ url, getToken: token, backoff: { initialMs: 50, maxMs: 200 } });
  onTestFinished(() => client.close());
  return client;
}

describe('a token the server refuses (4403)', () => {
  it('reports the server’s reason, turns a live model `unauthorized` with it, ends a write — and a good token then brings the model live', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await insertContact(setup, 'a', 'Ann');
    let token: string | null = null;
    const client = connect(setup.server.wsUrl, () => token);
    const model = client.liveModel('contacts');
    const retries: Error[] = [];
    client.subscribeEvents('orders.refused', { onEvent: () => {}, onRetry: (error) => void retries.push(error) });

    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });
    const { status, error } = model.getSnapshot();
    expect(status).toBe('unauthorized');
    expect(error).toBeInstanceOf(SessionEndedError);
    const refused = error as SessionEndedError;
    expect(refused.closeCode).toBe(4403);
    expect(refused.reason).toMatch(/^Forbidden: No token/);
    expect(refused.message).toContain(refused.reason);
    expect(retries.map((each) => each.message)).toEqual([refused.message]);
    // A write (as a publish) is ended, with the reason: it must not wait for the next login.
    await expect(client.createDocument('boards', { title: 'x' })).rejects.toMatchObject({ name: 'SessionEndedError', closeCode: 4403, reason: refused.reason });

    // A malformed token: the server's reason says what is wrong with it.
    token = 'not-a-jwt';
    client.reconnect();
    await waitFor(() => client.state === 'unauthorized' && model.status === 'unauthorized', { message: 'unauthorized again' });
    expect((model.error as SessionEndedError).reason).toMatch(/^Forbidden: /);
    expect(model.error?.message).toMatch(/close code 4403: Forbidden: /);

    token = await signHs256(READER);
    client.reconnect();
    await waitFor(() => model.isLive && model.records.length === 1, { timeoutMs: 20_000, message: 'live with the snapshot' });
    expect(model.error).toBeNull();
    await expect(client.request('query { __typename }')).resolves.toEqual({ __typename: 'Query' });
  });
});
