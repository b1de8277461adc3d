/**
 * Slow endpoints get a share of a process's attempts of their own, so they never hold up the rest.
 *
 * A process sends at most `WEBHOOK_CONCURRENCY` attempts at once, and an endpoint at most its
 * `maxConcurrency`. Without more, a few endpoints that hang (each up to the timeout) take every
 * slot between them — five at the defaults, 10 each of 50 — and every other endpoint's deliveries
 * wait behind them. So an attempt still waiting for its receiver after `slowAfterMs` leaves the
 * process's slots for a separate, bounded share (`capacity`), and its endpoint counts as slow: its
 * next attempts start in that share, or — when the share is full — are postponed rather than
 * taking a slot from an endpoint that answers. An endpoint is slow until one of its attempts is
 * answered within `slowAfterMs`.
 *
 * While the share is full, a slow endpoint's `limit` is what it has in the share (one at least):
 * the delivery loops hold it to that like to its maxConcurrency — its deliveries wait unleased
 * instead of being claimed and put back over and over.
 *
 * What can still wait: the first attempts of an endpoint not known to be slow, when the share is
 * full, keep their slots until they end (at most `maxConcurrency` of each, up to the timeout once).
 */

export interface SlowEndpointsOptions {
  /** An attempt waiting for its receiver longer than this is slow, in ms. */
  readonly slowAfterMs: number;
  /** Slow attempts in flight at once, beyond the process's slots. */
  readonly capacity: number;
}

/** One attempt's standing: started in the slow share, or moved there while it waited. */
export interface SlowWatch {
  /** The attempt's HTTP part is over: answered after `answeredInMs` (an answer within `slowAfterMs` ends the endpoint's slowness), or not sent (undefined). */
  end(answeredInMs: number | undefined): void;
}

export interface SlowEndpoints {
  /** Slow attempts in flight at once at most. */
  readonly capacity: number;
  /**
   * An attempt to the endpoint is about to be sent. Undefined: the endpoint is slow and its share
   * is full — do not send it now. Otherwise `moved` is called (once) when the attempt goes to the
   * slow share — at once for a slow endpoint, after `slowAfterMs` for another: from then it takes
   * none of the caller's slots.
   */
  begin(endpointId: string, moved: () => void): SlowWatch | undefined;
  /** Whether the endpoint is slow now. */
  isSlow(endpointId: string): boolean;
  /**
   * The attempts the endpoint may have in this process, given its maxConcurrency (undefined: not
   * known): that, or — slow — no more than it has in the share and the share's free places, and one
   * at least (an endpoint with none there still gets an attempt now and then, which finds room or not).
   */
  limit(endpointId: string, maxConcurrency: number | undefined): number | undefined;
}

/** Slow endpoints remembered at most (ids of endpoints deleted meanwhile go when it is reached). */
const MAX_SLOW_ENDPOINTS = 10_000;

export function createSlowEndpoints(options: SlowEndpointsOptions): SlowEndpoints {
  const slow = new Set<string>();
  /** Attempts counted in the slow share now, in all and by endpoint. */
  let inShare = 0;
  const inShareOf = new Map<string, number>();
  return {
    capacity: options.capacity,
    isSlow: (endpointId) => slow.has(endpointId),
    limit(endpointId, maxConcurrency) {
      if (!slow.has(endpointId)) return maxConcurrency;
      const share = Math.max(1, (inShareOf.get(endpointId) ?? 0) + options.capacity - inShare);
      return maxConcurrency === undefined ? share : Math.min(maxConcurrency, share);
    },
    begin(endpointId, moved) {
      let counted = false;
      const take = () => {
        counted = true;
        inShare += 1;
        inShareOf.set(endpointId, (inShareOf.get(endpointId) ?? 0) + 1);
        moved();
      };
      let timer: NodeJS.Timeout | undefined;
      if (slow.has(endpointId)) {
        if (inShare >= options.capacity) return undefined;
        take();
      } else {
        timer = setTimeout(() => {
          timer = undefined;
          if (slow.size >= MAX_SLOW_ENDPOINTS) slow.clear();
          slow.add(endpointId);
          if (inShare < options.capacity) take();
        }, options.slowAfterMs);
        timer.unref();
      }
      let ended = false;
      return {
        end(answeredInMs) {
          if (ended) return;
          ended = true;
          clearTimeout(timer);
          if (counted) {
            inShare -= 1;
            const left = (inShareOf.get(endpointId) ?? 1) - 1;
            if (left > 0) inShareOf.set(endpointId, left);
            else inShareOf.delete(endpointId);
          }
          if (answeredInMs !== undefined && answeredInMs < options.slowAfterMs) slow.delete(endpointId);
        },
      };
    },
  };
}
