/**
 * Debian's Chromium for the browser tests, headless, driven by playwright-core (its own browser
 * download fails here; `.ci/run` installs the `chromium` package when it is missing).
 */
import { chromium, type Browser } from 'playwright-core';

/** Every wait in a page is bounded by this; a test by a multiple of it. */
export const PAGE_TIMEOUT_MS = 30_000;

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, timeout: PAGE_TIMEOUT_MS });
}
