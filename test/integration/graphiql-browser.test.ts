/**
 * GraphiQL in a real browser (Debian's Chromium, headless) against a server that requires
 * tokens: the token typed into the Headers tab must reach the socket's `connection_init`.
 */
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

/** GraphiQL ships ~9 MB of inline script; on a loaded machine it takes a while to start. */
const PAGE_TIMEOUT_MS = 90_000;

/** An editor's text as a user reads it (Monaco renders spaces as no-break spaces). */
function editorText(rendered: string): string {
  return rendered.replaceAll('\u00a0', ' ');
}

describe('GraphiQL with JWT_SECRET', () => {
  let browser: Browser;
  let server: TestServer;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
    server = await startTestServer({ JWT_SECRET: TEST_SECRET }, { autoDispose: false });
  }, PAGE_TIMEOUT_MS);
  afterAll(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it('opens on an example with a publish mutation and an events subscription', async () => {
    const page = await browser.newPage();
    await page.goto(server.graphqlUrl);
    const editor = page.locator('.graphiql-query-editor .view-lines');
    await editor.waitFor({ timeout: PAGE_TIMEOUT_MS });
    const text = editorText(await editor.innerText());
    expect(text).toContain('subscription Watch {');
    expect(text).toContain('events(topic: "demo.greetings")');
    expect(text).toContain('mutation Publish {');
    expect(text).toContain('publish(topic: "demo.greetings"');
    expect(text).not.toContain('Welcome to');
  }, PAGE_TIMEOUT_MS);

  it('runs a subscription with the token from the Headers tab and shows a published event', async () => {
    const token = await signHs256({ roles: ['admin'] });
    const subscription = 'subscription { events(topic: "browser.demo") { type payload } }';
    const page = await browser.newPage();
    await page.goto(`${server.graphqlUrl}?query=${encodeURIComponent(subscription)}`);
    await page.locator('.graphiql-execute-button').waitFor({ timeout: PAGE_TIMEOUT_MS });

    // The Headers tab, as a user fills it in (inserted as text: the editor would auto-close braces).
    await page.getByRole('button', { name: 'Headers', exact: true }).click();
    const headersEditor = page.locator('.graphiql-editor-tool .monaco-editor:visible');
    await headersEditor.click();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${token}` }));
    await page.locator('.graphiql-execute-button').click();

    // Published only once the server holds the subscription, so the event cannot be missed.
    await waitFor(() => server.stats().subscribers === 1, { timeoutMs: PAGE_TIMEOUT_MS / 2, message: 'GraphiQL subscribed' });
    const published = await postGraphQL(
      server.graphqlUrl,
      { query: 'mutation { publish(topic: "browser.demo", type: "demo.hello", payload: {text: "from http"}) { id } }' },
      { authorization: `Bearer ${token}` },
    );
    expect(published.body.errors).toBeUndefined();

    const response = page.locator('.graphiql-response .view-lines');
    await expect.poll(async () => editorText(await response.innerText()), { timeout: PAGE_TIMEOUT_MS / 2 }).toContain('"from http"');
    const shown = editorText(await response.innerText());
    expect(shown).toContain('"type": "demo.hello"');
  }, PAGE_TIMEOUT_MS * 2);
});
