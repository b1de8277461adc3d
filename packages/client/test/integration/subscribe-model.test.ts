/**
 * subscribeModel (the server-to-server stream) against a real server reading a real Postgres: a
 * connection lost before the first change loses nothing, and a request the server refuses for
 * good stops the subscription with the server's code instead of being retried forever.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { subscribeModel, TributaryRequestError, type ModelChangeEvent } from '@tributary/client';
import { CONTACTS_MAPPING, insertContact, nextChange, saveMappingOk, setUpCdc, subscribeChanges } from '../../../../test/helpers/cdc.ts';
import { startTcpProxy } from '../../../../test/helpers/tcp-proxy.ts';
import { signHs256, type TokenClaims } from '../../../../test/helpers/tokens.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

const READER: TokenClaims = { tenant: 'a', permissions: ['crm.contacts.read'] };

describe('subscribeModel', () => {
  it('delivers a change committed while the connection was down before any change arrived (no `after` given)', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256(READER);
    const proxy = await startTcpProxy(Number(new URL(setup.server.wsUrl).port));
    const subscribers = setup.server.stats().subscribers;
    // A second subscriber, straight to the server: once it has a change, the server has dispatched it.
    const witness = await subscribeChanges(setup, READER, { m: 'contacts' });
    const seen: ModelChangeEvent[] = [];
    const subscription = subscribeModel({
      url: `ws://127.0.0.1:${proxy.port}/graphql`,
      token: () => token,
      model: 'contacts',
      maxRetryDelayMs: 200,
      onChange: (change) => void seen.push(change),
    });
    onTestFinished(async () => {
      subscription.close();
      await subscription.closed;
    });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 2, { message: 'both subscribed' });

    proxy.refuse(true);
    proxy.dropAll();
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'the service’s socket dropped' });
    await insertContact(setup, 'a', 'During the gap');
    expect((await nextChange(witness, 'c')).record?.['name']).toBe('During the gap');
    proxy.refuse(false);
    await waitFor(() => setup.server.stats().subscribers === subscribers + 2, { timeoutMs: 10_000, message: 'resubscribed' });
    await insertContact(setup, 'a', 'After the gap');
    await waitFor(() => seen.some((change) => change.record?.['name'] === 'After the gap'), { timeoutMs: 15_000, message: 'the later change' });
    expect(seen.map((change) => change.record?.['name'])).toEqual(['During the gap', 'After the gap']);
  });

  it('stops on a request the server refuses for good (BAD_USER_INPUT): one report, with the code, and `closed` settles', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256(READER);
    const errors: unknown[] = [];
    const subscription = subscribeModel({
      url: setup.server.wsUrl,
      token: () => token,
      model: 'contacts',
      filter: { status: 'nonsense' },
      maxRetryDelayMs: 50,
      onChange: () => {},
      onError: (error) => void errors.push(error),
    });
    onTestFinished(async () => {
      subscription.close();
      await subscription.closed;
    });
    // Retried, it would be reported again within a few pauses of at most 50 ms.
    const outcome = await Promise.race([
      subscription.closed.then(() => 'closed'),
      waitFor(() => errors.length > 1, { timeoutMs: 20_000 }).then(() => 'retried'),
    ]);
    expect(outcome).toBe('closed');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(TributaryRequestError);
    expect((errors[0] as TributaryRequestError).code).toBe('BAD_USER_INPUT');
  });
});
