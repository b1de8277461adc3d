/**
 * The React example (examples/react-contacts) in a real browser — Debian's Chromium, headless,
 * driven by playwright-core — against a real server reading Postgres by CDC: the page shows a row
 * inserted after it loaded, and React StrictMode (development build: every component mounted,
 * unmounted and mounted again) still makes one server subscription.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startReactContacts } from '../../examples/react-contacts/serve.ts';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../helpers/cdc.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { launchChromium, PAGE_TIMEOUT_MS } from '../helpers/browser.ts';

interface OperationSent {
  readonly query: string;
}

/** The graphql-ws `subscribe` messages the page sends (queries travel as `subscribe` too). */
function recordOperations(page: Page): OperationSent[] {
  const sent: OperationSent[] = [];
  page.on('websocket', (socket) => {
    socket.on('framesent', ({ payload }) => {
      const message = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8')) as { type?: string; payload?: { query?: string } };
      if (message.type === 'subscribe') sent.push({ query: message.payload?.query ?? '' });
    });
  });
  return sent;
}

describe('React example (useRealtime in a browser)', () => {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  }, PAGE_TIMEOUT_MS);
  afterAll(async () => {
    await browser?.close();
  });

  it('shows a row inserted into Postgres after the page loaded, with one server subscription under StrictMode', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await insertContact(setup, 'a', 'Ann');
    await insertContact(setup, 'b', 'Other tenant');
    const example = await startReactContacts();
    onTestFinished(() => example.close());
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const subscribersBefore = setup.server.stats().subscribers;

    const context = await browser!.newContext();
    onTestFinished(() => context.close());
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    const pageErrors: Error[] = [];
    page.on('pageerror', (error) => void pageErrors.push(error));
    const operations = recordOperations(page);

    await page.goto(`${example.url}?ws=${encodeURIComponent(setup.server.wsUrl)}&token=${encodeURIComponent(token)}`, { timeout: PAGE_TIMEOUT_MS });
    const contacts = page.getByRole('list', { name: 'contacts' }).getByRole('listitem');
    // The snapshot, then the stream: the list is rendered only once `isConnected` (live path subscribed).
    await expect.poll(() => contacts.allInnerTexts(), { timeout: PAGE_TIMEOUT_MS }).toEqual(['Ann']);
    await waitFor(() => setup.server.stats().subscribers === subscribersBefore + 1, { timeoutMs: PAGE_TIMEOUT_MS, message: 'the page subscribed' });

    await insertContact(setup, 'a', 'Bob');
    await expect.poll(() => contacts.allInnerTexts(), { timeout: PAGE_TIMEOUT_MS }).toEqual(['Ann', 'Bob']);
    expect(await page.getByRole('status').innerText()).toBe('New contact: Bob');

    // StrictMode mounted ContactList twice; the server holds one subscription, and the page sent
    // one `changes` subscription and read the snapshot once.
    expect(setup.server.stats().subscribers).toBe(subscribersBefore + 1);
    expect(operations.filter((operation) => /\bchanges\s*\(/.test(operation.query))).toHaveLength(1);
    expect(operations.filter((operation) => /\brecords\s*\(/.test(operation.query))).toHaveLength(1);
    expect(pageErrors).toEqual([]);
  }, PAGE_TIMEOUT_MS * 2);
});
