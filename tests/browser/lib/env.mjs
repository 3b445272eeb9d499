// What every dashboard test starts: a loopback page server for the test site
// `shop` (the shared fixture pages, with the collector's own snippet injected),
// the real collector binary with that origin allowed, Debian's Chromium, and
// small clients for the collector's query API and its sign-in form.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { startServer } from '../../../web-snippet/test/harness.mjs';
import { startCollector } from '../../../web-snippet/test/collector-process.mjs';

export const SITE = 'shop';
export const QUERY_TOKEN = 'dashboard-query-token-5f2c';
export const AGENT_TOKEN = 'dashboard-agent-token-91ab';
/** Where the screenshots of each view go: artefacts to look at, never compared. */
export const SCREENSHOTS = new URL('../../../target/dashboard-screenshots/', import.meta.url);

export function collectorConfig(origin) {
  return [
    `query_tokens = ["${QUERY_TOKEN}"]`,
    `agent_tokens = ["${AGENT_TOKEN}"]`,
    // Every beacon of a test comes from 127.0.0.1: the per-client limit is not under test here.
    'rate_limit_per_second = 1000.0',
    'rate_limit_burst = 1000.0',
    '',
    '[alerts]',
    // Flow-failure alerts are decided on every tick: one a second, so a test
    // waits about a second for the alert two failed runs raise.
    'evaluate_every_secs = 1',
    '',
    `[sites.${SITE}]`,
    `origins = ["${origin}"]`,
    '',
  ].join('\n');
}

export async function startEnv() {
  const server = await startServer({}, { site: SITE });
  let collector;
  try {
    collector = await startCollector(collectorConfig(server.base), { name: 'vitalsign-dashboard-' });
  } catch (e) {
    await server.close();
    throw e;
  }
  server.snippetSrc = `${collector.base}/v1/snippet.js`;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
  const base = collector.base;

  /** GET a query API path with the query token; the parsed JSON of a 200. */
  const api = async (path) => {
    const res = await fetch(base + path, { headers: { authorization: `Bearer ${QUERY_TOKEN}` } });
    const text = await res.text();
    assert.equal(res.status, 200, `GET ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  };

  /** A browser context signed in through the real form, and a page in it. */
  const signedIn = async (options = {}) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
    const page = await context.newPage();
    await page.goto(`${base}/signin`);
    await page.getByLabel('Query token').fill(QUERY_TOKEN);
    await Promise.all([page.waitForURL(`${base}/`), page.getByRole('button', { name: 'Sign in' }).click()]);
    return { context, page };
  };

  /** Open a dashboard path; it must answer 200 (a 501 names the view as unfinished). */
  const open = async (page, path) => {
    const res = await page.goto(base + path);
    assert.notEqual(res.status(), 501, `${path} answers 501: that view is not implemented yet`);
    assert.equal(res.status(), 200, `${path} answered ${res.status()}: ${await res.text()}`);
    return res;
  };

  /** A full-page screenshot of the current view as target/dashboard-screenshots/<name>.png. */
  const screenshot = async (page, name) => {
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: new URL(`${name}.png`, SCREENSHOTS).pathname, fullPage: true });
  };

  const close = async () => {
    await browser.close();
    await server.close();
    await collector.stop();
  };
  return { server, collector, base, browser, api, signedIn, open, screenshot, close };
}
