/**
 * Against a real server reading a real Postgres (CDC): a refreshed token that may no longer read a
 * subscription ends it (FORBIDDEN, PERMISSION_REVOKED) and what it delivered goes — the live
 * model's records, the document — as after a new login; a refused token (4403: `unauthorized`)
 * shows in every subscription's error instead of a silent wait, and goes once the socket is back.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, isPermissionRevoked, SessionEndedError, type TributaryClient } from '@tributary/client';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc, type CdcSetup } from '../../../../test/helpers/cdc.ts';
import { signHs256, type TokenClaims } from '../../../../test/helpers/tokens.ts';
import { postGraphQL } from '../../../../test/helpers/tributary.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const FULL: TokenClaims = { sub: 'ann', tenant: 'a', permissions: ['crm.contacts.read', 'sync.boards.read', 'sync.boards.write', 'orders.read'] };
/** The same user, her read permissions taken away. */
const REDUCED: TokenClaims = { sub: 'ann', tenant: 'a', permissions: [] };

async function setUp(): Promise<CdcSetup> {
  const setup = await setUpCdc();
  await saveMappingOk(setup, CONTACTS_MAPPING);
  await insertContact(setup, 'a', 'ann');
  const token = await signHs256(FULL);
  const { body } = await postGraphQL(setup.server.graphqlUrl, { query: 'mutation { createDocument(service: "boards", id: "b1", data: { title: "Sprint" }) { revision } }' }, { authorization: `Bearer ${token}` });
  expect(body.errors).toBeUndefined();
  return setup;
}

/** A client whose getToken answers `current()` (the application's auth library). */
function connect(setup: CdcSetup, current: () => Promise<string> | string): TributaryClient {
  const client = createClient({ url: setup.server.wsUrl, getToken: current, backoff: { initialMs: 50, maxMs: 200 } });
  onTestFinished(() => client.close());
  return client;
}

describe('a subscription the socket may no longer read', () => {
  it('drops the live model’s records and the document when a refreshed token revokes the permission (FORBIDDEN, PERMISSION_REVOKED)', async () => {
    const setup = await setUp();
    let claims = FULL;
    const client = connect(setup, () => signHs256(claims));
    const model = client.liveModel('contacts');
    const documentErrors: unknown[] = [];
    const eventErrors: unknown[] = [];
    const document = client.subscribeDocument('boards', 'b1', { onDocument: () => {}, onError: (error) => void documentErrors.push(error) });
    client.subscribeEvents('orders.revoked', { onEvent: () => {}, onError: (error) => void eventErrors.push(error) });
    await waitFor(() => model.isLive && model.records.length === 1 && document.current !== undefined, { timeoutMs: 20_000, message: 'live, with a record and the document' });

    claims = REDUCED;
    await client.refreshToken();
    await waitFor(() => model.status === 'error' && documentErrors.length === 1 && eventErrors.length === 1, { timeoutMs: 10_000, message: 'every subscription ended' });
    expect(model.records).toEqual([]);
    expect(model.getSnapshot().byId.size).toBe(0);
    expect(document.current).toBeUndefined();
    expect([model.error, documentErrors[0], eventErrors[0]].map((error) => isPermissionRevoked(error))).toEqual([true, true, true]);
  });
});

describe('an unauthorized connection (4403)', () => {
  it('shows the refusal in the live model’s error and tells documents and events (onRetry), then clears it once a socket is back', async () => {
    const setup = await setUp();
    let token = await signHs256(FULL);
    const client = connect(setup, () => token);
    const model = client.liveModel('contacts');
    const documentLog: string[] = [];
    const eventsLog: string[] = [];
    const closeCodeOf = (error: Error) => (error instanceof SessionEndedError ? error.closeCode : error.message);
    const document = client.subscribeDocument('boards', 'b1', {
      onDocument: () => void documentLog.push('document'),
      onRetry: (error) => void documentLog.push(`retry ${closeCodeOf(error)}`),
      onResume: () => void documentLog.push('resume'),
    });
    client.subscribeEvents('orders.unauthorized', {
      onEvent: () => {},
      onRetry: (error) => void eventsLog.push(`retry ${closeCodeOf(error)}`),
      onResume: () => void eventsLog.push('resume'),
    });
    await waitFor(() => model.isLive && document.current !== undefined, { timeoutMs: 20_000, message: 'live' });

    // The auth library's session was revoked: its token is refused.
    token = 'not-a-jwt';
    client.reconnect();
    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });
    expect(model.isLive).toBe(false);
    expect(model.error).toBeInstanceOf(SessionEndedError);
    expect((model.error as SessionEndedError).closeCode).toBe(4403);
    expect(documentLog).toEqual(['document', 'retry 4403']);
    expect(eventsLog).toEqual(['retry 4403']);

    token = await signHs256(FULL);
    client.reconnect();
    await waitFor(() => model.isLive && documentLog.length === 4 && eventsLog.length === 2, { timeoutMs: 20_000, message: 'back' });
    expect(model.error).toBeNull();
    expect(documentLog).toEqual(['document', 'retry 4403', 'resume', 'document']);
    expect(eventsLog).toEqual(['retry 4403', 'resume']);
  });
});
