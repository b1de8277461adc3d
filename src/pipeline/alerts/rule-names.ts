/**
 * The names of the built-in alert rules (`workers/alerts.ts` evaluates them; README "Alerts"), for
 * what must list them all without evaluating them: `tributary_alerts_open` and
 * `tributary_alerts_firing` export each at 0 while none of its alerts is open, so a Prometheus rule
 * or panel on one of them reads 0 rather than finding no series at all. A test holds this list to
 * the rules' own names.
 */
export const BUILT_IN_RULES: readonly string[] = [
  'webhook.failure_rate',
  'webhook.dead_letters',
  'webhook.endpoint_disabled',
  'outbox.backlog_age',
  'outbox.dead_rows',
  'cdc.reader_down',
  'cdc.lag',
  'cdc.retained_wal',
  'cdc.slot_at_risk',
  'cdc.slot_lost',
  'cdc.unroutable_rows',
  'cluster.connections',
  'cluster.resync_storm',
];
