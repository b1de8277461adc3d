/**
 * subscribeModel against a real server reading a real Postgres (CDC): the same service's next
 * token reaches the server on a NEW connection with other permissions than the position was read
 * under. The server filters `changes` by the token's permissions — a stream it may no longer read
 * is answered with silence, one it now may read brings rows the service never saw — so resuming
 * from the cursor would leave the consumer's copy stale for good: the reconnect is a resync instead
 * (the position read again, `onResync`, the stream from that position). With the same grants it
 * resumes from the cursor, as before, and `onResync` is not called.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { subscribeModel, type ModelChangeEvent } from '@tributary/client';
import { CONTACTS_MAPPING, deniedChanges, insertContact, nextChange, saveMappingOk, setUpCdc, subscribeChanges, type CdcSetup } from '../../../../test/helpers/cdc.ts';
import { startTcpProxy, type TcpProxy } from '../../../../test/helpers/tcp-proxy.ts';
import { signHs256, type TokenClaims } from '../../../../test/helpers/tokens.ts';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import type { RawSocket } from '../../../../test/helpers/ws-client.ts';

const READER: TokenClaims = { sub: 'svc', tenant: 'a', permissions: ['crm.contacts.read'] };
/** The same service and tenant, a permission added: the model still readable, the grants other. */
const WIDER: TokenClaims = { sub: 'svc', tenant: 'a', permissions: ['crm.contacts.read', 'orders.read'] };
/** The same service and tenant, the model's permission taken away. */
const NO_READ: TokenClaims = { sub: 'svc', tenant: 'a', permissions: ['orders.read'] };

interface Running {
  readonly setup: CdcSetup;
  readonly proxy: TcpProxy;
  /** A second subscriber, straight to the server: once it has a change, the server has dispatched it. */
  readonly witness: RawSocket;
  readonly names: () => (string | undefined)[];
  readonly resyncs: () => number;
  /** Sets the claims the token function signs from the next connection on. */
  readonly tokenOf: (claims: TokenClaims) => void;
  readonly subscribers: number;
}

/** A subscription under READER through a proxy, with a change `before` handled. */
async function start(): Promise<Running> {
  const setup = await setUpCdc();
  await saveMappingOk(setup, CONTACTS_MAPPING);
  const proxy = await startTcpProxy(Number(new URL(setup.server.wsUrl).port));
  const subscribers = setup.server.stats().subscribers;
  const witness = await subscribeChanges(setup, READER, { m: 'contacts' });
  let claims = READER;
  const seen: ModelChangeEvent[] = [];
  let resyncs = 0;
  const subscription = subscribeModel({
    url: `ws://127.0.0.1:${proxy.port}/graphql`,
    token: () => signHs256(claims),
    model: 'contacts',
    maxRetryDelayMs: 200,
    onChange: (change) => void seen.push(change),
    onResync: () => void (resyncs += 1),
  });
  onTestFinished(async () => {
    subscription.close();
    await subscription.closed;
  });
  await waitFor(() => setup.server.stats().subscribers === subscribers + 2, { message: 'both subscribed' });
  await insertContact(setup, 'a', 'before');
  expect((await nextChange(witness, 'c')).record?.['name']).toBe('before');
  await waitFor(() => seen.length === 1, { timeoutMs: 15_000, message: 'the first change' });
  return {
    setup,
    proxy,
    witness,
    names: () => seen.map((change) => change.record?.['name'] as string | undefined),
    resyncs: () => resyncs,
    tokenOf: (next) => void (claims = next),
    subscribers,
  };
}

/** Drops the service's connection, commits `during` while it is down, and lets it reconnect. */
async function dropAndCommit(running: Running): Promise<void> {
  const { setup, proxy, witness, subscribers } = running;
  proxy.refuse(true);
  proxy.dropAll();
  await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'the service’s socket dropped' });
  await insertContact(setup, 'a', 'during');
  expect((await nextChange(witness, 'c')).record?.['name']).toBe('during');
  proxy.refuse(false);
}

describe('subscribeModel on a new connection whose token grants other reads', () => {
  it('resyncs when a permission was added: onResync, then the stream from the position read after the reconnect', async () => {
    const running = await start();
    running.tokenOf(WIDER);
    await dropAndCommit(running);
    await waitFor(() => running.setup.server.stats().subscribers === running.subscribers + 2, { timeoutMs: 10_000, message: 'resubscribed' });
    await insertContact(running.setup, 'a', 'after');
    await waitFor(() => running.names().includes('after'), { timeoutMs: 15_000, message: 'the later change' });
    expect(running.resyncs()).toBe(1);
    // `during` was committed before the position was read again: onResync's refetch holds it.
    expect(running.names()).toEqual(['before', 'after']);
  });

  it('resyncs when the model’s permission was removed: the stream the server now leaves silent is not resumed as if nothing changed', async () => {
    const running = await start();
    const denied = await deniedChanges(running.setup.server);
    running.tokenOf(NO_READ);
    await dropAndCommit(running);
    await waitFor(async () => (await deniedChanges(running.setup.server)) > denied, { timeoutMs: 10_000, message: 'resubscribed, denied silently' });
    expect(running.resyncs()).toBe(1);
    expect(running.names()).toEqual(['before']);
  });

  it('resumes from the cursor without onResync when the new token grants the same', async () => {
    const running = await start();
    // A token signed again from the same claims: another token, the same grants.
    running.tokenOf({ ...READER });
    await dropAndCommit(running);
    await waitFor(() => running.setup.server.stats().subscribers === running.subscribers + 2, { timeoutMs: 10_000, message: 'resubscribed' });
    await insertContact(running.setup, 'a', 'after');
    await waitFor(() => running.names().includes('after'), { timeoutMs: 15_000, message: 'the later change' });
    expect(running.resyncs()).toBe(0);
    expect(running.names()).toEqual(['before', 'during', 'after']);
  });
});
