/**
 * Each endpoint's backlog is bounded (`WEBHOOK_MAX_PENDING`). An endpoint with more deliveries
 * pending than that — its receiver down, or slower than what it is sent, or the endpoint disabled
 * while its events keep coming — is marked full in its row: no process's routing tap stores
 * deliveries for it while it is, so the platform database's share of one endpoint stays bounded.
 * Nothing goes silently: the mark is told once as an `endpoint.backlog_full` event (which another
 * endpoint or an alert can forward), shown as the endpoint's `backlogFullSince`, and the events not
 * stored meanwhile are in the event log, where a replay from that time reaches them (within the
 * log's retention). The mark goes once the backlog is worked off below nine tenths of the bound.
 *
 * Run by the workers' housekeeping on the backlog figures it reads anyway (every few seconds).
 */
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { BRIEF_OUTAGE, withRetries } from '../coordination/backoff.ts';
import type { RawEventInput } from '../events/envelope.ts';
import { endpointBacklogFullEvent } from '../events/webhook-event.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { EndpointBacklog } from './delivery-log.ts';
import type { EndpointCache } from './endpoint-cache.ts';
import { setBacklogFull } from './endpoint-store.ts';

export interface BacklogBoundOptions {
  readonly db: Database;
  readonly endpoints: EndpointCache;
  /** Routes the `endpoint.backlog_full` notices. */
  readonly router: EventRouter;
  /** Deliveries an endpoint may have pending (`WEBHOOK_MAX_PENDING`). */
  readonly maxPending: number;
  readonly logger: Logger;
}

/** Below this share of the bound a full endpoint's mark goes: not set and cleared at every other reading. */
const RESUME_BELOW = 0.9;

/** Marks the endpoints whose backlog passed the bound full, and clears the mark of those worked off. */
export async function boundBacklogs(options: BacklogBoundOptions, backlogs: readonly EndpointBacklog[]): Promise<void> {
  const { db, endpoints, maxPending, logger } = options;
  let changed = false;
  const notices: { readonly endpointId: string; readonly notice: RawEventInput }[] = [];
  try {
    for (const { endpointId, pending } of backlogs) {
      const endpoint = endpoints.byId(endpointId);
      if (!endpoint) continue;
      if (endpoint.backlogFullSince === null && pending > maxPending) {
        const marked = await setBacklogFull(db, endpointId, true);
        changed = true;
        // Another process marked it first: it tells.
        if (!marked?.backlogFullSince) continue;
        logger.warn({ endpoint: endpointId, pending, limit: maxPending }, 'webhook endpoint backlog full: no more deliveries stored for it until it is worked off');
        notices.push({
          endpointId,
          notice: endpointBacklogFullEvent({
            scope: { app: marked.app, env: marked.env, tenant: marked.tenant ?? undefined },
            endpointId,
            url: marked.url,
            pending,
            limit: maxPending,
            since: marked.backlogFullSince,
          }),
        });
      } else if (endpoint.backlogFullSince !== null && pending < maxPending * RESUME_BELOW) {
        if (await setBacklogFull(db, endpointId, false)) logger.info({ endpoint: endpointId, pending }, 'webhook endpoint backlog worked off: deliveries stored for it again');
        changed = true;
      }
    }
  } finally {
    // This process's tap sees the marks at once — before they are told, so that an event routed after
    // the notice is not stored here; the other processes' taps within their cache's refresh. A mark
    // stored is told however the pass ended: the next pass finds it marked and tells nothing.
    if (changed) await endpoints.refresh().catch((error: unknown) => logger.warn({ err: error }, 'webhook endpoints not reloaded after a backlog mark; they are within the refresh period'));
    for (const { endpointId, notice } of notices) {
      // At least once, as the endpoint.disabled notice (webhook-deliverer.ts).
      await withRetries(() => options.router.route(notice), {
        ...BRIEF_OUTAGE,
        onRetry: (error) => logger.warn({ err: error, endpoint: endpointId, event: notice.id }, 'endpoint.backlog_full not routed; trying again'),
      }).catch((error: unknown) => logger.error({ err: error, endpoint: endpointId, event: notice.id }, 'endpoint.backlog_full could not be routed'));
    }
  }
}
