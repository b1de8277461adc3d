/**
 * Where routed events become webhook deliveries: after the router placed a batch in the log, the
 * deliveries of every endpoint that selects one of its events are written (one statement) and the
 * lane heads among them handed to the scheduler — before the router's caller is answered, so an
 * event whose source was acknowledged has its deliveries (a source that routes it again after a
 * crash creates none twice: an initial delivery is unique per endpoint and event id). A failure to
 * store them fails the routing, so the source tries again (at least once, never silently lost).
 *
 * When this process's delivery worker takes deliveries straight from here (`scheduler.intake()`:
 * the embedded loop, or the BullMQ worker of a process that runs one), an event's own-lane
 * deliveries to enabled endpoints are leased by the insert within the places it reserved, and
 * handed to it: they are sent without a claim between.
 */
import type { Queryable } from '../../db/database.ts';
import { createGroupCommit } from '../coordination/group-commit.ts';
import type { Logger } from '../../logger.ts';
import type { RealtimeEvent } from '../events/envelope.ts';
import { isDashboardEvent } from '../events/dashboard-event.ts';
import { aboutEndpoint } from '../events/webhook-event.ts';
import type { DeliveryIntake, DeliveryScheduler } from './delivery-scheduler.ts';
import type { DeliveryStatistics } from './delivery-statistics.ts';
import { releaseDeliveries, storeDeliveries, type LaneHead, type NewDelivery } from './delivery-store.ts';
import type { EndpointCache } from './endpoint-cache.ts';
import { isOwnLane, laneOf, selects, webhookBody } from './endpoint-selection.ts';

export interface WebhookTap {
  /** Writes and schedules the deliveries of `events` (placed, in order). */
  deliver(events: readonly RealtimeEvent[]): Promise<void>;
}

export interface WebhookTapOptions {
  readonly db: Queryable;
  readonly endpoints: EndpointCache;
  readonly scheduler: DeliveryScheduler;
  /** Told how many deliveries each statement stored. */
  readonly statistics: DeliveryStatistics;
  readonly logger: Logger;
  /** Largest body sent; a larger event goes without its data. */
  readonly maxBodyBytes: number;
}

/** Routes whose deliveries are stored in one statement at most (the others go with the next). */
const ROUTES_PER_STATEMENT = 200;

export function createWebhookTap(options: WebhookTapOptions): WebhookTap {
  /** Stores deliveries, those the intake has places for leased and handed to it; unused places go back. */
  const storeInto = async (intake: DeliveryIntake, deliveries: readonly NewDelivery[]) => {
    const { lease, reserved } = reservePlaces(intake, deliveries, options.endpoints);
    let stored;
    try {
      stored = await storeDeliveries(options.db, deliveries, { lease, leaseMs: intake.leaseMs });
    } catch (error) {
      for (const [endpointId, places] of reserved) intake.release(endpointId, places);
      throw error;
    }
    const toSchedule = intake.start(stored.leased);
    for (const delivery of stored.leased) reserved.set(delivery.endpointId, (reserved.get(delivery.endpointId) ?? 0) - 1);
    for (const [endpointId, places] of reserved) if (places > 0) intake.release(endpointId, places);
    return { inserted: stored.inserted, heads: toSchedule.length === 0 ? stored.heads : [...stored.heads, ...toSchedule] };
  };
  /**
   * Heads leased for this process's worker whose job was not added: kept for it no longer, their
   * leases given back — due at once for the reconciler instead of when the insert's lease runs out.
   */
  const giveBackUnscheduled = async (intake: DeliveryIntake, heads: readonly LaneHead[]) => {
    const withdrawn = intake.unscheduled(heads.filter((head) => head.lease !== undefined));
    await releaseDeliveries(options.db, withdrawn).catch((error: unknown) => options.logger.warn({ err: error }, 'webhook leases not given back; they run out'));
  };
  // Routes placed together store their deliveries together: one statement and one scheduling for
  // all of them. Their order is the order they were submitted in, which keeps each entity's order
  // (the router submits an entity's next batch only after this one is stored and its heads queued).
  // Only the statements wait for one another: a batch's heads are queued while the next batch is
  // stored — the order jobs are added in does not matter, as only a lane's head is ever claimed.
  const store = createGroupCommit<readonly NewDelivery[], { readonly scheduled: Promise<void> }>({
    async write(batches) {
      const deliveries = batches.flat();
      const intake = options.scheduler.intake();
      const { inserted, heads } = intake ? await storeInto(intake, deliveries) : await storeDeliveries(options.db, deliveries);
      options.statistics.inserted(inserted.length);
      // The deliveries are stored: a scheduler that cannot take them now (Redis away) loses
      // nothing, the workers' reconciler finds due lane heads without a job.
      const scheduled =
        heads.length === 0
          ? Promise.resolve()
          : options.scheduler.schedule(heads).catch(async (error: unknown) => {
              options.logger.warn({ err: error }, 'webhook deliveries stored but not queued; the reconciler queues them');
              if (intake) await giveBackUnscheduled(intake, heads);
            });
      return batches.map(() => ({ scheduled }));
    },
    maxBatch: ROUTES_PER_STATEMENT,
  });
  return {
    async deliver(events) {
      const endpoints = options.endpoints.current();
      if (endpoints.length === 0) return;
      const deliveries: NewDelivery[] = [];
      for (const event of events) {
        // Live screens' figures, every few seconds: not an event to deliver.
        if (isDashboardEvent(event)) continue;
        let body: string | undefined;
        const about = aboutEndpoint(event);
        for (const endpoint of endpoints) {
          // An endpoint is never told about itself (a disabled endpoint's notice must not loop back to
          // it); one whose backlog is full gets nothing stored (backlog-bound.ts: it was told so).
          if (endpoint.id === about || endpoint.backlogFullSince !== null || !selects(endpoint, event)) continue;
          body ??= webhookBody(event, options.maxBodyBytes);
          deliveries.push({
            endpointId: endpoint.id,
            eventId: event.id,
            eventType: event.type,
            topic: event.topic,
            lane: laneOf(event),
            body,
            trigger: 'initial',
            eventTime: new Date(event.metadata.timestamp),
          });
        }
      }
      if (deliveries.length > 0) await (await store.submit(deliveries)).scheduled;
    },
  };
}

/**
 * Places the intake gives for the deliveries that may be leased as they are stored (their event's
 * own lane, an enabled endpoint), in order; `lease[i]` marks those that got one.
 */
function reservePlaces(intake: DeliveryIntake, deliveries: readonly NewDelivery[], endpoints: EndpointCache): { lease: boolean[]; reserved: Map<string, number> } {
  const eligible = deliveries.map(
    (delivery) => delivery.trigger === 'initial' && isOwnLane(delivery.lane) && endpoints.byId(delivery.endpointId)?.enabled === true,
  );
  const wanted = new Map<string, number>();
  deliveries.forEach(({ endpointId }, index) => {
    if (eligible[index]) wanted.set(endpointId, (wanted.get(endpointId) ?? 0) + 1);
  });
  const reserved = new Map<string, number>();
  for (const [endpointId, count] of wanted) {
    const got = intake.reserve(endpointId, count);
    if (got > 0) reserved.set(endpointId, got);
  }
  const left = new Map(reserved);
  const lease = deliveries.map(({ endpointId }, index) => {
    const places = left.get(endpointId) ?? 0;
    if (!eligible[index] || places === 0) return false;
    left.set(endpointId, places - 1);
    return true;
  });
  return { lease, reserved };
}
