import { GraphQLError } from 'graphql';
import type { Principal } from '../../auth/principal.ts';
import { ErrorCode } from '../../errors.ts';
import { subjectKeyOf } from './subject-quota.ts';

/**
 * The filter bytes one principal — its app, env, tenant and subject — holds in its active
 * subscriptions on this instance, across all its sockets (`WS_MAX_FILTER_BYTES_PER_SUBJECT`).
 * Every event of a topic is matched against the filter of each subscription to it, so what one
 * token's filters hold is what each event costs the instance for it: the bounds of one filter
 * (16 KiB of values), of a socket (`WS_MAX_SUBSCRIPTIONS`) and of a principal's sockets
 * (`WS_MAX_CONNECTIONS_PER_SUBJECT`) let one token hold 100 × 100 filters of 16 KiB that never
 * match, ~0.42 s of the event loop per event, every other tenant's events waiting behind it. At
 * the default 256 KiB the costliest filters measured take ~1.1 ms per event (`events(where:)`)
 * and ~0.4–1.2 ms (`changes(filter:)`, a row value read once per record: model-filter-value.ts).
 */
export interface FilterBudget {
  /** `bytes` more of `principal`'s filters: the function that gives them back, or undefined when they would take it past the budget. */
  take(principal: Principal, bytes: number): (() => void) | undefined;
  /** The error a subscription refused by `take` ends with: RATE_LIMITED, as past a socket's `WS_MAX_SUBSCRIPTION_BYTES`. */
  refusal(bytes: number): GraphQLError;
}

/**
 * What the executor asks with a subscription's filter bytes, before it makes the subscription's
 * source: undefined when they are admitted, else the error that refuses the subscription.
 */
export type FilterAdmission = (bytes: number) => GraphQLError | undefined;

/** `max` undefined: no budget (development mode, where every caller is one principal — as `createSubjectQuota`). */
export function createFilterBudget(max: number | undefined): FilterBudget {
  const held = new Map<string, number>();
  return {
    take(principal, bytes) {
      if (max === undefined || bytes <= 0) return () => {};
      const key = subjectKeyOf(principal);
      const total = (held.get(key) ?? 0) + bytes;
      if (total > max) return undefined;
      held.set(key, total);
      let given = false;
      return () => {
        if (given) return;
        given = true;
        const left = (held.get(key) ?? bytes) - bytes;
        if (left > 0) held.set(key, left);
        else held.delete(key);
      };
    },
    refusal(bytes) {
      const message = `The filters of this subject's active subscriptions on this instance would exceed WS_MAX_FILTER_BYTES_PER_SUBJECT (${max ?? 0} bytes as JSON; this one: ${bytes}): complete one, or subscribe without a filter`;
      return new GraphQLError(message, { extensions: { code: ErrorCode.RATE_LIMITED } });
    },
  };
}
