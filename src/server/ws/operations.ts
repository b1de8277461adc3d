import type { ExecutionResult, GraphQLFormattedError } from 'graphql';
import type { ID } from 'graphql-ws';
import type { Principal } from '../../auth/principal.ts';
import { ErrorCode } from '../../errors.ts';
import type { DispatchSubscription } from '../../pipeline/dispatch/dispatcher.ts';
import { CloseCode } from './close-codes.ts';
import type { FilterAdmission, FilterBudget } from './filter-budget.ts';

/** An operation started by `subscribe` and not yet finished. */
export interface ActiveOperation {
  /** Set when the client sent `complete` or the socket closed: nothing more is sent for it. */
  cancelled: boolean;
  /** A per-subscriber subscription's results, stopped with `return()`. */
  results: AsyncIterableIterator<ExecutionResult> | undefined;
  /** A dispatched subscription, stopped with `dispose()`. */
  dispatched: DispatchSubscription | undefined;
  /** Whether a refreshed principal may go on reading it (the ticket's `readableBy`). */
  readableBy: ((principal: Principal) => boolean) | undefined;
  /** Size of its `subscribe` message, in bytes: what the operation may hold for its life. */
  readonly bytes: number;
  /** Gives its filter's bytes back to its principal's budget (`filterAdmission`): called when the operation is forgotten. */
  givesBackFilter?: () => void;
}

/** What one socket's active operations may hold together. */
export interface OperationBounds {
  /** @see Limits.maxSubscriptionsPerConnection */
  readonly maxOperations: number;
  /** @see Limits.maxSubscriptionBytesPerConnection */
  readonly maxBytes: number;
}

/**
 * Longest operation id a client may choose. The protocol sets no bound, but the socket keeps
 * every active id (and one prefix per dispatched subscription) for the operation's life: without
 * one, 100 operations of megabyte ids would hold 100 MB per socket.
 */
const MAX_OPERATION_ID_LENGTH = 128;

/** Why a `subscribe` may not start: the socket closes, or the operation alone ends with `errors`. */
export type Refusal =
  | { readonly kind: 'close'; readonly code: CloseCode; readonly reason: string }
  | { readonly kind: 'error'; readonly errors: readonly GraphQLFormattedError[] };

/**
 * Whether a `subscribe` of `bytes` may start operation `id` beside the `active` ones, which hold
 * `activeBytes` together: undefined when it may.
 */
export function refusalOf(id: ID, bytes: number, active: ReadonlyMap<ID, ActiveOperation>, activeBytes: number, bounds: OperationBounds): Refusal | undefined {
  const { maxOperations, maxBytes } = bounds;
  if (id.length > MAX_OPERATION_ID_LENGTH) {
    return { kind: 'close', code: CloseCode.BadRequest, reason: `Operation id longer than ${MAX_OPERATION_ID_LENGTH} characters` };
  }
  if (active.has(id)) return { kind: 'close', code: CloseCode.SubscriberAlreadyExists, reason: `Subscriber for ${id} already exists` };
  if (active.size >= maxOperations) {
    return {
      kind: 'error',
      errors: [{ message: `Too many active operations on this connection (limit ${maxOperations})`, extensions: { code: ErrorCode.RATE_LIMITED } }],
    };
  }
  if (activeBytes + bytes > maxBytes) {
    const message = `The active operations of this connection would exceed ${maxBytes} bytes of subscribe messages (this one: ${bytes})`;
    return { kind: 'error', errors: [{ message, extensions: { code: ErrorCode.RATE_LIMITED } }] };
  }
  return undefined;
}

/**
 * The admission of `operation`'s filter: its bytes are charged to `principal` in `budget` and kept
 * in `givesBackFilter` until the operation is forgotten, however it ends. An operation cancelled
 * while the executor was on its way (the client's `complete`, the socket's close) is not charged:
 * it was forgotten already, and nobody would give the bytes back.
 */
export function filterAdmission(budget: FilterBudget, principal: Principal, operation: ActiveOperation): FilterAdmission {
  return (bytes) => {
    if (operation.cancelled) return undefined;
    const giveBack = budget.take(principal, bytes);
    if (!giveBack) return budget.refusal(bytes);
    operation.givesBackFilter = giveBack;
    return undefined;
  };
}
