/**
 * An endpoint enabled again: the deliveries that waited for it go now — not when each comes due
 * again (a disabled endpoint's are put back for an hour at a time: webhook-deliverer.ts), nor after
 * the Retry-After or the retry tail they were waiting out when it was disabled.
 *
 * Only a lane's head is ever leased, so only heads are ever postponed: the rest of a lane waits
 * for its head alone, and is made due as it becomes the head (migration 0024; but, rarely, one that
 * was its lane's head before — an earlier delivery of the lane committed after it had been
 * attempted — and keeps the time it was given then). Making the heads due is what resumes the endpoint: a page of its lanes at a time,
 * one statement each, stepping through the lane index from one lane to the next (a probe each,
 * however long the lane), and the heads it made due scheduled. The admin's request does the first
 * page and answers; a larger backlog (up to `WEBHOOK_MAX_PENDING` lanes) is gone through in the
 * background, page after page. What the request does, holds in memory and hands the scheduler is
 * one page whatever the backlog: one statement for all of it took 4.6–6 s at 200,000 waiting
 * lanes, and returned every head at once; a page of 1,000 lanes takes ~25 ms (the 200 pages of
 * that backlog, 5.4 s in all).
 *
 * Paging, and leaving the rest to the background, keeps what the one statement guaranteed:
 * - Order: an entity's deliveries go out one at a time, in order, whichever lanes are made due
 *   first — a claim only ever takes a lane's oldest pending delivery (`IS_LANE_HEAD`).
 * - Nothing is lost: the deliveries are rows in Postgres, each with its due time. A head the
 *   background did not reach — the process stopped, Postgres was away past the retries — keeps
 *   the time it has there and goes then: within the hour for one put back while the endpoint was
 *   disabled (as if no enable had come), at its retry for one waiting out a retry. A head made due
 *   whose job could not be added is found due (the reconciler, the embedded loop's look at the table).
 */
import type { Queryable } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { BRIEF_OUTAGE, createBackoff, pause } from '../coordination/backoff.ts';
import type { DeliveryScheduler } from './delivery-scheduler.ts';
import { laneHeadOf, type LaneHead } from './delivery-store.ts';

/** Lanes one page looks at: the most heads one request (or one background step) makes due and schedules. */
export const RESUME_PAGE_LANES = 1_000;

export interface ResumedPage {
  /** The heads this page made due (each was due later), oldest first. */
  readonly heads: LaneHead[];
  /** The page's last lane, to go on after; undefined when there is none after it, or the endpoint is not enabled (any more). */
  readonly next: string | undefined;
}

/**
 * Makes due now the heads still due later of up to `limit` of the endpoint's lanes with pending
 * deliveries — the lanes after `after` (`''`: from the first), in the lane index's order — while the
 * endpoint is enabled. One statement: the lanes are stepped through with a probe of the index each
 * (a recursive query: a loose index scan), so a page costs its lanes, not their deliveries.
 * A head finished meanwhile is left alone: the update reads its row again once the finish commits.
 */
export async function resumeLanes(db: Queryable, endpointId: string, after: string, limit: number): Promise<ResumedPage> {
  const { rows } = await db.query<{ last: string | null; lanes: number; enabled: boolean; heads: string[] }>(
    `WITH RECURSIVE lanes(lane) AS (
       (SELECT d.lane FROM webhook_deliveries d WHERE d.endpoint_id = $1 AND d.state = 'pending' AND d.lane > $2 ORDER BY d.lane LIMIT 1)
       UNION ALL
       SELECT (SELECT d.lane FROM webhook_deliveries d WHERE d.endpoint_id = $1 AND d.state = 'pending' AND d.lane > l.lane ORDER BY d.lane LIMIT 1)
         FROM lanes l WHERE l.lane IS NOT NULL),
     page AS MATERIALIZED (SELECT lane FROM lanes WHERE lane IS NOT NULL LIMIT $3::int),
     made AS (
       UPDATE webhook_deliveries d SET next_attempt_at = now() FROM page p
        WHERE d.id = (SELECT min(e.id) FROM webhook_deliveries e WHERE e.endpoint_id = $1 AND e.lane = p.lane AND e.state = 'pending')
          AND d.state = 'pending' AND d.next_attempt_at > now()
          AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = $1 AND w.enabled)
       RETURNING d.id)
     SELECT (SELECT max(lane) FROM page) AS last, (SELECT count(*)::int FROM page) AS lanes,
            coalesce((SELECT w.enabled FROM webhook_endpoints w WHERE w.id = $1), false) AS enabled,
            coalesce((SELECT array_agg(m.id::text ORDER BY m.id) FROM made m), '{}') AS heads`,
    [endpointId, after, limit],
  );
  const row = rows[0]!;
  return {
    heads: row.heads.map((id) => laneHeadOf({ id, endpoint_id: endpointId })),
    next: row.enabled && row.lanes >= limit && row.last !== null ? row.last : undefined,
  };
}

/**
 * A delivery held for its disabled endpoint (a `410 Gone`) made due now if the endpoint is enabled
 * by now: an enable that came between the disable and the record could not move it for good (its
 * record, later, set the hold). True when it did; an enable after the record finds it itself.
 */
export async function resumeHeldIfEnabled(db: Queryable, deliveryId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE webhook_deliveries d SET next_attempt_at = now()
      WHERE d.id = $1::bigint AND d.state = 'pending' AND d.leased_until IS NULL AND d.next_attempt_at > now()
        AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.enabled)`,
    [deliveryId],
  );
  return rowCount > 0;
}

export interface EndpointResume {
  /**
   * The endpoint was just enabled (or an admin asked for its waiting retries now): makes a first
   * page of its waiting heads due and schedules them, and goes through the rest of its lanes in the
   * background. Returns how many heads the first page made due. Never rejects — the enable is made
   * whatever happens here: a page that fails is logged (0 returned) and left to the background,
   * which tries again, and whose last failure leaves the rest to come due on its own.
   */
  resume(endpointId: string): Promise<number>;
  /** Stops the background after the page under way, and waits for it (what it did not reach comes due on its own). */
  close(): Promise<void>;
}

export interface EndpointResumeOptions {
  readonly db: Queryable;
  readonly scheduler: DeliveryScheduler;
  readonly logger: Logger;
  /** Lanes a page looks at. @default RESUME_PAGE_LANES */
  readonly pageLanes?: number;
}

export function createEndpointResume(options: EndpointResumeOptions): EndpointResume {
  const { db, scheduler, logger } = options;
  const pageLanes = options.pageLanes ?? RESUME_PAGE_LANES;
  /** The drain under way of each endpoint: a new enable of the endpoint starts over, and the older one stops. */
  const draining = new Map<string, AbortController>();
  const running = new Set<Promise<void>>();
  const closing = new AbortController();

  /** One page made due and its heads scheduled: what it made due, and where to go on from. */
  const page = async (endpointId: string, after: string): Promise<ResumedPage> => {
    const resumed = await resumeLanes(db, endpointId, after, pageLanes);
    const { heads } = resumed;
    // Due in Postgres now: heads whose jobs cannot be added (Redis away) are found due all the same.
    await scheduler.scheduleNow(heads).catch((error: unknown) => logger.warn({ err: error, endpoint: endpointId, heads: heads.length }, 'webhook deliveries made due not scheduled; they are found due'));
    return resumed;
  };

  const drain = async (endpointId: string, from: string, signal: AbortSignal) => {
    let after: string | undefined = from;
    // A moment's outage is ridden out; a longer one stops the drain, and the rest goes when it comes due.
    const backoff = createBackoff(BRIEF_OUTAGE);
    while (after !== undefined && !signal.aborted) {
      try {
        after = (await page(endpointId, after)).next;
        backoff.reset();
      } catch (error) {
        if (backoff.failures >= BRIEF_OUTAGE.tries - 1) {
          logger.warn({ err: error, endpoint: endpointId }, 'webhook deliveries of an enabled endpoint not all made due; the rest go when they come due');
          return;
        }
        logger.warn({ err: error, endpoint: endpointId }, 'webhook deliveries of an enabled endpoint not made due; trying again');
        await pause(backoff.next(), signal);
      }
    }
  };

  return {
    async resume(endpointId) {
      draining.get(endpointId)?.abort();
      const controller = new AbortController();
      draining.set(endpointId, controller);
      let next: string | undefined;
      let madeDue = 0;
      try {
        const first = await page(endpointId, '');
        next = first.next;
        madeDue = first.heads.length;
      } catch (error) {
        // The enable stands: the background tries again from the first lane.
        logger.warn({ err: error, endpoint: endpointId }, 'webhook deliveries of an enabled endpoint not made due; trying again in the background');
        next = '';
      }
      if (next === undefined || closing.signal.aborted) {
        if (draining.get(endpointId) === controller) draining.delete(endpointId);
        return madeDue;
      }
      const signal = AbortSignal.any([controller.signal, closing.signal]);
      // Never rejects: a page that fails is logged, and tried again or given up.
      const task: Promise<void> = drain(endpointId, next, signal).finally(() => {
        running.delete(task);
        if (draining.get(endpointId) === controller) draining.delete(endpointId);
      });
      running.add(task);
      return madeDue;
    },
    async close() {
      closing.abort();
      await Promise.all(running);
    },
  };
}
