import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createAnalyticsMetrics, type AnalyticsMetrics, type AnalyticsSample } from './metrics-analytics.ts';
import { createClusterMetrics, type ClusterMetrics } from './metrics-cluster.ts';
import { createOutboxMetrics, type OutboxMetrics, type OutboxSample, type OutboxSourceSample } from './metrics-outbox.ts';

export { HOT_TOPICS_IN_METRICS, type AnalyticsSample } from './metrics-analytics.ts';
export type { OutboxSample, OutboxSourceSample } from './metrics-outbox.ts';

/**
 * Every metric the server exports, on one registry (scraped at `GET /metrics`). Created once in
 * `main.ts` and injected: components increment the counters they are given, and each subsystem
 * registers the live state it owns with `sample()` when it starts — nothing is bound late.
 */
export interface Metrics extends AnalyticsMetrics, ClusterMetrics, OutboxMetrics {
  readonly registry: Registry;
  /**
   * Registers live state read at scrape time. Counts from several samplers add up; readers are
   * listed from all of them. Returns the function that removes the sampler (on dispose).
   */
  sample(sampler: LiveSampler): () => void;
  /** The live state every sampler reports now (what `/metrics` would show), for the dashboard. */
  live(): LiveFigures;
  /** Events accepted by the router, by source. */
  readonly eventsRouted: Counter<'source'>;
  /** GraphQL requests over HTTP served without yoga's Fetch layer (plain JSON POSTs of queries and mutations). */
  readonly graphqlDirectPosts: Counter;
  /** Subscriptions refused silently for lack of permission (never told to the client). */
  readonly subscriptionsDenied: Counter<'field'>;
  /** Sockets closed for falling behind (outbound buffer over its bound). */
  readonly slowConsumers: Counter;
  /** Sockets refused: the instance at `WS_MAX_CONNECTIONS` (`instance`), a principal at `WS_MAX_CONNECTIONS_PER_SUBJECT` (`subject`). */
  readonly connectionsRefused: Counter<'limit'>;
  /** Requests refused at a per-subject rate limit: `publish` (publishes and broadcasts), `new_stream` (topic streams created). */
  readonly subjectRateLimited: Counter<'kind'>;
  /** CDC rows that matched a mapping but could not be routed safely (no tenant, bad topic value). */
  readonly cdcUnroutable: Counter;
  /**
   * Live events held back for longer than `holdBackLimit` allows, so the log is read again
   * instead: by a subscriber resuming after a cursor (`phase="resume"`) or by a stream catching up
   * after a bus outage (`phase="outage"`).
   */
  readonly holdBackOverflows: Counter<'phase'>;
  /** Channel members failed with RATE_LIMITED for falling behind (member queue over its bound). */
  readonly channelMemberOverflows: Counter;
  /** Broadcasts sent by this instance (counted where the `broadcast` mutation ran). */
  readonly channelBroadcasts: Counter;
  /** Channel messages (broadcasts, presence messages) handed to this instance's members: one to N members counts N. */
  readonly channelDeliveries: Counter;
  /** Channel members (`channel` subscriptions) on this instance now. */
  readonly channelMembers: Gauge;
  /** Events dropped by the dispatcher because their scope is not their stream's (a producer bug; logged at error level), once per stream. */
  readonly eventsOutOfScope: Counter;
  /** Gateway events (best-effort) not routed: dropped over the in-flight bound (`overflow`) or failed (`failed`). */
  readonly gatewayEventsLost: Counter<'reason'>;
  readonly connections: Gauge;
  readonly subscriptions: Gauge;
  readonly redisEvictionPolicyOk: Gauge<'policy'>;
  /** CDC readers this instance leads: WAL after the confirmed position, and WAL the slot retains. */
  readonly cdcLagBytes: Gauge<'source'>;
  readonly cdcRetainedWalBytes: Gauge<'source'>;
  readonly cdcOtherSlotRetainedWalBytes: Gauge<'source' | 'slot'>;
  /** `safe_wal_size` of a CDC reader's slot: WAL left before the source's `max_slot_wal_keep_size` invalidates it. */
  readonly cdcSlotSafeWalBytes: Gauge<'source'>;
  /** Outbox rows routed by this process's pollers, by outbox (`app/env`). */
  readonly outboxRouted: Counter<'outbox'>;
  /** Outbox rows set aside because they can never be routed, by outbox and reason. */
  readonly outboxDead: Counter<'outbox' | 'reason'>;
  /** Analytics minute rows the database refused for what they hold, set aside by this process's flushes. */
  readonly analyticsRowsSetAside: Counter;
  /** Webhook attempts made by this process, by outcome (delivered, failed, gone, throttled, refused, dead; cut: by this process's shutdown, not the receiver's failure). */
  readonly webhookAttempts: Counter<'outcome'>;
  /** How long a webhook attempt took, receiver's answer included, in s. */
  readonly webhookAttemptSeconds: Histogram;
  /** Webhook deliveries dead-lettered (window over, or 410 Gone) by this process. */
  readonly webhookDeadLetters: Counter;
  /** Webhook deliveries not finished yet, and the age of the oldest, by endpoint id (measured every few seconds; less often while a count takes long). */
  readonly webhookPending: Gauge<'app' | 'env' | 'endpoint'>;
  readonly webhookOldestPendingSeconds: Gauge<'app' | 'env' | 'endpoint'>;
  /**
   * Alerts firing (not acknowledged, not resolved) cluster-wide, by rule and severity: no subject
   * label, so bounded. Kept for dashboards; an acknowledged alert leaves it while its problem lasts.
   * Exported by the processes that read the open alerts (workers, all): every built-in rule, 0
   * while none of its alerts is.
   */
  readonly alertsFiring: Gauge<'rule' | 'severity'>;
  /**
   * Alerts open (firing or acknowledged) cluster-wide, by rule, severity and state: what a
   * Prometheus rule should page on, as acknowledging does not end the problem. Exported as
   * `alertsFiring` is, each built-in rule at 0 while none of its alerts is open.
   */
  readonly alertsOpen: Gauge<'rule' | 'severity' | 'state'>;
}

/** A CDC reader as the metrics report it (`source` is the hash of its URL, never the URL). */
export interface CdcReaderSample {
  readonly source: string;
  readonly lagBytes: number | null;
  readonly retainedWalBytes: number | null;
  readonly otherSlots?: { readonly slots: readonly { readonly slotName: string; readonly retainedWalBytes: number | null }[] } | null;
  readonly walSafety?: { readonly safeWalBytes: number | null } | null;
}

/** Live state a subsystem owns, read at scrape time; each field is optional. */
export interface LiveSampler {
  readonly connections?: () => number;
  readonly subscriptions?: () => number;
  readonly cdcReaders?: () => readonly CdcReaderSample[];
  readonly outboxes?: () => readonly OutboxSample[];
  /** Whether the reader of each outbox this process reads could read its database, the last time it tried. */
  readonly outboxSources?: () => readonly OutboxSourceSample[];
  readonly webhookBacklogs?: () => readonly WebhookBacklogSample[];
  /** The open alerts' counts, each built-in rule's included at 0 (`workers/alerts.ts`); none before the process's first read. */
  readonly alertsOpen?: () => readonly AlertsOpenSample[];
  readonly analytics?: () => AnalyticsSample;
}

/** The samplers' live state, summed (counts) or listed (readers, outboxes, endpoints). */
export interface LiveFigures {
  readonly connections: number;
  readonly subscriptions: number;
  readonly cdcReaders: readonly CdcReaderSample[];
  readonly outboxes: readonly OutboxSample[];
  readonly webhookBacklogs: readonly WebhookBacklogSample[];
}

/** Open alerts of one rule, severity and state (firing or acknowledged), cluster-wide (read from the platform database). */
export interface AlertsOpenSample {
  readonly rule: string;
  readonly severity: string;
  readonly state: 'firing' | 'acknowledged';
  readonly count: number;
}

/** An endpoint's queue as last measured. */
export interface WebhookBacklogSample {
  readonly endpoint: string;
  /** The endpoint's environment: an operator reading the metrics can tell whose backlog it is. */
  readonly app: string;
  readonly env: string;
  readonly pending: number;
  readonly oldestPendingSeconds: number | null;
  /** When it was measured (ms since the epoch): the dashboard adds the time since. */
  readonly measuredAt?: number;
}

export interface MetricsOptions {
  /** Node's process metrics (CPU, memory, event loop lag). @default true */
  readonly processMetrics?: boolean;
}

const backlogLabels = ({ app, env, endpoint }: WebhookBacklogSample) => ({ app, env, endpoint });

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'tributary_' });
  const samplers = new Set<LiveSampler>();
  const total = (field: 'connections' | 'subscriptions'): number => {
    let sum = 0;
    for (const sampler of samplers) sum += sampler[field]?.() ?? 0;
    return sum;
  };
  const cdcReaders = (): CdcReaderSample[] => [...samplers].flatMap((sampler) => sampler.cdcReaders?.() ?? []);
  const outboxes = (): OutboxSample[] => [...samplers].flatMap((sampler) => sampler.outboxes?.() ?? []);
  const webhookBacklogs = (): WebhookBacklogSample[] => [...samplers].flatMap((sampler) => sampler.webhookBacklogs?.() ?? []);
  const alertsOpen = (): AlertsOpenSample[] => [...samplers].flatMap((sampler) => sampler.alertsOpen?.() ?? []);
  const analytics = (): AnalyticsSample[] => [...samplers].flatMap((sampler) => (sampler.analytics ? [sampler.analytics()] : []));
  return {
    ...createAnalyticsMetrics(registry, analytics),
    ...createClusterMetrics(registry),
    ...createOutboxMetrics(registry, { outboxes, sources: () => [...samplers].flatMap((sampler) => sampler.outboxSources?.() ?? []), now: Date.now }),
    registry,
    sample(sampler) {
      samplers.add(sampler);
      return () => void samplers.delete(sampler);
    },
    live: () => ({
      connections: total('connections'),
      subscriptions: total('subscriptions'),
      cdcReaders: cdcReaders(),
      outboxes: outboxes(),
      webhookBacklogs: webhookBacklogs(),
    }),
    graphqlDirectPosts: new Counter({
      name: 'tributary_graphql_direct_posts_total',
      help: 'GraphQL requests over HTTP served on the direct path (a plain JSON POST of a query or mutation); the others go through yoga',
      registers: [registry],
    }),
    eventsRouted: new Counter({
      name: 'tributary_events_routed_total',
      help: 'Events accepted by the router',
      labelNames: ['source'],
      registers: [registry],
    }),
    subscriptionsDenied: new Counter({
      name: 'tributary_subscriptions_denied_total',
      help: 'Subscriptions dropped silently because the principal may not read them',
      labelNames: ['field'],
      registers: [registry],
    }),
    cdcUnroutable: new Counter({
      name: 'tributary_cdc_unroutable_rows_total',
      help: 'Row changes that matched a mapping but could not be routed safely (logged)',
      registers: [registry],
    }),
    holdBackOverflows: new Counter({
      name: 'tributary_hold_back_overflows_total',
      help: 'Live events outgrew the hold-back bound while catching up; the log was read again instead',
      labelNames: ['phase'],
      registers: [registry],
    }),
    channelMemberOverflows: new Counter({
      name: 'tributary_channel_member_overflows_total',
      help: 'Channel members failed with RATE_LIMITED because their queue outgrew its bound',
      registers: [registry],
    }),
    channelBroadcasts: new Counter({
      name: 'tributary_channel_broadcasts_total',
      help: 'Channel broadcasts sent by this instance (where the broadcast mutation ran)',
      registers: [registry],
    }),
    channelDeliveries: new Counter({
      name: 'tributary_channel_deliveries_total',
      help: "Channel messages (broadcasts and presence messages) handed to this instance's members; one message to N members counts N",
      registers: [registry],
    }),
    channelMembers: new Gauge({
      name: 'tributary_channel_members',
      help: 'Channel members (channel subscriptions) on this instance',
      registers: [registry],
    }),
    eventsOutOfScope: new Counter({
      name: 'tributary_events_out_of_scope_total',
      help: "Events not delivered because their scope is not their stream's (a producer bug, logged)",
      registers: [registry],
    }),
    gatewayEventsLost: new Counter({
      name: 'tributary_gateway_events_lost_total',
      help: 'Gateway events an endpoint selected but that were not routed: too many in flight (overflow) or routing failed (failed)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    slowConsumers: new Counter({
      name: 'tributary_slow_consumer_closes_total',
      help: 'Sockets closed because their outbound buffer outgrew its bound',
      registers: [registry],
    }),
    connectionsRefused: new Counter({
      name: 'tributary_connections_refused_total',
      help: 'Sockets refused at a connection limit: the instance (WS_MAX_CONNECTIONS) or one principal (WS_MAX_CONNECTIONS_PER_SUBJECT); waiting: a socket not acknowledged yet, closed to make room at the instance limit',
      labelNames: ['limit'],
      registers: [registry],
    }),
    subjectRateLimited: new Counter({
      name: 'tributary_subject_rate_limited_total',
      help: 'Requests refused with RATE_LIMITED at a per-subject limit: publish (PUBLISH_RATE_PER_SECOND) or new_stream (TOPIC_NEW_STREAMS_PER_MINUTE)',
      labelNames: ['kind'],
      registers: [registry],
    }),
    connections: new Gauge({
      name: 'tributary_connections',
      help: 'Open graphql-ws sockets',
      registers: [registry],
      collect() {
        this.set(total('connections'));
      },
    }),
    redisEvictionPolicyOk: new Gauge({
      name: 'tributary_redis_eviction_policy_ok',
      help: 'Redis maxmemory-policy as last read (label policy): 1 when it cannot evict keys without a TTL (noeviction, volatile-*), 0 when it may evict dirty document entries (allkeys-*)',
      labelNames: ['policy'],
      registers: [registry],
    }),
    subscriptions: new Gauge({
      name: 'tributary_subscriptions',
      help: 'Active subscriptions on this instance: streams served by the dispatcher, and channel members',
      registers: [registry],
      collect() {
        this.set(total('subscriptions'));
      },
    }),
    cdcLagBytes: new Gauge({
      name: 'tributary_cdc_lag_bytes',
      help: 'WAL written after the position a CDC reader confirmed (readers this instance leads; read every 5 s)',
      labelNames: ['source'],
      registers: [registry],
      collect() {
        this.reset();
        for (const reader of cdcReaders()) if (reader.lagBytes !== null) this.set({ source: reader.source }, reader.lagBytes);
      },
    }),
    cdcRetainedWalBytes: new Gauge({
      name: 'tributary_cdc_retained_wal_bytes',
      help: "WAL a CDC reader's slot keeps on its source server (readers this instance leads; read every 5 s)",
      labelNames: ['source'],
      registers: [registry],
      collect() {
        this.reset();
        for (const reader of cdcReaders()) {
          if (reader.retainedWalBytes !== null) this.set({ source: reader.source }, reader.retainedWalBytes);
        }
      },
    }),
    cdcOtherSlotRetainedWalBytes: new Gauge({
      name: 'tributary_cdc_other_slot_retained_wal_bytes',
      help: "WAL another Tributary slot of a CDC source's database keeps (another deployment's, or left over; the 20 most retaining per source; readers this instance leads)",
      labelNames: ['source', 'slot'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { source, otherSlots } of cdcReaders()) for (const slot of otherSlots?.slots ?? []) if (slot.retainedWalBytes !== null) this.set({ source, slot: slot.slotName }, slot.retainedWalBytes);
      },
    }),
    cdcSlotSafeWalBytes: new Gauge({
      name: 'tributary_cdc_slot_safe_wal_bytes',
      help: "WAL that can still be written before a CDC reader's slot retains more than its source's max_slot_wal_keep_size (or wal_keep_size, the larger), when the next checkpoint invalidates it (safe_wal_size: at or under 0 once wal_status is unreserved; absent without that limit; readers this instance leads)",
      labelNames: ['source'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { source, walSafety } of cdcReaders()) if (walSafety?.safeWalBytes != null) this.set({ source }, walSafety.safeWalBytes);
      },
    }),
    outboxRouted: new Counter({
      name: 'tributary_outbox_routed_total',
      help: 'Outbox rows routed by this process',
      labelNames: ['outbox'],
      registers: [registry],
    }),
    outboxDead: new Counter({
      name: 'tributary_outbox_dead_total',
      help: 'Outbox rows set aside because they can never be routed (dead_reason in the table)',
      labelNames: ['outbox', 'reason'],
      registers: [registry],
    }),
    analyticsRowsSetAside: new Counter({
      name: 'tributary_analytics_rows_set_aside_total',
      help: 'Analytics minute rows the database refused for what they hold (a data error, not an outage): logged and dropped, the flush went on',
      registers: [registry],
    }),
    webhookAttempts: new Counter({
      name: 'tributary_webhook_attempts_total',
      help: "Webhook delivery attempts made by this process, by outcome (cut: ended by this process's shutdown, retried; not a failure)",
      labelNames: ['outcome'],
      registers: [registry],
    }),
    webhookAttemptSeconds: new Histogram({
      name: 'tributary_webhook_attempt_seconds',
      help: "Duration of a webhook attempt, the receiver's answer included, in s",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    webhookDeadLetters: new Counter({
      name: 'tributary_webhook_dead_letters_total',
      help: 'Webhook deliveries dead-lettered by this process (retry window over, or 410 Gone)',
      registers: [registry],
    }),
    webhookPending: new Gauge({
      name: 'tributary_webhook_pending',
      help: 'Webhook deliveries not finished yet, by endpoint and its app and env (measured every few seconds by the workers)',
      labelNames: ['app', 'env', 'endpoint'],
      registers: [registry],
      collect() {
        this.reset();
        for (const backlog of webhookBacklogs()) this.set(backlogLabels(backlog), backlog.pending);
      },
    }),
    webhookOldestPendingSeconds: new Gauge({
      name: 'tributary_webhook_oldest_pending_seconds',
      help: 'Age of the oldest unfinished webhook delivery, by endpoint and its app and env, in s',
      labelNames: ['app', 'env', 'endpoint'],
      registers: [registry],
      collect() {
        this.reset();
        for (const backlog of webhookBacklogs()) if (backlog.oldestPendingSeconds !== null) this.set(backlogLabels(backlog), backlog.oldestPendingSeconds);
      },
    }),
    alertsFiring: new Gauge({
      name: 'tributary_alerts_firing',
      help: 'Alerts firing (not acknowledged, not resolved) across the cluster, by rule and severity (every built-in rule, 0 when none); exported by workers and all processes only, each the same figure (aggregate with max). Page on tributary_alerts_open: acknowledging does not end the problem',
      labelNames: ['rule', 'severity'],
      registers: [registry],
      collect() {
        this.reset();
        for (const sample of alertsOpen()) if (sample.state === 'firing') this.set({ rule: sample.rule, severity: sample.severity }, sample.count);
      },
    }),
    alertsOpen: new Gauge({
      name: 'tributary_alerts_open',
      help: 'Alerts open (state firing or acknowledged, not resolved) across the cluster, by rule, severity and state (every built-in rule, 0 when none); exported by workers and all processes only, each the same figure (aggregate with max per state)',
      labelNames: ['rule', 'severity', 'state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const sample of alertsOpen()) this.set({ rule: sample.rule, severity: sample.severity, state: sample.state }, sample.count);
      },
    }),
  };
}
