/**
 * A subscription served per subscriber (an async iterator, not a `DispatchTicket`) carries the
 * same check as a ticket's `readableBy`: whether a principal may go on receiving it, asked again
 * when the socket's token is refreshed. The transport reads it with `readableByOf`; a source
 * without one is refused, so that no subscription can outlive a revoked permission.
 */
import type { Principal } from '../../auth/principal.ts';

const READABLE_BY = new WeakMap<object, (principal: Principal) => boolean>();

/** Marks `source` with the check its `subscribe` made of the principal; returns it. */
export function guardedStream<T>(source: AsyncIterableIterator<T>, readableBy: (principal: Principal) => boolean): AsyncIterableIterator<T> {
  READABLE_BY.set(source, readableBy);
  return source;
}

/** The check `source` was marked with, if any. */
export function readableByOf(source: object): ((principal: Principal) => boolean) | undefined {
  return READABLE_BY.get(source);
}
