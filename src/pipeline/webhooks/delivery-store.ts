/**
 * Webhook deliveries and their attempts in the platform database (migration 0007): the durable
 * record of what must reach which endpoint, in every mode. One function per statement (but
 * `headsAmong` and `storeDeliveries`, which need their statements in a row, and `insertDeliveries`,
 * which gives back a lease it should not have taken). The statements every delivery runs — the
 * insert, the claim by id, the record — are functions of the schema (migration 0012), planned once
 * per connection.
 *
 * A delivery belongs to a lane — its endpoint and its event's entity. Only a lane's head (its
 * oldest pending delivery) may be attempted, so an entity's events reach an endpoint in order: a
 * later one waits until the earlier one was delivered or dead-lettered. A worker attempting a
 * delivery holds a lease on it; a worker that dies mid-attempt loses it when the lease runs out.
 */
import type { Queryable } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import type { AttemptOutcome } from './attempt-outcome.ts';
import { TAKEN_ORDER } from './taken-order.ts';

export type DeliveryTrigger = 'initial' | 'replay' | 'manual' | 'test';
export type DeliveryState = 'pending' | 'delivered' | 'dead';

export interface NewDelivery {
  readonly endpointId: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly topic: string;
  readonly lane: string;
  readonly body: string;
  readonly trigger: DeliveryTrigger;
  readonly eventTime: Date;
}

/** A delivery that is its lane's head (attemptable when due), and whose endpoint it goes to. */
export interface LaneHead {
  readonly id: string;
  readonly endpointId: string;
  /** The lease its insert took for a worker of that process (BullMQ): a claim may take it over. */
  readonly lease?: string | undefined;
}

export interface Delivery extends NewDelivery {
  readonly id: string;
  readonly state: DeliveryState;
  readonly attempts: number;
  readonly firstAttemptAt: Date | null;
  /** Null: waiting for its lane's head, due when that finishes (migration 0024). */
  readonly nextAttemptAt: Date | null;
  readonly lastStatus: number | null;
  readonly lastError: string | null;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
  /**
   * The lease it is held under (its `leased_until`, exact, as text; null: not leased): recording,
   * postponing or releasing it applies only while the row still holds this lease — once it ran out
   * and another holder claimed the delivery, a late record moves nothing (migration 0014).
   */
  readonly lease: string | null;
}

/** A `webhook_deliveries` row as selected with `DELIVERY_COLUMNS`. */
export type DeliveryRow = {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  topic: string;
  lane: string;
  body: string;
  trigger: DeliveryTrigger;
  state: DeliveryState;
  attempts: number;
  /** Timestamps in ms since the epoch (see `DELIVERY_COLUMNS`). */
  first_attempt_at: number | null;
  next_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  event_time: number;
  created_at: number;
  finished_at: number | null;
  lease: string | null;
};

/**
 * A timestamp column as whole milliseconds since the epoch (cut, as a Date from its text would
 * be): a number is read far faster than timestamp text, and every claimed row has five. Null
 * unless `when` (a follower's next_attempt_at, 'infinity', is read as null).
 */
const millis = (column: string, when = 'true') => `CASE WHEN ${when} THEN floor(extract(epoch FROM d.${column}) * 1000)::float8 END AS ${column}`;

export const DELIVERY_COLUMNS = `d.id::text AS id, d.endpoint_id, d.event_id, d.event_type, d.topic, d.lane, d.body, d.trigger, d.state, d.attempts,
  ${millis('first_attempt_at')}, ${millis('next_attempt_at', "d.next_attempt_at < 'infinity'")}, d.last_status, d.last_error, ${millis('event_time')}, ${millis('created_at')}, ${millis('finished_at')}, d.leased_until::text AS lease`;

/**
 * `d` (pending) is its lane's head: the oldest pending delivery of its lane. A scalar subquery, not
 * `NOT EXISTS`: the planner turns that into an anti join over every pending delivery (a hash of
 * the whole backlog per claim), where this is one probe of the lane index per row looked at — and
 * a claim looks at a few rows in due order, stopping at its limit.
 */
export const IS_LANE_HEAD = `d.id = (SELECT min(e.id) FROM webhook_deliveries e
  WHERE e.endpoint_id = d.endpoint_id AND e.lane = d.lane AND e.state = 'pending')`;

export function deliveryOf(row: DeliveryRow): Delivery {
  return {
    id: row.id,
    endpointId: row.endpoint_id,
    eventId: row.event_id,
    eventType: row.event_type,
    topic: row.topic,
    lane: row.lane,
    body: row.body,
    trigger: row.trigger,
    state: row.state,
    attempts: row.attempts,
    firstAttemptAt: row.first_attempt_at === null ? null : new Date(row.first_attempt_at),
    nextAttemptAt: row.next_attempt_at === null ? null : new Date(row.next_attempt_at),
    lastStatus: row.last_status,
    lastError: row.last_error,
    eventTime: new Date(row.event_time),
    createdAt: new Date(row.created_at),
    finishedAt: row.finished_at === null ? null : new Date(row.finished_at),
    lease: row.lease,
  };
}

/** What inserting deliveries gave: the ids stored, the lane heads among them (not leased), and those the insert leased. */
export interface StoredDeliveries {
  readonly inserted: string[];
  readonly heads: LaneHead[];
  /** Leased by the insert (`lease` asked it): heads to attempt now, by whoever asked. */
  readonly leased: Delivery[];
}

/**
 * Inserts deliveries in order (one statement); an initial delivery of an event the endpoint
 * already has is skipped, as is one to an endpoint deleted meanwhile (a process's endpoint cache
 * may still hold it for a moment; migrations/0019). `lease[i]` asks for delivery i to be leased for `leaseMs` as it is
 * stored — only for an initial delivery on its event's own lane (`laneOf` without an entity),
 * which nothing precedes but a redelivery of the same event. Such a delivery is leased without
 * looking at its lane first (a second probe of the lane index in every insert, for a case that
 * hardly occurs); one that turns out not to be its lane's head — a redelivery of its event was
 * pending — has its lease given back at once (a second statement, only then) and is left to
 * `storeDeliveries`' look at heads, like any delivery stored unleased. Each column goes as one
 * array parameter, one literal (every body copied again, escaped — the body column's built here):
 * callers hand it a batch bounded in rows and bytes — a statement of the tap (webhook-tap.ts), a
 * page of a replay (replay-deliveries.ts) — never a range.
 */
export async function insertDeliveries(
  db: Queryable,
  deliveries: readonly NewDelivery[],
  leases: { readonly lease: readonly boolean[]; readonly leaseMs: number; readonly logger?: Logger } = { lease: [], leaseMs: 0 },
): Promise<StoredDeliveries> {
  if (deliveries.length === 0) return { inserted: [], heads: [], leased: [] };
  const column = <K extends keyof NewDelivery>(key: K) => deliveries.map((delivery) => delivery[key]);
  // The statement is a function of the schema (migrations/0012, 0014): planned once per connection.
  const { rows } = await db.query<{ id: string; endpoint_id: string; event_id: string; head: boolean; leased: boolean; next_attempt_at: Date; created_at: Date; lease: string | null }>(
    `SELECT id, endpoint_id, event_id, leased, next_attempt_at, created_at, head, lease
       FROM tributary_webhook_insert_deliveries($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::boolean[], $10::double precision)`,
    [
      column('endpointId'),
      column('eventId'),
      column('eventType'),
      column('topic'),
      column('lane'),
      textArrayLiteral(column('body')),
      column('trigger'),
      column('eventTime'),
      // Only an initial delivery is leased here: (endpoint, event) names its input below.
      deliveries.map((delivery, index) => leases.lease[index] === true && delivery.trigger === 'initial'),
      leases.leaseMs,
    ],
    { prepareAs: 'tributary_webhook_insert_deliveries' },
  );
  // Leased but not its lane's head: the lease goes back before anyone is told of the delivery. The
  // insert has committed: should this fail (logged), the rows are stored all the same, and those
  // leased as heads must still reach whoever asked. A stray keeps its lease until it runs out (a
  // redelivery of its event is ahead of it meanwhile); then the reconciler finds it, as any unheld head.
  const stray = rows.filter((row) => row.leased && !row.head);
  if (stray.length > 0) await releaseDeliveries(db, stray).catch((error: unknown) => leases.logger?.warn({ err: error, deliveries: stray.map((row) => row.id) }, 'webhook delivery leases not given back: they run out instead'));
  const leasedRows = rows.filter((row) => row.leased && row.head);
  const inputs = leasedRows.length === 0 ? undefined : new Map(deliveries.filter((delivery) => delivery.trigger === 'initial').map((delivery) => [`${delivery.endpointId} ${delivery.eventId}`, delivery]));
  const leased = leasedRows.flatMap((row): Delivery[] => {
    const input = inputs?.get(`${row.endpoint_id} ${row.event_id}`);
    if (!input) return [];
    return [
      {
        ...input,
        id: row.id,
        state: 'pending',
        attempts: 0,
        firstAttemptAt: null,
        nextAttemptAt: row.next_attempt_at,
        lastStatus: null,
        lastError: null,
        createdAt: row.created_at,
        finishedAt: null,
        lease: row.lease,
      },
    ];
  });
  return {
    inserted: rows.map((row) => row.id),
    heads: rows.filter((row) => row.head && !row.leased).map(laneHeadOf),
    leased,
  };
}

/**
 * `values` as a `text[]` literal, each run of one value escaped once: an event's body goes to each
 * of its endpoints one after another. pg's own — an escaped copy per element, concatenated — took
 * 1.3–1.8 s and ~100 MiB of heap for 8 MiB of 21 KB bodies to 5 endpoints, where this takes 0.2 s.
 */
function textArrayLiteral(values: readonly string[]): string {
  let last: string | undefined;
  let quoted = '';
  return `{${values.map((value) => (value === last ? quoted : ((last = value), (quoted = `"${value.replace(/[\\"]/g, '\\$&')}"`)))).join(',')}}`;
}

/**
 * Those of `ids` that are pending and their lane's head, once every statement finishing their
 * lanes' heads has committed: each lane's head (before the newest of `ids` in it) is share-locked
 * first, which waits for such a statement, then the heads are read in a snapshot taken after it.
 * Only a head's finish makes a later delivery the head: one row per lane is locked, however deep
 * the lane (locking every pending predecessor wrote each one's tuple header, and WAL, per insert);
 * found in the lane index's order (why the range: migration 0024).
 */
export async function headsAmong(db: Queryable, ids: readonly string[]): Promise<LaneHead[]> {
  if (ids.length === 0) return [];
  await db.query(
    `SELECT 1 FROM webhook_deliveries h WHERE h.id IN (SELECT (SELECT e.id FROM webhook_deliveries e
          WHERE e.endpoint_id = l.endpoint_id AND e.lane >= l.lane AND e.lane <= l.lane AND e.state = 'pending' AND e.id < l.last ORDER BY e.lane, e.id LIMIT 1)
         FROM (SELECT n.endpoint_id, n.lane, max(n.id) AS last FROM webhook_deliveries n WHERE n.id = ANY($1::bigint[]) GROUP BY n.endpoint_id, n.lane) l) FOR SHARE OF h`,
    [ids],
  );
  const { rows } = await db.query<{ id: string; endpoint_id: string }>(
    `SELECT d.id::text AS id, d.endpoint_id FROM webhook_deliveries d WHERE d.id = ANY($1::bigint[]) AND d.state = 'pending' AND ${IS_LANE_HEAD} ORDER BY d.id`,
    [ids],
  );
  return rows.map(laneHeadOf);
}

export const laneHeadOf = (row: { id: string; endpoint_id: string }): LaneHead => ({ id: row.id, endpointId: row.endpoint_id });

/**
 * Stores deliveries (`insertDeliveries`, leasing those `leases` asks for) and returns those that
 * are their lane's head (see `withLateHeads`).
 * Must not run inside a transaction: the second look needs the first statement committed.
 */
export async function storeDeliveries(
  db: Queryable,
  deliveries: readonly NewDelivery[],
  leases?: { readonly lease: readonly boolean[]; readonly leaseMs: number; readonly logger?: Logger },
): Promise<StoredDeliveries> {
  return withLateHeads(db, await insertDeliveries(db, deliveries, leases));
}

/**
 * What an insert stored, with the lane heads the insert could not tell: those whose predecessor
 * finished while they were being inserted — that finish could not see them (not committed yet) and
 * named no next in lane, and the insert saw the predecessor still pending. Looking again once the
 * insert is committed (`headsAmong`) closes the gap: a finish that started later sees them, one
 * that started earlier is waited for. Call it after the insert's transaction has committed, never
 * inside it.
 */
export async function withLateHeads(db: Queryable, stored: StoredDeliveries): Promise<StoredDeliveries> {
  const { inserted, heads, leased } = stored;
  if (heads.length + leased.length === inserted.length) return stored;
  const known = new Set([...heads, ...leased].map((head) => head.id));
  const promoted = await headsAmong(db, inserted.filter((id) => !known.has(id)));
  return { inserted, heads: [...heads, ...promoted], leased };
}

/**
 * Leases those of `ids` that are pending, not leased (or leased under the lease the id is handed
 * with, `held[i]`) and their lane's head (one statement; rows locked in id order, and rows another
 * statement holds skipped — it is leasing or finishing them). Returns the leased deliveries (in
 * `TAKEN_ORDER`); an id
 * left out is finished, held, or not its lane's head yet.
 */
export async function claimDeliveries(db: Queryable, ids: readonly string[], leaseMs: number, held: readonly (string | undefined)[] = []): Promise<Delivery[]> {
  if (ids.length === 0) return [];
  // The statement is a function of the schema (migrations/0020): planned once per connection.
  const { rows } = await db.query<DeliveryRow>(
    `SELECT ${DELIVERY_COLUMNS} FROM tributary_webhook_claim_ids($1::bigint[], $2::timestamptz[], $3::double precision) d ${TAKEN_ORDER}`,
    [ids, ids.map((_, index) => held[index] ?? null), leaseMs],
    { prepareAs: 'tributary_webhook_claim_ids' },
  );
  return rows.map(deliveryOf);
}

/** Leases up to `limit` due lane heads, oldest due first (returned in `TAKEN_ORDER`), skipping endpoints in `skipEndpoints` (the embedded loop). */
export async function claimDue(db: Queryable, limit: number, leaseMs: number, skipEndpoints: readonly string[]): Promise<Delivery[]> {
  // The statement is a function of the schema (migrations/0011): its planner settings keep it on the due index.
  const { rows } = await db.query<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM tributary_webhook_claim_due($1::int, $2::double precision, $3::text[]) d ${TAKEN_ORDER}`, [limit, leaseMs, skipEndpoints], {
    prepareAs: 'tributary_webhook_claim_due',
  });
  return rows.map(deliveryOf);
}

export interface AttemptInput {
  readonly delivery: Delivery;
  readonly outcome: AttemptOutcome;
  readonly status: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  readonly responseExcerpt: string | null;
  /** The next attempt; null: the delivery is finished (delivered, or dead when the outcome is not `delivered`). */
  readonly nextAttemptAt: Date | null;
}

/** What recording an attempt did: the lane's new head when the delivery finished (to attempt next). */
export interface RecordedAttempt {
  readonly nextInLane: string | undefined;
  /**
   * The delivery no longer held the attempt's lease (another holder has it): logged, nothing moved;
   * `nextInLane` is the lane's next when the delivery is finished. (An earlier try of this very
   * record that committed though its answer was lost is not superseded: it moved the delivery,
   * and is logged once — migration 0015.)
   */
  readonly superseded?: true;
}

/**
 * Records attempts and moves their deliveries on (delivered, dead, or pending until
 * `nextAttemptAt`), releasing the leases — one statement for the batch, so one round trip and
 * atomic. An attempt whose delivery no longer holds its lease is logged and moves nothing.
 * Returns what each input did, in order.
 */
export async function recordAttempts(db: Queryable, inputs: readonly AttemptInput[]): Promise<RecordedAttempt[]> {
  if (inputs.length === 0) return [];
  const states = inputs.map((input): DeliveryState => (input.nextAttemptAt !== null ? 'pending' : input.outcome === 'delivered' ? 'delivered' : 'dead'));
  const column = <T>(of: (input: AttemptInput, index: number) => T) => inputs.map(of);
  // The statement is a function of the schema (migrations/0012, 0014, 0015, 0028): planned once per connection.
  const { rows } = await db.query<{ n: string; moved: boolean; next: string | null }>(
    `SELECT n::text AS n, moved, next
       FROM tributary_webhook_record_attempts($1::bigint[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::int[], $6::text[], $7::text[], $8::int[], $9::text[])`,
    [
      column((input) => input.delivery.id),
      column((input) => input.delivery.lease),
      states,
      column((input) => input.nextAttemptAt),
      column((input) => input.status),
      column((input) => input.error),
      // What the receiver answered: the statement logs a dead letter's attempt as such (migration 0014), and leaves a cut out of the delivery's attempts (0028).
      column((input) => input.outcome),
      column((input) => Math.round(input.durationMs)),
      column((input) => input.responseExcerpt),
    ],
    { prepareAs: 'tributary_webhook_record_attempts' },
  );
  // A delivery whose row is gone (its endpoint deleted meanwhile) has nothing after it.
  const recorded = new Map(rows.map((row) => [Number(row.n), row]));
  return inputs.map((_, index) => {
    const row = recorded.get(index + 1);
    return row?.moved === false ? { nextInLane: row.next ?? undefined, superseded: true } : { nextInLane: row?.next ?? undefined };
  });
}

/** A leased delivery, as releasing or postponing it needs it: which one, and under which lease. */
export type HeldDelivery = Pick<Delivery, 'id' | 'lease'>;

/** Releases leases taken but not used (a worker stopping): the deliveries are due again as they were. Those no longer held under that lease are left alone. */
export async function releaseDeliveries(db: Queryable, deliveries: readonly HeldDelivery[]): Promise<void> {
  if (deliveries.length === 0) return;
  await db.query(
    `UPDATE webhook_deliveries d SET leased_until = NULL FROM unnest($1::bigint[], $2::timestamptz[]) AS r(id, lease)
      WHERE d.id = r.id AND d.leased_until = r.lease AND d.state = 'pending'`,
    [deliveries.map((delivery) => delivery.id), deliveries.map((delivery) => delivery.lease)],
  );
}

/** Releases a lease without an attempt, the delivery due again at `dueAt` (rate limit, concurrency, disabled endpoint) — if it still holds that lease. */
export async function postponeDelivery(db: Queryable, delivery: HeldDelivery, dueAt: Date): Promise<void> {
  await db.query(
    `UPDATE webhook_deliveries SET leased_until = NULL, next_attempt_at = greatest(next_attempt_at, $2) WHERE id = $1::bigint AND leased_until = $3::timestamptz AND state = 'pending'`,
    [delivery.id, dueAt, delivery.lease],
  );
}

/**
 * Releases the leases of disabled endpoints' deliveries, each due again at its `dueAt` — or at once
 * when its endpoint is enabled: its row is read under a share lock, so an enable either comes first
 * and is seen, or waits for this statement (and its making the deliveries due then finds these:
 * endpoint-resume.ts).
 * One statement for them all: the loop claims and puts back a disabled endpoint's backlog in batches.
 */
export async function postponeWhileDisabled(db: Queryable, deliveries: readonly (HeldDelivery & { readonly dueAt: Date })[]): Promise<void> {
  if (deliveries.length === 0) return;
  await db.query(
    `UPDATE webhook_deliveries d SET leased_until = NULL,
       next_attempt_at = CASE WHEN EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND NOT e.enabled FOR SHARE) THEN greatest(d.next_attempt_at, r.due_at) ELSE d.next_attempt_at END
      FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[]) AS r(id, lease, due_at)
     WHERE d.id = r.id AND d.leased_until = r.lease AND d.state = 'pending'`,
    [deliveries.map((delivery) => delivery.id), deliveries.map((delivery) => delivery.lease), deliveries.map((delivery) => delivery.dueAt)],
  );
}

export async function getDelivery(db: Queryable, id: string): Promise<Delivery | undefined> {
  const { rows } = await db.query<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = $1::bigint`, [id]);
  return rows[0] && deliveryOf(rows[0]);
}
