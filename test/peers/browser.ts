// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, with a fresh profile per run.
//
// const b = await launchBrowser();          // page at 1024×768, self-signed HTTPS accepted
// await b.page.goto(`https://127.0.0.1:${port}/`);
// b.requests                                 // every URL the page asked for (to prove it asks nobody but the box)
// await b.close();                           // closes Chromium and removes the profile
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.PRINTBOX_CHROMIUM ?? '/usr/bin/chromium';

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  requests: string[];
  /** Uncaught errors in the page: a page that throws should fail its test. */
  errors: string[];
  /** Console errors (includes the browser's own "Failed to load resource: 401" lines, which are expected). */
  console: string[];
  close(): Promise<void>;
}

export async function chromiumAvailable(): Promise<boolean> {
  return fs.access(CHROMIUM).then(() => true, () => false);
}

export async function launchBrowser(opts: { viewport?: { width: number; height: number } } = {}): Promise<TestBrowser> {
  const profile = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-chromium-'));
  let context: BrowserContext;
  try {
    // launchPersistentContext is playwright's way to give Chromium its own --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
      ignoreHTTPSErrors: true,
      viewport: opts.viewport ?? { width: 1024, height: 768 },
      timeout: 30000,
    });
  } catch (err) {
    await fs.rm(profile, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(10000);
  const requests: string[] = [];
  const errors: string[] = [];
  const consoleErrors: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return {
    context,
    page,
    requests,
    errors,
    console: consoleErrors,
    async close() {
      await context.close().catch(() => {});
      await fs.rm(profile, { recursive: true, force: true });
    },
  };
}
