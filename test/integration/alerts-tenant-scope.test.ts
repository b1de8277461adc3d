/**
 * Whose alerts a caller sees, on a real Postgres: the environment's admin — the development
 * principal included, whose tenant `default` stands for every caller — sees and acknowledges every
 * alert of its environment, the environment-wide ones (outbox, CDC, cluster: no tenant) too, and
 * `alertUpdates` pushes them all; an admin limited to one tenant sees, acknowledges and is pushed
 * that tenant's alerts only.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { DEVELOPMENT_PRINCIPAL, type Principal } from '../../src/auth/principal.ts';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertAdmin } from '../../src/pipeline/alerts/alert-admin.ts';
import { fireAlert, type AlertRecord } from '../../src/pipeline/alerts/alert-store.ts';
import type { RawEventInput, RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import type { Scope } from '../../src/pipeline/scope.ts';
import { acknowledgeAlert, alerts, subscribeAlertUpdates } from '../../src/resolvers/alerts.ts';
import type { ResolverContext } from '../../src/resolvers/context.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
const ENVIRONMENT = { app: DEVELOPMENT_PRINCIPAL.app, env: DEVELOPMENT_PRINCIPAL.env };

const admin = (tenant: string | undefined): Principal => ({ subject: `admin-${tenant ?? 'env'}`, ...ENVIRONMENT, tenant, roles: ['admin'], permissions: [], expiresAt: undefined });

async function setUp() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const { db } = fixture;
  // What the acknowledgements announce (every change still pending, in order), as routed.
  const routed: RawEventInput[] = [];
  const service = createAlertAdmin({
    db,
    router: {
      route: (message) => {
        routed.push(message);
        return Promise.resolve({} as RealtimeEvent);
      },
    },
    logger,
  });
  const fire = async (tenant: string | undefined, rule: string, subject: string): Promise<AlertRecord> => {
    const scope: Scope = { ...ENVIRONMENT, tenant };
    return (await fireAlert(db, { rule, subject, scope, severity: 'warning', value: 1, message: subject }))!;
  };
  const environmentWide = await fire(undefined, 'outbox.backlog_age', 'outbox:default/default');
  const acme = await fire('acme', 'webhook.failure_rate', 'endpoint:acme');
  const globex = await fire('globex', 'webhook.failure_rate', 'endpoint:globex');
  const as = (principal: Principal) => ({ principal, services: { alerts: service }, connectionId: undefined }) as unknown as ResolverContext;
  /** Whether `alertUpdates` subscribed as `principal` is pushed the announced change `event`. */
  const pushed = (principal: Principal, event: RawEventInput) => {
    const { admit } = subscribeAlertUpdates(as(principal));
    return (admit?.(event as unknown as RealtimeEvent) ?? 'deliver') === 'deliver';
  };
  const tenantsSeenBy = async (principal: Principal) => (await alerts(as(principal), {})).nodes.map((alert) => alert.tenant).sort();
  return { routed, environmentWide, acme, globex, as, pushed, tenantsSeenBy };
}

/** The announced change of `alert`, of type `type`. */
function changeOf(routed: readonly RawEventInput[], alert: AlertRecord, type: string): RawEventInput {
  const event = routed.find((each) => each.payload['alertId'] === alert.id && each.type === type);
  expect(event, `${type} of ${alert.subject}`).toBeDefined();
  return event!;
}

describe('alerts per tenant', () => {
  it('shows the development principal every alert of its environment, the environment-wide ones too, and pushes them all', async () => {
    const { routed, environmentWide, acme, as, pushed, tenantsSeenBy } = await setUp();
    expect(await tenantsSeenBy(DEVELOPMENT_PRINCIPAL)).toEqual(['acme', 'globex', null]);
    expect(await tenantsSeenBy(admin(undefined))).toEqual(['acme', 'globex', null]);

    const acknowledged = await acknowledgeAlert(as(DEVELOPMENT_PRINCIPAL), environmentWide.id);
    expect(acknowledged).toMatchObject({ tenant: null, status: 'acknowledged', acknowledgedBy: 'development' });
    expect(pushed(DEVELOPMENT_PRINCIPAL, changeOf(routed, environmentWide, 'alert.acknowledged'))).toBe(true);
    expect(pushed(DEVELOPMENT_PRINCIPAL, changeOf(routed, acme, 'alert.fired'))).toBe(true);
  });

  it('keeps an admin limited to one tenant to that tenant’s alerts: listed, acknowledged and pushed', async () => {
    const { routed, environmentWide, acme, globex, as, pushed, tenantsSeenBy } = await setUp();
    const acmeAdmin = admin('acme');
    expect(await tenantsSeenBy(acmeAdmin)).toEqual(['acme']);
    for (const other of [environmentWide, globex]) {
      await expect(acknowledgeAlert(as(acmeAdmin), other.id)).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    }
    expect(await acknowledgeAlert(as(acmeAdmin), acme.id)).toMatchObject({ tenant: 'acme', status: 'acknowledged' });

    expect(pushed(acmeAdmin, changeOf(routed, acme, 'alert.acknowledged'))).toBe(true);
    expect(pushed(acmeAdmin, changeOf(routed, environmentWide, 'alert.fired'))).toBe(false);
    expect(pushed(acmeAdmin, changeOf(routed, globex, 'alert.fired'))).toBe(false);
  });
});
