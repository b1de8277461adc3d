/**
 * A warning in the log of the process whose attempt was refused for its target's address (a
 * loopback, private or metadata address: `webhook-http.ts`). The refusal is recorded as the
 * attempt's outcome, where an admin looks; the operator looks at the logs of the process that
 * delivers — with role `workers`, not the server's — and there it must say which setting allows
 * such targets. Once per endpoint per `everyMs`, with the number of refusals not logged since:
 * an endpoint's deliveries are retried for days, and a burst of events would log each one.
 */
import type { Logger } from '../../logger.ts';

export interface RefusedTargetWarningsOptions {
  readonly logger: Logger;
  /** Shortest time between two warnings of one endpoint, in ms. @default 300000 (5 minutes) */
  readonly everyMs?: number;
  /** The clock, in ms. @default Date.now */
  readonly now?: () => number;
}

export interface RefusedTargetWarnings {
  /** An attempt to `endpointId` was refused for its address; `error` is the attempt's. */
  refused(endpointId: string, error: string | null): void;
}

const EVERY_MS = 300_000;
/**
 * Endpoints remembered at most; past it, those last warned about over `everyMs` ago are forgotten
 * (they would be warned about at their next refusal anyway), and if none is, all are: a few
 * warnings more, never memory without bound.
 */
const MAX_ENDPOINTS = 10_000;

const REFUSED_TARGET_WARNING =
  'webhook attempt refused: the endpoint\'s address is not public (loopback, private, link-local or metadata); set WEBHOOK_ALLOW_PRIVATE_TARGETS=true on every process that delivers (role all or workers) to allow it in tests and development';

export function createRefusedTargetWarnings(options: RefusedTargetWarningsOptions): RefusedTargetWarnings {
  const everyMs = options.everyMs ?? EVERY_MS;
  const now = options.now ?? Date.now;
  /** By endpoint: when it was last warned about, and its refusals not logged since. */
  const warned = new Map<string, { at: number; unlogged: number }>();

  const forgetOld = (at: number) => {
    for (const [endpointId, entry] of warned) if (at - entry.at >= everyMs) warned.delete(endpointId);
    if (warned.size >= MAX_ENDPOINTS) warned.clear();
  };

  return {
    refused(endpointId, error) {
      const at = now();
      const entry = warned.get(endpointId);
      if (entry !== undefined && at - entry.at < everyMs) {
        entry.unlogged += 1;
        return;
      }
      if (entry === undefined && warned.size >= MAX_ENDPOINTS) forgetOld(at);
      options.logger.warn(
        { endpoint: endpointId, error, refusedUnlogged: entry?.unlogged ?? 0, nextWarningAfterMs: everyMs },
        REFUSED_TARGET_WARNING,
      );
      warned.set(endpointId, { at, unlogged: 0 });
    },
  };
}
