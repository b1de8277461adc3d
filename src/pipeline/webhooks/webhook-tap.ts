/**
 * Where routed events become webhook deliveries: after the router placed a batch in the log, the
 * deliveries of every endpoint that selects one of its events are written and the lane heads among
 * them handed to the scheduler — before the router's caller is answered, so an event whose source
 * was acknowledged has its deliveries (a source that routes it again after a crash creates none
 * twice: an initial delivery is unique per endpoint and event id). A failure to store them fails
 * the routing, so the source tries again (at least once, never silently lost).
 *
 * The deliveries go in statements of at most STATEMENT_ROWS rows and STATEMENT_BYTES of bodies, one
 * after another. A CDC chunk is 1,000 events, each selected by every endpoint of its table: as one
 * statement, the body column — one array parameter, which pg turns into one escaped literal with a
 * copy per row — grew the process from 95 to 1,480 MiB for 1,000 events of 21 KB to 5 endpoints,
 * and larger chunks ran it out of heap (and the source, reading the same chunk again, crashed
 * again). In statements, that chunk took ~240 MiB more, and so did one of 66 KB events.
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
import { insertDeliveries, releaseDeliveries, withLateHeads, type LaneHead, type NewDelivery, type StoredDeliveries } from './delivery-store.ts';
import type { EndpointCache } from './endpoint-cache.ts';
import { isOwnLane, laneOf, selectorOf, webhookBody } from './endpoint-selection.ts';

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

/** Routes whose deliveries are stored together at most (the others go with the next write). */
const ROUTES_PER_WRITE = 200;
/** Deliveries one insert statement holds at most. */
export const STATEMENT_ROWS = 1_000;
/**
 * Body bytes one insert statement holds at most (one delivery larger than that goes alone: a body
 * is at most WEBHOOK_MAX_BODY_BYTES). The body column goes as one escaped literal, somewhat larger
 * than the bodies (delivery-store.ts): a statement holds tens of MiB, whatever the chunk weighs.
 */
export const STATEMENT_BYTES = 8 * 1024 * 1024;

export function createWebhookTap(options: WebhookTapOptions): WebhookTap {
  /**
   * Inserts deliveries, those the intake has places for leased and handed to it as soon as the
   * insert has committed (they are stored: whatever fails after it, they are the intake's to send
   * or give back); unused places go back.
   */
  const insertInto = async (intake: DeliveryIntake, deliveries: readonly NewDelivery[]): Promise<StoredDeliveries & { handed: readonly LaneHead[] }> => {
    const { lease, reserved } = reservePlaces(intake, deliveries, options.endpoints);
    let stored;
    try {
      stored = await insertDeliveries(options.db, deliveries, { lease, leaseMs: intake.leaseMs, logger: options.logger });
    } catch (error) {
      for (const [endpointId, places] of reserved) intake.release(endpointId, places);
      throw error;
    }
    const handed = intake.start(stored.leased);
    for (const delivery of stored.leased) reserved.set(delivery.endpointId, (reserved.get(delivery.endpointId) ?? 0) - 1);
    for (const [endpointId, places] of reserved) if (places > 0) intake.release(endpointId, places);
    return { ...stored, handed };
  };
  /**
   * Stores one statement's deliveries; returns the lane heads among them to schedule. Once the
   * insert has committed they are stored: a failure of the look for late heads after it is logged,
   * not the routing's — the heads it would have found are due and unheld, and the workers'
   * reconciler (the embedded loop's look at the table) finds them. Failing the routing instead would
   * have its retry skip these rows as duplicates, and schedule none of them.
   */
  const storeStatement = async (intake: DeliveryIntake | undefined, deliveries: readonly NewDelivery[]): Promise<readonly LaneHead[]> => {
    const stored = intake ? await insertInto(intake, deliveries) : { ...(await insertDeliveries(options.db, deliveries)), handed: [] };
    options.statistics.inserted(stored.inserted.length);
    const { heads } = await withLateHeads(options.db, stored).catch((error: unknown) => {
      options.logger.warn({ err: error }, 'webhook deliveries stored, their late lane heads not looked for; the reconciler queues them');
      return stored;
    });
    return stored.handed.length === 0 ? heads : [...heads, ...stored.handed];
  };
  /**
   * Heads leased for this process's worker whose job was not added: kept for it no longer, their
   * leases given back — due at once for the reconciler instead of when the insert's lease runs out.
   */
  const giveBackUnscheduled = async (intake: DeliveryIntake, heads: readonly LaneHead[]) => {
    const withdrawn = intake.unscheduled(heads.filter((head) => head.lease !== undefined));
    await releaseDeliveries(options.db, withdrawn).catch((error: unknown) => options.logger.warn({ err: error }, 'webhook leases not given back; they run out'));
  };
  /** Tells the scheduler of heads; the deliveries are stored, so a scheduler that cannot take them now (Redis away) loses nothing. */
  const schedule = (intake: DeliveryIntake | undefined, heads: readonly LaneHead[]): Promise<void> =>
    options.scheduler.schedule(heads).catch(async (error: unknown) => {
      options.logger.warn({ err: error }, 'webhook deliveries stored but not queued; the reconciler queues them');
      if (intake) await giveBackUnscheduled(intake, heads);
    });
  // Routes placed together store their deliveries together: as few statements and schedulings as
  // their size allows. Their order is the order they were submitted in, which keeps each entity's
  // order (the router submits an entity's next batch only after this one is stored and its heads
  // queued); the statements of a write go one after another, each committed before the next, whose
  // insert then sees the earlier ones' deliveries pending in their lanes (not heads: only a lane's
  // oldest pending delivery is). Only the statements wait for one another: a statement's heads are
  // queued while the next is stored — the order jobs are added in does not matter, as only a lane's
  // head is ever claimed.
  const store = createGroupCommit<readonly NewDelivery[], { readonly scheduled: Promise<void> }>({
    async write(batches) {
      const intake = options.scheduler.intake();
      const scheduling: Promise<void>[] = [];
      // The statements before a failed one have committed: their heads are queued all the same (the
      // source's retry skips their rows as duplicates, and would queue none of them).
      for (const deliveries of statementsOf(batches.flat())) {
        const heads = await storeStatement(intake, deliveries);
        if (heads.length > 0) scheduling.push(schedule(intake, heads));
      }
      const scheduled = Promise.all(scheduling).then(() => undefined);
      return batches.map(() => ({ scheduled }));
    },
    maxBatch: ROUTES_PER_WRITE,
  });
  return {
    async deliver(events) {
      if (options.endpoints.current().length === 0) return;
      const deliveries: NewDelivery[] = [];
      for (const event of events) {
        // Live screens' figures, every few seconds: not an event to deliver.
        if (isDashboardEvent(event)) continue;
        // Its own environment's endpoints only: no other's can select it.
        const { scope } = event.metadata;
        const endpoints = options.endpoints.inScope(scope.app, scope.env);
        if (endpoints.length === 0) continue;
        const selected = selectorOf(event);
        let body: string | undefined;
        const about = aboutEndpoint(event);
        for (const endpoint of endpoints) {
          // An endpoint is never told about itself (a disabled endpoint's notice must not loop back to
          // it); one whose backlog is full gets nothing stored (backlog-bound.ts: it was told so).
          if (endpoint.id === about || endpoint.backlogFullSince !== null || !selected(endpoint)) continue;
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
 * Deliveries in insert statements of at most `maxRows` rows and `maxBytes` of bodies, in order (one
 * delivery larger than `maxBytes` goes alone).
 */
function statementsOf(deliveries: readonly NewDelivery[], maxRows = STATEMENT_ROWS, maxBytes = STATEMENT_BYTES): NewDelivery[][] {
  const statements: NewDelivery[][] = [];
  let statement: NewDelivery[] = [];
  let statementBytes = 0;
  let body: string | undefined;
  let bytes = 0;
  for (const delivery of deliveries) {
    // An event's deliveries to several endpoints share its body, one after another: measured once.
    if (delivery.body !== body) {
      body = delivery.body;
      bytes = Buffer.byteLength(body);
    }
    if (statement.length > 0 && (statement.length >= maxRows || statementBytes + bytes > maxBytes)) {
      statements.push(statement);
      statement = [];
      statementBytes = 0;
    }
    statement.push(delivery);
    statementBytes += bytes;
  }
  if (statement.length > 0) statements.push(statement);
  return statements;
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
