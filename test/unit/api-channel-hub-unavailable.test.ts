import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { createChannelHub, type ChannelMessage, type ChannelTransport } from '../../src/pipeline/channels/channel-hub.ts';
import type { Scope } from '../../src/pipeline/scope.ts';

const SCOPE: Scope = { app: 'shop', env: 'prod', tenant: 't1' };
const MESSAGE: ChannelMessage = { channel: 'room', event: 'say', data: 1 };

/** A transport whose SUBSCRIBEs wait until the test settles them, as one queued behind a dead link does. */
function stalledTransport() {
  const pending: { resolve: (unsubscribe: () => void) => void }[] = [];
  const transport: ChannelTransport = {
    publish: () => Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false")),
    subscribe: () => new Promise((resolve) => pending.push({ resolve })),
  };
  return { transport, pending };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('channel hub when its transport fails', () => {
  it('answers a broadcast the transport cannot send with UNAVAILABLE, keeping the failure as its cause', async () => {
    const hub = createChannelHub({ transport: stalledTransport().transport });
    const refused = await hub.broadcast(SCOPE, MESSAGE).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(TributaryError);
    expect(refused).toMatchObject({ code: ErrorCode.UNAVAILABLE, message: expect.stringMatching(/retry shortly/) as unknown });
    expect((refused as Error).cause).toMatchObject({ message: expect.stringMatching(/Stream isn't writeable/) as unknown });
  });

  it('fails a join whose subscription has not landed within joinTimeoutMs (5 s by default) with UNAVAILABLE, and undoes the subscription when it lands late', async () => {
    vi.useFakeTimers();
    const { transport, pending } = stalledTransport();
    const hub = createChannelHub({ transport });
    const joining = hub.join(SCOPE, 'room');
    const outcome = joining.then(
      () => 'joined',
      (error: unknown) => error,
    );
    await vi.advanceTimersByTimeAsync(4_999);
    expect(hub.memberCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(await outcome).toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(hub.memberCount()).toBe(0);

    // Nothing of the failed join is reused: the next one subscribes afresh.
    const again = hub.join(SCOPE, 'room');
    expect(pending).toHaveLength(2);
    const unsubscribeLate = vi.fn();
    pending[0]!.resolve(unsubscribeLate);
    pending[1]!.resolve(() => undefined);
    const member = await again;
    expect(unsubscribeLate).toHaveBeenCalledOnce();
    expect(hub.memberCount()).toBe(1);
    await member.return?.();
  });

  it('answers a join the transport refuses with UNAVAILABLE, passing a TributaryError through as it is', async () => {
    const refusal = new TributaryError(ErrorCode.UNAVAILABLE, 'no connection to Redis; retry shortly');
    let subscribeCalls = 0;
    const transport: ChannelTransport = {
      publish: () => Promise.resolve(),
      subscribe: () => {
        subscribeCalls += 1;
        return subscribeCalls === 1 ? Promise.reject(refusal) : Promise.reject(new Error('connection reset'));
      },
    };
    const hub = createChannelHub({ transport });
    await expect(hub.join(SCOPE, 'room')).rejects.toBe(refusal);
    await expect(hub.join(SCOPE, 'room')).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, cause: { message: 'connection reset' } });
    expect(subscribeCalls).toBe(2);
    expect(hub.memberCount()).toBe(0);
  });
});
