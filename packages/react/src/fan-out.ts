/**
 * One event to every mounted hook's callback, even when one of them throws: a component's failing
 * handler must not keep the others from hearing of the event. The first error is thrown again once
 * every callback ran; the client reports it (its `onError`) and the stream goes on.
 */
export function callEach<C>(callbacks: Iterable<{ readonly current: C }>, call: (current: C) => void): void {
  let failure: { readonly error: unknown } | undefined;
  for (const ref of [...callbacks]) {
    try {
      call(ref.current);
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
}
