/**
 * What an application's handler threw (`onEvent`, `onDocument`, a live model's callbacks or
 * listeners), where the client cannot hand it back to the caller: it goes on with the stream and
 * the other handlers, and the error goes to the client's `onError` — or, without one, is thrown
 * again in a microtask, as an EventTarget reports a listener's error: never lost, never in the
 * stream's way. (Thrown into graphql-ws, it would close the socket and restart every subscription.)
 */
export type HandlerErrorReport = (error: unknown) => void;

export function handlerErrorReport(onError: ((error: unknown) => void) | undefined): HandlerErrorReport {
  return (
    onError ??
    ((error) =>
      queueMicrotask(() => {
        throw error;
      }))
  );
}

/** Calls `call` for every listener, in order, even when one throws; each error is reported. */
export function callEach<L>(listeners: Iterable<L>, call: (listener: L) => void, report: HandlerErrorReport): void {
  for (const listener of [...listeners]) {
    try {
      call(listener);
    } catch (error) {
      report(error);
    }
  }
}
