/**
 * `events` on Tributary's topics that carry more than the caller's share of its environment: the
 * dashboard (every application's traffic), the alerts and the flushed analytics minutes (every
 * tenant's). `<prefix>.read` is not enough there: reading them takes what `dashboardUpdates`,
 * `alertUpdates` and `statsUpdates` ask, or the subscription is silently denied and `topicCursor`
 * tells nothing — else a token holding `system.read` would read what `dashboard` refuses it.
 */
import { describe, expect, it } from 'vitest';
import { decodeCursor } from '../../src/pipeline/log/cursor.ts';
import { gql } from '../helpers/cdc.ts';
import { messagesBeforePong, metricValue, subscribeEvents, takeEvents } from '../helpers/events.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const OPERATORS = { app: 'ops', env: 'prod' };

async function cursorPosition(server: TestServer, token: string, topic: string): Promise<string> {
  const body = await gql(server, token, 'query($t: String!) { topicCursor(topic: $t) }', { t: topic });
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return decodeCursor(body.data?.['topicCursor'] as string).position;
}

describe('events on system topics', () => {
  it('gives the dashboard stream to operators only, and alerts and analytics minutes to admins only, whatever <prefix>.read a token holds', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, OPERATOR_SCOPE: 'ops/prod', DASHBOARD_TICK_SECONDS: '1' }, { embedded: true });
    const operator = await signHs256({ sub: 'ops-admin', ...OPERATORS, roles: ['admin'], permissions: [], tenant: undefined });
    // A back-end service of the operators' environment: no tenant, not an admin, every system topic's read permission.
    const service = await signHs256({ sub: 'svc', ...OPERATORS, roles: [], permissions: ['system.read', 'analytics.read'], tenant: undefined });

    const denied = await metricValue(server, 'tributary_subscriptions_denied_total');
    const reader = await openAcknowledgedSocket(server.wsUrl, service);
    subscribeEvents(reader, 'dashboard', { topic: 'system.dashboard' });
    subscribeEvents(reader, 'alerts', { topic: 'system.alerts' });
    subscribeEvents(reader, 'minutes', { topic: 'analytics.minutes' });
    await waitFor(async () => (await metricValue(server, 'tributary_subscriptions_denied_total')) === denied + 3, {
      message: 'the three subscriptions were denied',
    });

    // The stream is live and the operator reads it; the service, subscribed before, is sent none of it.
    const screen = await openAcknowledgedSocket(server.wsUrl, operator);
    subscribeEvents(screen, 'dashboard', { topic: 'system.dashboard' });
    const ticks = await takeEvents(screen, 'dashboard', 2);
    expect(ticks.map((tick) => tick.type)).toEqual(['dashboard.updated', 'dashboard.updated']);
    expect(await messagesBeforePong(reader)).toEqual([]);

    // topicCursor answers the service a cursor of no stream, the operator the stream's head.
    expect(await cursorPosition(server, service, 'system.dashboard')).toBe('0');
    expect(await cursorPosition(server, operator, 'system.dashboard')).not.toBe('0');
  });

  it('reads them in the environment (no tenant) for the development principal, whose tenant is default', { timeout: 60_000 }, async () => {
    // No JWT: every caller is the development principal (default/default, tenant default, admin),
    // and the operators' environment is default/default.
    const server = await startTestServer({ DASHBOARD_TICK_SECONDS: '1' }, { embedded: true });
    const screen = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(screen, 'dashboard', { topic: 'system.dashboard' });
    const ticks = await takeEvents(screen, 'dashboard', 2);
    expect(ticks.map((tick) => tick.type)).toEqual(['dashboard.updated', 'dashboard.updated']);
  });
});
