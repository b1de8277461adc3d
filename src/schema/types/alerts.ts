import * as resolvers from '../../resolvers/alerts.ts';
import type { AlertUpdate as Update, AlertView, AlertViewPage } from '../../resolvers/alerts.ts';
import { builder } from '../builder.ts';

// AlertUpdate and Alert are also delivered by the dispatcher (`alertUpdates`), so their fields
// follow the rule of `pipeline/dispatch/subscription-contract.ts`: synchronous, no context.

const AlertStatus = builder.enumType('AlertStatus', {
  description: 'Where an alert is in its lifecycle: firing → acknowledged → resolved (a resolved alert that fires again is firing again, count + 1).',
  values: {
    FIRING: { value: 'firing', description: 'Its rule has been bad for long enough; nobody acknowledged it yet.' },
    ACKNOWLEDGED: { value: 'acknowledged', description: 'Someone is on it; it stays so until its rule is good for long enough.' },
    RESOLVED: { value: 'resolved', description: 'Its rule has been good for long enough.' },
  } as const,
});

const AlertSeverity = builder.enumType('AlertSeverity', {
  description: 'How bad an alert is.',
  values: {
    WARNING: { value: 'warning', description: 'The lower severity: an open warning becomes critical (`alert.escalated`) once its rule reads critical long enough.' },
    CRITICAL: { value: 'critical', description: 'The higher severity; never lowered while the alert is open.' },
  } as const,
});

const Alert = builder.objectRef<AlertView>('Alert').implement({
  description: 'One rule about one subject in an environment: a flapping subject stays one alert whose `count` grows.',
  fields: (t) => ({
    id: t.exposeID('id', { description: '`alrt_…`; the same when the alert fires again.' }),
    rule: t.exposeString('rule', { description: 'e.g. `webhook.failure_rate`, `webhook.dead_letters`, `webhook.endpoint_disabled`, `outbox.backlog_age`, `outbox.dead_rows`, `cdc.reader_down`, `cdc.lag`, `cdc.retained_wal`, `cdc.slot_at_risk`, `cdc.slot_lost`, `cdc.unroutable_rows`.' }),
    subject: t.exposeString('subject', { description: 'What it is about: `endpoint:<id>`, `outbox:<app>/<env>`, `cdc:<source>`, `cluster`.' }),
    tenant: t.exposeString('tenant', { nullable: true, description: "The subject's tenant (an endpoint of one tenant); null for the whole environment." }),
    severity: t.field({ type: AlertSeverity, description: 'How bad it is now.', resolve: (alert) => alert.severity }),
    status: t.field({ type: AlertStatus, description: 'Where it is in its lifecycle.', resolve: (alert) => alert.status }),
    count: t.exposeInt('count', { description: 'Times it fired, re-openings included.' }),
    value: t.exposeFloat('value', { nullable: true, description: 'The figure at its last change: a failure ratio (0–1), a count, seconds or bytes.' }),
    message: t.exposeString('message', {
      description:
        "Why the alert is in its state: the bad figure while open; once resolved, the good figure it resolved on ('back within limit: …'), 'back to normal', or why ('… no longer exists').",
    }),
    firstFiredAt: t.expose('firstFiredAt', { type: 'DateTime', description: 'When it first fired.' }),
    lastFiredAt: t.expose('lastFiredAt', { type: 'DateTime', description: 'When it last fired (first, or again after it resolved).' }),
    acknowledgedAt: t.expose('acknowledgedAt', { type: 'DateTime', nullable: true, description: 'When it was acknowledged; null while it is not (firing again clears it).' }),
    acknowledgedBy: t.exposeString('acknowledgedBy', { nullable: true, description: "The acknowledging token's subject." }),
    resolvedAt: t.expose('resolvedAt', { type: 'DateTime', nullable: true, description: 'When it resolved; null while it is open (firing again clears it).' }),
  }),
});

const AlertPage = builder.objectRef<AlertViewPage>('AlertPage').implement({
  description: 'A page of alerts, most recently fired first.',
  fields: (t) => ({
    nodes: t.field({ type: [Alert], description: 'The alerts of the page.', resolve: (page) => page.nodes }),
    endCursor: t.exposeString('endCursor', { nullable: true, description: 'Pass as `after` for the next page.' }),
    hasNextPage: t.exposeBoolean('hasNextPage', { description: 'More alerts follow: pass `endCursor` as `after` for them.' }),
  }),
});

const AlertUpdate = builder.objectRef<Update>('AlertUpdate').implement({
  description: 'One change of an alert.',
  fields: (t) => ({
    type: t.exposeString('type', { description: '`alert.fired`, `alert.escalated`, `alert.acknowledged` or `alert.resolved`.' }),
    alert: t.field({ type: Alert, description: 'The alert as the change left it.', resolve: (update) => update.alert }),
  }),
});

builder.queryField('alerts', (t) =>
  t.field({
    type: AlertPage,
    description: "The environment's alerts, most recently fired first (admin; a token with a tenant sees that tenant's only).",
    args: {
      status: t.arg({ type: [AlertStatus], description: 'Any of these (default: all).' }),
      severity: t.arg({ type: [AlertSeverity], description: 'Any of these (default: all).' }),
      first: t.arg.int({ description: 'At most this many alerts: 1–200, default 50.' }),
      after: t.arg.string({ description: "The previous page's `endCursor`, for the page after it; absent: the first page." }),
    },
    resolve: (_root, args, context) => resolvers.alerts(context, args),
  }),
);

builder.mutationField('acknowledgeAlert', (t) =>
  t.field({
    type: Alert,
    nullable: true,
    description: 'Says someone is on a firing alert (admin). BAD_USER_INPUT for an id not shaped like one (`alrt_…`), NOT_FOUND for an unknown one; CONFLICT (`extensions.status = "RESOLVED"`; `extensions.state`, its older name, says the same) for a resolved one.',
    args: { id: t.arg.id({ required: true, description: "The alert's id (`alrt_…`)." }) },
    resolve: (_root, args, context) => resolvers.acknowledgeAlert(context, String(args.id)),
  }),
);

builder.subscriptionField('alertUpdates', (t) =>
  t.field({
    type: AlertUpdate,
    description: "Every alert change of the environment as it happens: fired, escalated, acknowledged, resolved (admin). The same events reach webhook endpoints selecting `system.alerts`.",
    subscribe: (_root, _args, context) => resolvers.subscribeAlertUpdates(context),
    resolve: (event) => resolvers.alertUpdateOf(event),
  }),
);
