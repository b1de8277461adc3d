/**
 * The React example (examples/react-contacts) in a real browser against a real server that
 * requires JWTs, opened without a token or with a bad one: the server refuses the socket (4403)
 * and the page says so — with the server's reason — instead of "Reconnecting..." for ever.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startReactContacts } from '../../examples/react-contacts/serve.ts';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../helpers/cdc.ts';
import { launchChromium, PAGE_TIMEOUT_MS } from '../helpers/browser.ts';

describe('React example with a refused token', () => {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  }, PAGE_TIMEOUT_MS);
  afterAll(async () => {
    await browser?.close();
  });

  it('shows the server’s reason for no token and for a malformed one, not "Reconnecting..."', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await insertContact(setup, 'a', 'Ann');
    const example = await startReactContacts();
    onTestFinished(() => example.close());
    const context = await browser!.newContext();
    onTestFinished(() => context.close());

    for (const [query, reason] of [
      ['', /Forbidden: No token/],
      ['&token=not-a-jwt', /Forbidden: /],
    ] as const) {
      const page = await context.newPage();
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      const pageErrors: Error[] = [];
      page.on('pageerror', (error) => void pageErrors.push(error));
      await page.goto(`${example.url}?ws=${encodeURIComponent(setup.server.wsUrl)}${query}`, { timeout: PAGE_TIMEOUT_MS });
      const alert = page.getByRole('alert');
      await alert.waitFor({ timeout: PAGE_TIMEOUT_MS });
      expect(await alert.innerText()).toMatch(reason);
      expect(await page.getByText('Reconnecting...').count()).toBe(0);
      expect(pageErrors).toEqual([]);
      await page.close();
    }
  }, PAGE_TIMEOUT_MS * 3);
});
