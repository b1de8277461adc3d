/**
 * Each endpoint's own limits — attempts in flight and attempts started per second — so a slow or
 * failing endpoint occupies at most its share of the workers and never delays another. Shared
 * through Redis by every worker process (a sorted set of leases per endpoint, taken and given back
 * in batches; rate-limiter-flexible's Redis limiter), or kept in memory in the embedded mode.
 *
 * The Redis gate is `redis-endpoint-gate.ts`.
 */
import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

export interface GatedEndpoint {
  readonly id: string;
  readonly maxConcurrency: number;
  readonly rateLimitPerSecond: number | null;
}

/**
 * A slot, or how long to wait. `release` (never rejects) gives the slot back: the gate counts it
 * free for every later acquire of its own (this process's) from the call on; its promise settles
 * once the slot is taken by one of them, or once it is free for the other processes' gates too
 * (with Redis, about `KEEP_MS` later and a round trip — `redis-endpoint-gate.ts` — or when that
 * failed: the lease then runs out). Nothing needs to wait for it: `close` gives back what is kept.
 */
export type GateAnswer = { readonly ok: true; release(): Promise<void> } | { readonly ok: false; readonly retryInMs: number };

export interface EndpointGate {
  /** A slot for one attempt, or how long to wait before asking again. */
  acquire(endpoint: GatedEndpoint): Promise<GateAnswer>;
  /**
   * Gives back every slot released and still kept; resolves once Redis has answered for those and
   * for every give-back already under way (best effort: a lease it could not give back runs out).
   * A slot released after it goes straight back.
   */
  close(): Promise<void>;
}

/** When an endpoint is at its concurrency, ask again after about this long, in ms. */
export const BUSY_RETRY_MS = 250;

/** Rate limiters by rate: every endpoint with the same rate shares one (keys are per endpoint). */
export function limiters(make: (points: number) => RateLimiterAbstract): (rate: number) => RateLimiterAbstract {
  const byRate = new Map<number, RateLimiterAbstract>();
  return (rate) => {
    let limiter = byRate.get(rate);
    if (!limiter) byRate.set(rate, (limiter = make(rate)));
    return limiter;
  };
}

/** 0 when the limiter (if any) lets one more attempt start now; otherwise how long to wait, in ms. */
export async function withinRate(limiter: RateLimiterAbstract | undefined, key: string): Promise<number> {
  if (!limiter) return 0;
  try {
    await limiter.consume(key);
    return 0;
  } catch (error) {
    if (error instanceof RateLimiterRes) return Math.max(1, error.msBeforeNext);
    throw error;
  }
}

export function createMemoryGate(): EndpointGate {
  const inFlight = new Map<string, number>();
  const limiterOf = limiters((points) => new RateLimiterMemory({ points, duration: 1 }));
  return {
    async acquire(endpoint) {
      if ((inFlight.get(endpoint.id) ?? 0) >= endpoint.maxConcurrency) return { ok: false, retryInMs: BUSY_RETRY_MS };
      const wait = await withinRate(endpoint.rateLimitPerSecond === null ? undefined : limiterOf(endpoint.rateLimitPerSecond), endpoint.id);
      if (wait > 0) return { ok: false, retryInMs: wait };
      // Checked again with no await before taking the slot: another acquire may have taken it meanwhile.
      const busy = inFlight.get(endpoint.id) ?? 0;
      if (busy >= endpoint.maxConcurrency) return { ok: false, retryInMs: BUSY_RETRY_MS };
      inFlight.set(endpoint.id, busy + 1);
      let released = false;
      return {
        ok: true,
        release() {
          if (!released) {
            released = true;
            const left = (inFlight.get(endpoint.id) ?? 1) - 1;
            if (left <= 0) inFlight.delete(endpoint.id);
            else inFlight.set(endpoint.id, left);
          }
          return Promise.resolve();
        },
      };
    },
    close: () => Promise.resolve(),
  };
}
