/**
 * Release signals for leader elections, over one subscriber connection shared by every election
 * of the process (the connection that already carries the live bus may be used: a SUBSCRIBE
 * connection can hold many channels, and other listeners ignore channels they do not know).
 *
 * A signal is a hint that a lock may be free, never a guarantee: elections still poll. So a
 * listener is also called once its SUBSCRIBE is confirmed and whenever the connection comes back,
 * because a release may have been published while it was not listening.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../logger.ts';

export interface ReleaseSignals {
  /**
   * Calls `onSignal` for every message on `channel` (and see the module comment). Resolves once
   * the first SUBSCRIBE was tried (confirmed, or failed while Redis is away: it is retried when
   * the connection is back); the returned function stops listening.
   */
  listen(channel: string, onSignal: () => void): Promise<() => Promise<void>>;
  /**
   * Unsubscribes every channel still listened to and takes this module's listeners off the
   * connection, which stays open: it is shared, and its owner closes it (after this). `listen`
   * then rejects. Idempotent.
   */
  close(): Promise<void>;
}

export function createReleaseSignals(subscriber: Redis, logger: Logger): ReleaseSignals {
  const listeners = new Map<string, Set<() => void>>();
  let closed: Promise<void> | undefined;
  const notify = (channel: string) => listeners.get(channel)?.forEach((listener) => listener());
  const subscribe = (channel: string): Promise<void> =>
    subscriber.subscribe(channel).then(
      () => notify(channel),
      (error: unknown) => logger.debug({ err: error, channel }, 'release signal subscription failed; polling until the connection is back'),
    );
  /** The waits of `nextError` under way: settled by `close` too. */
  const waiting = new Set<() => void>();
  /** Settles at the next connection error: a SUBSCRIBE queued while Redis is away must not hold up the caller. */
  const nextError = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        subscriber.off('error', done);
        subscriber.off('ready', done);
        waiting.delete(done);
        resolve();
      };
      waiting.add(done);
      subscriber.once('error', done);
      subscriber.once('ready', done);
    });
  const onMessage = (channel: string) => notify(channel);
  // SUBSCRIBE again after a reconnect: also covers a first SUBSCRIBE that failed while Redis was away.
  const onReady = () => {
    for (const channel of listeners.keys()) void subscribe(channel);
  };
  subscriber.on('message', onMessage);
  subscriber.on('ready', onReady);
  return {
    async listen(channel, onSignal) {
      if (closed) throw new Error('release signals: listen() after close()');
      let set = listeners.get(channel);
      let tried: Promise<void> = Promise.resolve();
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
        if (subscriber.status === 'ready') {
          tried = subscribe(channel);
        } else {
          // Not connected yet: the 'ready' handler subscribes; wait for it, or for a failure.
          tried = nextError().then(() => (subscriber.status === 'ready' && !closed ? subscribe(channel) : undefined));
          if (subscriber.status === 'wait') subscriber.connect().catch(() => {}); // errors arrive as 'error' events
        }
      }
      set.add(onSignal);
      const own = set;
      await tried;
      return async () => {
        own.delete(onSignal);
        if (own.size > 0 || listeners.get(channel) !== own) return;
        listeners.delete(channel);
        if (subscriber.status === 'ready') await subscriber.unsubscribe(channel).catch(() => undefined);
      };
    },
    close() {
      closed ??= (async () => {
        subscriber.off('message', onMessage);
        subscriber.off('ready', onReady);
        for (const done of [...waiting]) done();
        const channels = [...listeners.keys()];
        listeners.clear();
        // Away, the connection holds no SUBSCRIBE to undo (ioredis would replay them on reconnect,
        // but its owner is about to close it).
        if (channels.length > 0 && subscriber.status === 'ready') await subscriber.unsubscribe(...channels).catch(() => undefined);
      })();
      return closed;
    },
  };
}
