/**
 * What a replay sends: the endpoint's events of a time range from the event log — so events never
 * attempted (the endpoint is newer, or was disabled) are reached too, within the log's retention —
 * and, for events older than the log holds, copies of the endpoint's own deliveries; with
 * `onlyFailed`, its dead letters only. Oldest first, both in one order: an entity's lane may have
 * events of both.
 *
 * Planned first by what orders each delivery and what its body weighs (ids, event times, sizes:
 * never a body), then read again a page at a time — up to REPLAY_PAGE_ROWS deliveries and
 * REPLAY_PAGE_BYTES of bodies — each page stored before the next is read (admin-deliveries.ts). A
 * replay holds one page in memory, whatever its events weigh: 3,000 events of 62 KB, every body
 * built and all of them sent as one statement's array (pg makes one escaped literal of it), took
 * the process from 93 MiB to 2.1 GiB; 10,000 ran it out of heap.
 *
 * From the endpoint's deliveries an event counts once (its first delivery is the one copied), and
 * an event whose latest dead delivery was followed by one pending or delivered (redelivered since,
 * and through) has not failed any more: it is neither replayed nor counted against the replay's limit.
 */
import type { Queryable } from '../../db/database.ts';
import { isDashboardEvent } from '../events/dashboard-event.ts';
import type { RealtimeEvent } from '../events/envelope.ts';
import { aboutEndpoint } from '../events/webhook-event.ts';
import { mergeInOrder, mergeOldestFirst, type EventLog } from '../log/event-log.ts';
import type { Scope } from '../scope.ts';
import { streamOf } from '../stream.ts';
import { copyOf, type AdminDeliveries } from './admin-deliveries.ts';
import { laterLiveDeliveries } from './delivery-log.ts';
import { DELIVERY_COLUMNS, deliveryOf, type Delivery, type DeliveryRow, type DeliveryTrigger, type NewDelivery } from './delivery-store.ts';
import { laneOf, selects, webhookBody } from './endpoint-selection.ts';
import type { WebhookEndpoint } from './endpoint-store.ts';

/** Deliveries one page holds at most: one read of the log's and of the deliveries', one insert statement. */
const REPLAY_PAGE_ROWS = 500;
/** Bodies one page holds at most, in bytes (a page holds one delivery however large, a body being at most WEBHOOK_MAX_BODY_BYTES). */
const REPLAY_PAGE_BYTES = 4 * 1024 * 1024;
/** The endpoint's deliveries read per statement while planning, newest first. */
const STORED_PAGE = 500;

export interface ReplayRange {
  readonly since: Date;
  readonly until: Date;
  readonly onlyFailed: boolean;
}

export interface ReplayOptions {
  readonly db: Queryable;
  readonly log: EventLog;
  readonly endpoint: WebhookEndpoint;
  readonly range: ReplayRange;
  /** Events one replay sends at most. */
  readonly limit: number;
  /** Largest body sent; a larger event goes without its data (`webhookBody`). */
  readonly maxBodyBytes: number;
}

/** A delivery of the endpoint's a replay copies, as planned: what orders it and what its body weighs. */
export interface StoredCopy {
  readonly id: string;
  readonly eventId: string;
  /** Its event's time, in ms since the epoch. */
  readonly eventTime: number;
  readonly bytes: number;
}

/** An event of the log a replay sends, as planned: without its payload (read again with its page). */
interface LoggedEvent {
  readonly event: RealtimeEvent;
  /** Its stream's key. */
  readonly stream: string;
  readonly bytes: number;
}

type Planned = ({ readonly from: 'log' } & LoggedEvent) | ({ readonly from: 'store' } & StoredCopy);

/** The replay's deliveries, planned: how many, and themselves a page at a time; undefined when the range holds more than `limit` events. */
export async function planReplay(options: ReplayOptions): Promise<AdminDeliveries | undefined> {
  const { db, endpoint, range, limit } = options;
  const logged = range.onlyFailed ? [] : await loggedEvents(options);
  if (!logged) return undefined;
  // Older than what the log still holds (or dead letters only): the endpoint's own deliveries.
  const stored = await deliveriesToReplay(db, endpoint.id, range, new Set(logged.map(({ event }) => event.id)), limit - logged.length);
  if (!stored) return undefined;
  const planned = mergeInOrder<Planned>(
    stored.map((copy) => ({ from: 'store', ...copy })),
    logged.map((event) => ({ from: 'log', ...event })),
    (fromLog, fromStore) => timeOf(fromLog) < timeOf(fromStore),
  );
  return { count: planned.length, pages: (tx) => pagesOf(tx, options, planned) };
}

function timeOf(planned: Planned): number {
  return planned.from === 'log' ? planned.event.metadata.timestamp : planned.eventTime;
}

/**
 * The endpoint's events in the log, in `eventsBetween`'s order (oldest first, a stream's in its
 * log's order); undefined when there are more than `limit`. Each is noted as the log reads it, its
 * payload let go — none is kept but to end the read once past the limit.
 */
async function loggedEvents({ log, endpoint, range, limit, maxBodyBytes }: ReplayOptions): Promise<LoggedEvent[] | undefined> {
  const inScope = (scope: Scope) => scope.app === endpoint.app && scope.env === endpoint.env && (endpoint.tenant === null || scope.tenant === endpoint.tenant);
  // Chosen as the tap chooses them (webhook-tap.ts) before they are counted, so no number of the
  // environment's other events can crowd the endpoint's out of the limit.
  const delivered = (event: RealtimeEvent) => !isDashboardEvent(event) && selects(endpoint, event) && aboutEndpoint(event) !== endpoint.id;
  /** Each stream's events, in its log's order (the log reads a stream at a time). */
  const streams = new Map<string, RealtimeEvent[]>();
  const noted = new Map<RealtimeEvent, LoggedEvent>();
  let found = 0;
  const note = (event: RealtimeEvent): boolean => {
    if (!delivered(event)) return false;
    found += 1;
    // Past the limit the replay is refused: this one is kept, which ends its stream's read (a limit
    // of one), so the rest of the range is not read for nothing.
    if (found > limit) return true;
    const stream = streamOf(event.metadata.scope, event.topic).key;
    const outline: RealtimeEvent = { ...event, payload: {} };
    noted.set(outline, { event: outline, stream, bytes: Buffer.byteLength(webhookBody(event, maxBodyBytes)) });
    const events = streams.get(stream);
    if (events) events.push(outline);
    else streams.set(stream, [outline]);
    return false;
  };
  await log.eventsBetween(inScope, note, range.since.getTime(), range.until.getTime(), 1);
  if (found > limit) return undefined;
  let ordered: RealtimeEvent[] = [];
  for (const events of streams.values()) ordered = mergeOldestFirst(ordered, events, limit);
  return ordered.map((outline) => noted.get(outline)!);
}

/** The planned deliveries a page at a time, each page read (with `tx`) once the one before was stored. */
async function* pagesOf(tx: Queryable, options: ReplayOptions, planned: readonly Planned[]): AsyncGenerator<NewDelivery[]> {
  let start = 0;
  while (start < planned.length) {
    let end = start + 1;
    let bytes = planned[start]!.bytes;
    while (end < planned.length && end - start < REPLAY_PAGE_ROWS && bytes + planned[end]!.bytes <= REPLAY_PAGE_BYTES) bytes += planned[end++]!.bytes;
    yield await readPage(tx, options, planned.slice(start, end));
    start = end;
  }
}

/**
 * A page's deliveries, in its order. An event the log has let go of since the plan (its retention
 * ran out meanwhile) is copied from the endpoint's first delivery of it, as a replay begun a moment
 * later would have; a copy whose delivery was pruned since (past the delivery log's retention) is
 * left out, as that replay would have left it — as is an event gone from both.
 */
async function readPage(tx: Queryable, { log, endpoint, maxBodyBytes }: ReplayOptions, page: readonly Planned[]): Promise<NewDelivery[]> {
  const logged = page.flatMap((planned) => (planned.from === 'log' ? [planned] : []));
  const events = await readAgain(log, logged);
  const gone = logged.filter(({ event }) => !events.has(event.id)).map(({ event }) => event.id);
  const firstOf = await firstDeliveries(tx, endpoint.id, gone);
  const copies = await deliveriesById(
    tx,
    page.flatMap((planned) => (planned.from === 'store' ? [planned.id] : [])),
  );
  return page.flatMap((planned): NewDelivery[] => {
    if (planned.from === 'store') {
      const copy = copies.get(planned.id);
      return copy ? [copyOf(copy, 'replay')] : [];
    }
    const event = events.get(planned.event.id);
    if (event) {
      return [{ endpointId: endpoint.id, eventId: event.id, eventType: event.type, topic: event.topic, lane: laneOf(event), body: webhookBody(event, maxBodyBytes), trigger: 'replay', eventTime: new Date(event.metadata.timestamp) }];
    }
    const first = firstOf.get(planned.event.id);
    return first ? [copyOf(first, 'replay')] : [];
  });
}

/** The log's events of a page, with their payloads, by id: one read of the page's streams over the page's times. */
async function readAgain(log: EventLog, page: readonly LoggedEvent[]): Promise<Map<string, RealtimeEvent>> {
  if (page.length === 0) return new Map();
  const wanted = new Map(page.map(({ event, stream }) => [event.id, stream]));
  const streams = new Set(wanted.values());
  const times = page.map(({ event }) => event.metadata.timestamp);
  const events = await log.eventsBetween(
    (scope, topic) => streams.has(streamOf(scope, topic).key),
    (event) => wanted.get(event.id) === streamOf(event.metadata.scope, event.topic).key,
    Math.min(...times),
    Math.max(...times) + 1,
    page.length,
  );
  return new Map(events.map((event) => [event.id, event]));
}

/** Deliveries by id (those still there). */
async function deliveriesById(db: Queryable, ids: readonly string[]): Promise<Map<string, Delivery>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = ANY($1::bigint[])`, [ids]);
  return new Map(rows.map((row) => [row.id, deliveryOf(row)]));
}

/** Each of the events' first delivery to the endpoint (test events aside), by event id. Rarely run: only for events the log let go of during a replay. */
async function firstDeliveries(db: Queryable, endpointId: string, eventIds: readonly string[]): Promise<Map<string, Delivery>> {
  if (eventIds.length === 0) return new Map();
  const { rows } = await db.query<DeliveryRow>(
    `SELECT DISTINCT ON (d.event_id) ${DELIVERY_COLUMNS} FROM webhook_deliveries d
      WHERE d.endpoint_id = $1 AND d.event_id = ANY($2::text[]) AND d.trigger <> 'test' ORDER BY d.event_id, d.id`,
    [endpointId, eventIds],
  );
  return new Map(rows.map((row) => [row.event_id, deliveryOf(row)]));
}

/** A delivery as planning reads it: no body, only its size. */
type OutlineRow = { id: string; event_id: string; trigger: DeliveryTrigger; event_time: number; bytes: number };

/** The endpoint's deliveries of events in the range (dead ones only with `onlyFailed`), newest first, below `before`. */
async function listOutlines(db: Queryable, endpointId: string, range: ReplayRange, before: string | undefined): Promise<OutlineRow[]> {
  const { rows } = await db.query<OutlineRow>(
    `SELECT d.id::text AS id, d.event_id, d.trigger, floor(extract(epoch FROM d.event_time) * 1000)::float8 AS event_time, octet_length(d.body) AS bytes
       FROM webhook_deliveries d
      WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.state = $2) AND d.event_time >= $3 AND d.event_time < $4
        AND ($5::bigint IS NULL OR d.id < $5::bigint)
      ORDER BY d.id DESC LIMIT $6::int`,
    [endpointId, range.onlyFailed ? 'dead' : null, range.since, range.until, before ?? null, STORED_PAGE],
  );
  return rows;
}

/**
 * The endpoint's deliveries of events in the range but not in `skip` (dead ones only with
 * `onlyFailed`), each event's oldest, test events left out, in their events' order — by event time,
 * then by id: an event's oldest delivery may be a replay's copy made after a later event's first
 * delivery (the endpoint was created after the event); undefined when they are of more than `room`
 * events.
 */
export async function deliveriesToReplay(db: Queryable, endpointId: string, range: ReplayRange, skip: ReadonlySet<string>, room: number): Promise<StoredCopy[] | undefined> {
  /**
   * Each event's oldest delivery read so far (the one copied), but those of events left out as
   * mended: no more than `room` events' at the end of a page — never a whole range's deliveries.
   */
  const oldestOf = new Map<string, StoredCopy>();
  /** With onlyFailed: events not yet looked at for a live delivery since, by their latest dead one's id. */
  const unchecked = new Map<string, bigint>();
  /** Events whose latest dead delivery was followed by a live one: left out, and not counted. */
  const mended = new Set<string>();
  /**
   * Looks at the unchecked events for a live delivery after their latest dead one (each above
   * `after`, the oldest delivery read so far). One statement for all of them: made when the count
   * would refuse the replay, and once at the end — not per page, as each reads the endpoint's
   * deliveries from `after` on.
   */
  const leaveOutMended = async (after: string) => {
    const live = await laterLiveDeliveries(db, endpointId, [...unchecked.keys()], after);
    for (const [eventId, id] of live) {
      if (BigInt(id) <= unchecked.get(eventId)!) continue;
      mended.add(eventId);
      oldestOf.delete(eventId);
    }
    unchecked.clear();
  };
  /** The oldest delivery read so far: every unchecked event's latest is at or above it. */
  let oldest: string | undefined;
  for (;;) {
    const page = await listOutlines(db, endpointId, range, oldest);
    for (const row of page) {
      if (row.trigger === 'test' || skip.has(row.event_id) || mended.has(row.event_id)) continue;
      // Listed newest first: an event's first listed is its latest (dead, with onlyFailed), its last its oldest.
      if (range.onlyFailed && !oldestOf.has(row.event_id)) unchecked.set(row.event_id, BigInt(row.id));
      oldestOf.set(row.event_id, { id: row.id, eventId: row.event_id, eventTime: row.event_time, bytes: row.bytes });
    }
    oldest = page.at(-1)?.id ?? oldest;
    if (oldestOf.size > room && unchecked.size > 0 && oldest !== undefined) await leaveOutMended(oldest);
    if (oldestOf.size > room) return undefined;
    if (page.length < STORED_PAGE) break;
  }
  if (unchecked.size > 0 && oldest !== undefined) await leaveOutMended(oldest);
  return [...oldestOf.values()].sort((a, b) => a.eventTime - b.eventTime || (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
}
