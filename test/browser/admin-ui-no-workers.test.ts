/**
 * The admin UI's dashboard, in a real browser (Debian's Chromium, headless), of a server (role
 * `server`, real Redis and Postgres) with no workers process: the backlogs nobody measures are
 * shown unknown — not 0, not "n/a", not NaN — the outboxes unknown rather than "No outbox.", under
 * the warning that nothing runs the workers' jobs.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { launchChromium, PAGE_TIMEOUT_MS } from '../helpers/browser.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';

// The test tokens' app/env (shop/prod): their admin is an operator and sees the dashboard.
const ENV = { JWT_SECRET: TEST_SECRET, OPERATOR_SCOPE: 'shop/prod', DASHBOARD_TICK_SECONDS: '1' };

/** The value cell of a row of a figures table. */
const figure = (page: Page, table: string, row: string) =>
  page.getByRole('table', { name: table, exact: true }).getByRole('row', { name: new RegExp(`^${row}\\b`) }).getByRole('cell');

describe('admin UI (a browser) with no workers process', () => {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  }, PAGE_TIMEOUT_MS);
  afterAll(async () => {
    await browser?.close();
  });

  it('shows the webhook and outbox backlogs unknown, under the warning', async () => {
    const database = await createTestDatabase({ migrated: true });
    const server = await startTestServer({ ...ENV, TRIBUTARY_ROLE: 'server', DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() });
    const token = await signHs256({ sub: 'ops-admin', roles: ['admin'], permissions: [], tenant: undefined });
    const context = await browser!.newContext();
    onTestFinished(() => context.close());
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    const pageErrors: Error[] = [];
    page.on('pageerror', (error) => void pageErrors.push(error));
    await page.goto(`${server.url}/admin`, { timeout: PAGE_TIMEOUT_MS });
    await page.getByLabel('Admin token (JWT)').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();

    // Once the server has reported (the instance list is a table then).
    await expect.poll(() => page.getByRole('table', { name: 'Instances', exact: true }).count(), { timeout: PAGE_TIMEOUT_MS }).toBe(1);
    expect(await figure(page, 'Webhooks', 'Pending').innerText()).toBe('unknown');
    expect(await figure(page, 'Webhooks', 'Oldest pending').innerText()).toBe('unknown');
    expect(await page.locator('#dashboard .empty').allInnerTexts()).toEqual(['No CDC source.', 'Outboxes unknown: no workers process reports them.']);
    expect(await page.locator('#dashboard p.badge').allInnerTexts()).toEqual([
      'no workers process has reported in the last 10 minutes: outbox routing, webhook delivery and alerts are stopped',
    ]);
    expect(pageErrors).toEqual([]);
  }, PAGE_TIMEOUT_MS * 3);
});
