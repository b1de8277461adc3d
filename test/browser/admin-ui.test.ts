/**
 * The admin UI (`/admin`) in a real browser — Debian's Chromium, headless, driven by
 * playwright-core — against a real server: signing in with an admin token (refused tokens shown
 * with their code), the dashboard's figures as the REST API gives them and refreshed by itself,
 * the hot topics of events published for the test with the window selector, the alert center with
 * an alert that really fired and its filters, "Forget token"; and a development-mode server that
 * needs no token, with an empty deployment and an API error shown readably. No page error, no
 * Content-Security-Policy violation.
 */
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { publishToTopics } from '../helpers/analytics.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';
import { launchChromium, PAGE_TIMEOUT_MS } from '../helpers/browser.ts';

const ENV = {
  JWT_SECRET: TEST_SECRET,
  // The test tokens' app/env (shop/prod): their admin is an operator and sees the dashboard.
  OPERATOR_SCOPE: 'shop/prod',
  DASHBOARD_TICK_SECONDS: '1',
  ANALYTICS_FLUSH_SECONDS: '1',
  ALERTS_EVALUATE_SECONDS: '1',
  ALERTS_MAX_CONNECTIONS: '1',
  ALERTS_FIRE_AFTER: '2',
};

const admin = () => signHs256({ sub: 'ops-admin', roles: ['admin'], permissions: [], tenant: undefined });

async function restGet<T>(server: TestServer, path: string, token?: string): Promise<T> {
  const response = await fetch(`${server.url}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  expect(response.status, path).toBe(200);
  return (await response.json()) as T;
}

interface Watched {
  readonly page: Page;
  readonly pageErrors: Error[];
  /** Console errors: a Content-Security-Policy violation is one. */
  readonly consoleErrors: string[];
}

async function openPage(browser: Browser, url: string): Promise<Watched> {
  const context = await browser.newContext();
  onTestFinished(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const pageErrors: Error[] = [];
  const consoleErrors: string[] = [];
  page.on('pageerror', (error) => void pageErrors.push(error));
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  await page.goto(url, { timeout: PAGE_TIMEOUT_MS });
  return { page, pageErrors, consoleErrors };
}

/** The value cell of a row of a figures table (`Cluster`, `Webhooks`…). */
const figure = (page: Page, table: string, row: string): Locator =>
  page.getByRole('table', { name: table, exact: true }).getByRole('row', { name: new RegExp(`^${row}\\b`) }).getByRole('cell');

/** The body rows of the shown screen's table, each as its cells' texts (the row header first). */
const rowsOf = (page: Page, screen: string): Promise<string[][]> =>
  page.locator(`#${screen} tbody tr`).evaluateAll((rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent ?? '')));

/**
 * The hot topics' rows on the page (topic, events) but the system's own topics — when they are
 * every row the REST API lists for the window, in its order and with its counts.
 */
async function hotTopicsShown(page: Page, server: TestServer, token: string, window: string): Promise<string[][] | string> {
  const shown = (await rowsOf(page, 'hot-topics')).map((row) => [row[0] ?? '', row[2] ?? '']);
  const rest = await restGet<HotTopicsJson>(server, `/api/metrics/hot-topics?window=${window}`, token);
  const expected = rest.topics.map(({ topic, count }) => [topic, String(count)]);
  if (JSON.stringify(shown) !== JSON.stringify(expected)) return `page ${JSON.stringify(shown)}, REST ${JSON.stringify(expected)}`;
  return shown.filter(([topic]) => !topic?.startsWith('system.'));
}

interface HotTopicsJson {
  window: string;
  topics: { topic: string; count: number; deliveries: number }[];
}

interface AlertsJson {
  alerts: { rule: string; subject: string; severity: string; status: string; value: number | null }[];
}

describe('admin UI (a browser)', () => {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  }, PAGE_TIMEOUT_MS);
  afterAll(async () => {
    await browser?.close();
  });

  it('signs in with an admin token and shows the dashboard, hot topics and alerts the REST API gives', async () => {
    const server = await startTestServer(ENV);
    const token = await admin();
    // Two sockets (over ALERTS_MAX_CONNECTIONS: the cluster connections alert fires), one subscribed to `orders`.
    const reader = await openAcknowledgedSocket(server.wsUrl, await signHs256({ tenant: undefined, permissions: ['orders.read'] }));
    reader.send({ id: 'o', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id } }' } });
    await openAcknowledgedSocket(server.wsUrl, token);
    await waitFor(() => server.stats().subscribers === 1, { timeoutMs: PAGE_TIMEOUT_MS, message: 'the reader subscribed' });
    const publisher = await signHs256({ tenant: undefined, permissions: ['orders.publish', 'payments.publish'] });
    await publishToTopics(server, ['orders', 'orders', 'orders', 'payments'], 20, publisher);
    const hot = (await waitFor(
      async () => {
        const view = await restGet<HotTopicsJson>(server, '/api/metrics/hot-topics?window=1m', token);
        // The alert events the test raises are counted too (`system.alerts`), whenever they come.
        const ours = view.topics.filter(({ topic }) => !topic.startsWith('system.'));
        return ours.length === 2 ? ours : undefined;
      },
      { timeoutMs: PAGE_TIMEOUT_MS, message: 'the hot topics counted both topics' },
    )) as HotTopicsJson['topics'];
    expect(hot.map(({ topic, count }) => [topic, count])).toEqual([
      ['orders', 3],
      ['payments', 1],
    ]);

    const { page, pageErrors, consoleErrors } = await openPage(browser!, `${server.url}/admin`);
    // A token the server refuses, then one without the admin role: both shown with their code, neither kept.
    const tokenField = page.getByLabel('Admin token (JWT)');
    const signInError = page.locator('#sign-in-error');
    await tokenField.fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => signInError.innerText()).toMatch(/^Not signed in: HTTP 401 UNAUTHENTICATED: /);
    await tokenField.fill(await signHs256({ roles: [] }));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => signInError.innerText()).toMatch(/^Not signed in: HTTP 403 FORBIDDEN: /);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await tokenField.fill(`Bearer ${token}`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('tributary.adminToken'))).toBe(token);

    // Dashboard: the figures of the REST answer; it refreshes by itself (a third socket shows up).
    await expect.poll(() => figure(page, 'Cluster', 'Connections').innerText(), { timeout: PAGE_TIMEOUT_MS }).toBe('2');
    const dashboard = await restGet<{ cluster: { connections: number; subscriptions: number }; instances: { instance: string }[] }>(server, '/api/metrics/dashboard', token);
    expect(dashboard.cluster).toMatchObject({ connections: 2, subscriptions: 1 });
    expect(await figure(page, 'Cluster', 'Subscriptions').innerText()).toBe('1');
    expect(await figure(page, 'Webhooks', 'Pending').innerText()).toBe('0');
    expect((await rowsOf(page, 'dashboard')).filter((row) => row[0] === dashboard.instances[0]?.instance).map((row) => row[1])).toEqual(['all']);
    await openAcknowledgedSocket(server.wsUrl, token);
    await expect.poll(() => figure(page, 'Cluster', 'Connections').innerText(), { timeout: PAGE_TIMEOUT_MS }).toBe('3');

    // Hot topics: the REST answer's topics and counts, then the window selector.
    await page.getByRole('link', { name: 'Hot topics' }).click();
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe('Hot topics');
    // The page shows every topic REST lists (`system.alerts` too), in its order, with its counts.
    await expect.poll(() => hotTopicsShown(page, server, token, '1m'), { timeout: PAGE_TIMEOUT_MS }).toEqual([
      ['orders', '3'],
      ['payments', '1'],
    ]);
    const hourly = page.waitForResponse((response) => response.url().includes('window=1h'));
    await page.getByLabel('Window').selectOption('1h');
    expect((await hourly).status()).toBe(200);
    await expect.poll(() => page.locator('#hot-topics caption').innerText()).toBe('Hot topics, last hour, by events');
    await expect.poll(() => hotTopicsShown(page, server, token, '1h'), { timeout: PAGE_TIMEOUT_MS }).toEqual([
      ['orders', '3'],
      ['payments', '1'],
    ]);

    // Alert center: the alert that fired, as the REST API lists it; the filters ask the route.
    const fired = (await waitFor(
      async () => (await restGet<AlertsJson>(server, '/api/alerts?status=firing', token)).alerts.find((alert) => alert.rule === 'cluster.connections'),
      { timeoutMs: PAGE_TIMEOUT_MS, message: 'the cluster connections alert fired' },
    )) as AlertsJson['alerts'][number];
    await page.getByRole('link', { name: 'Alert center' }).click();
    await expect.poll(async () => (await rowsOf(page, 'alerts')).map((row) => row.slice(0, 4)), { timeout: PAGE_TIMEOUT_MS }).toEqual([
      [fired.rule, fired.severity, 'firing', fired.subject],
    ]);
    const resolvedOnly = page.waitForResponse((response) => response.url().includes('status=resolved&'));
    await page.getByLabel('Firing').uncheck();
    await page.getByLabel('Acknowledged').uncheck();
    await page.getByLabel('Resolved').check();
    expect((await resolvedOnly).status()).toBe(200);
    await expect.poll(() => page.locator('#alerts .body').innerText()).toBe('No alert matches these filters.');

    // Forget: the token goes, the sign-in form comes back, a reload asks again.
    await page.getByRole('button', { name: 'Forget token' }).click();
    await tokenField.waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.reload();
    await tokenField.waitFor();
    expect(await page.getByRole('main').isHidden()).toBe(true);

    expect(pageErrors).toEqual([]);
    expect(consoleErrors.filter((text) => /Content Security Policy|Trusted Type/i.test(text))).toEqual([]);
  }, PAGE_TIMEOUT_MS * 4);

  it('asks for no token in development mode, shows an empty deployment and API errors readably', async () => {
    const server = await startTestServer({ DASHBOARD_TICK_SECONDS: '1' });
    const { page, pageErrors, consoleErrors } = await openPage(browser!, `${server.url}/admin/#hot-topics`);
    await page.getByRole('heading', { name: 'Hot topics' }).waitFor();
    expect(await page.locator('#identity').innerText()).toMatch(/^Development mode/);
    expect(await page.getByRole('button', { name: 'Forget token' }).isHidden()).toBe(true);
    expect(await page.getByLabel('Admin token (JWT)').isHidden()).toBe(true);
    await expect.poll(() => page.locator('#hot-topics .body').innerText()).toBe('No topic had events in the last minute.');

    // A limit the route refuses: its status and code on the page.
    await page.getByLabel('Topics', { exact: true }).fill('0');
    await page.getByRole('button', { name: 'Refresh' }).first().click();
    await expect.poll(() => page.locator('#hot-topics [role="alert"]').innerText()).toBe('HTTP 400 BAD_USER_INPUT: limit must be from 1 to 100');

    await page.getByRole('link', { name: 'Alert center' }).click();
    await expect.poll(() => page.locator('#alerts .body').innerText()).toBe('No alert matches these filters.');
    await page.getByRole('link', { name: 'Dashboard' }).click();
    // The development principal is the default operators' admin: the dashboard, once the instance reported.
    await expect.poll(async () => (await rowsOf(page, 'dashboard')).some((row) => row[1] === 'all'), { timeout: PAGE_TIMEOUT_MS }).toBe(true);
    expect(await figure(page, 'Cluster', 'Connections').innerText()).toBe('0');
    expect(await page.getByRole('table', { name: 'Events by source' }).getByRole('row').count()).toBe(5);
    expect(await page.locator('#dashboard .empty').allInnerTexts()).toEqual(['No CDC source.', 'No outbox.']);

    expect(pageErrors).toEqual([]);
    expect(consoleErrors.filter((text) => /Content Security Policy|Trusted Type/i.test(text))).toEqual([]);
  }, PAGE_TIMEOUT_MS * 3);
});
