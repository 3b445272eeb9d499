// The snippet against the real collector: the page loads the snippet the
// collector serves (byte-for-byte dist/vitalsign.min.js), its beacons pass the
// collector's validation (core/src/wire/beacon.rs) and are stored, and the
// stored values read back through the query API are the ones the page measured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { get } from 'node:http';
import { startServer, launch, until, SNIPPET_PATH, fixtureKeys } from './harness.mjs';
import { startCollector } from './collector-process.mjs';

const TOKEN = 'snippet-test-token';

let collector;
let collectorBase;
let server;
let browser;

/** GET without Accept-Encoding, so the body is the raw file. */
const rawGet = (url, headers = {}) =>
  new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });

before(async () => {
  // The test server's origin goes into the collector's allowlist for site `test`.
  server = await startServer();
  collector = await startCollector(
    `query_tokens = ["${TOKEN}"]\n\n[sites.test]\norigins = ["${server.base}"]\n`,
    { name: 'vitalsign-snippet-' },
  );
  collectorBase = collector.base;
  server.snippetSrc = `${collectorBase}/v1/snippet.js`;
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
  await collector?.stop();
});

test('the collector serves byte-for-byte the tested build', async () => {
  const served = await rawGet(`${collectorBase}/v1/snippet.js`);
  assert.equal(served.status, 200);
  assert.equal(served.headers['content-encoding'], undefined);
  const dist = await readFile(SNIPPET_PATH);
  assert.ok(
    served.body.equals(dist),
    'the collector embeds a different dist/vitalsign.min.js: rebuild it (cargo build --bin vitalsign-collector)',
  );
});

test('beacons from a real page are stored, re-reports replace, and read back equal', async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  const bodies = [];
  page.on('request', (r) => r.url() === `${collectorBase}/v1/rum` && bodies.push(JSON.parse(r.postData())));
  await page.goto(`${server.base}/interactions-worst-wins/`, { waitUntil: 'load' });
  assert.equal(
    await page.evaluate(() => document.querySelector('script[data-site]').src),
    `${collectorBase}/v1/snippet.js`,
  );
  // Hidden the way a browser reports it (a headless tab never is): each hide is one flush.
  const hide = () =>
    page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
      delete document.visibilityState;
      document.dispatchEvent(new Event('visibilitychange'));
    });
  await page.click('#b60');
  await page.waitForTimeout(300);
  await hide();
  await until(() => bodies.length === 1);
  // Then a worse interaction: INP is reported again for the same page view.
  await page.click('#b220');
  await page.waitForTimeout(300);
  const measured = await page.evaluate(() => window.__vitalsign.read());
  await hide();
  await until(() => bodies.length === 2);
  await page.waitForTimeout(200);
  assert.equal(bodies.length, 2, 'one beacon per flush');
  assert.deepEqual(errors, []);

  // Two beacons, the same page view; the second holds only what changed.
  assert.equal(bodies[0].page_view_id, measured.page_view_id);
  assert.equal(bodies[1].page_view_id, measured.page_view_id);
  assert.deepEqual(bodies[0].reports.map((r) => r.metric).sort(), ['CLS', 'FCP', 'INP', 'LCP', 'TTFB']);
  assert.ok(bodies[1].reports.some((r) => r.metric === 'INP'));
  assert.ok(!bodies[1].reports.some((r) => r.metric === 'TTFB'), 'TTFB is not sent twice');
  const inp1 = bodies[0].reports.find((r) => r.metric === 'INP').value;
  const inp2 = bodies[1].reports.find((r) => r.metric === 'INP').value;
  assert.ok(inp1 >= 60 && inp1 < 220 && inp2 >= 220, `INP ${inp1} then ${inp2}`);

  // The first beacon (all five metrics) has the shape of the wire contract's
  // full-page-view fixture: the same top-level keys and the same INP attribution.
  const full = JSON.parse(await readFile(new URL('../../tests/fixtures/beacon/valid/full-page-view.json', import.meta.url)));
  const optional = ['effective_type']; // only where the browser exposes navigator.connection
  assert.deepEqual(
    Object.keys(bodies[0]).filter((k) => !optional.includes(k)).sort(),
    Object.keys(full).filter((k) => !optional.includes(k)).sort(),
  );
  const inpOf = (b) => b.reports.find((r) => r.metric === 'INP');
  assert.deepEqual(Object.keys(inpOf(bodies[0])).sort(), Object.keys(inpOf(full)).sort());
  assert.deepEqual(Object.keys(inpOf(bodies[0]).attribution).sort(), Object.keys(inpOf(full).attribution).sort());
  assert.equal(bodies[0].schema_version, full.schema_version);
  assert.equal(bodies[0].snippet_version, full.snippet_version);

  // Every key is one the shared valid fixtures know.
  const known = await fixtureKeys();
  for (const body of bodies) {
    Object.keys(body).forEach((k) => assert.ok(known.top.has(k), `beacon key ${k} is in no valid fixture`));
    for (const r of body.reports) {
      Object.keys(r).forEach((k) => assert.ok(known.report.has(k), `report key ${k}`));
      Object.keys(r.attribution || {}).forEach((k) => assert.ok(known.attribution.has(k), `attribution key ${k}`));
    }
  }

  // Stored and queryable: one sample per metric (the re-report replaced the
  // first INP), equal to what the page measured.
  for (const report of measured.reports) {
    const url = `${collectorBase}/api/v1/summary?metric=${report.metric}&site=test&source=rum&range=1h`;
    const summary = await until(async () => {
      const res = await rawGet(url, { authorization: `Bearer ${TOKEN}` });
      assert.equal(res.status, 200, res.body.toString());
      const s = JSON.parse(res.body).summary;
      return s.count > 0 && (report.metric !== 'INP' || s.p50 >= 220) && s;
    }, 10000);
    console.log(`collector: ${report.metric} page ${report.value} | stored ${summary.p50} (count ${summary.count})`);
    assert.equal(summary.count, 1, `${report.metric}: one sample per page view`);
    assert.equal(summary.p50, report.value, `${report.metric}: stored ${summary.p50}, measured ${report.value}`);
    assert.equal(summary.resolution, 'raw');
  }
  await context.close();
});

test('a hash router\'s routes are page views of their own, grouped by the fragment\'s path', async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  const bodies = [];
  page.on('request', (r) => r.url() === `${collectorBase}/v1/rum` && bodies.push(JSON.parse(r.postData())));
  await page.goto(`${server.base}/hash-router/`, { waitUntil: 'load' });
  for (const [button, link] of [['#slowHome', '#toCart'], ['#slowCart', '#toItem'], ['#slowItem']]) {
    await page.waitForSelector(button);
    await page.click(button);
    await page.waitForTimeout(250);
    if (link) await page.click(link);
  }
  // The last route goes out when the page is hidden (as the test above hides it).
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await until(() => bodies.length === 3);
  const urls = [...new Set(bodies.map((b) => b.url))];
  const base = `${server.base}/hash-router/`;
  assert.deepEqual(urls, [base, base + '#/cart', base + '#/product/7']);
  assert.deepEqual(errors, []);
  // Stored under one page group per route: INP is only measured after a click on each.
  const groups = await until(async () => {
    const url = `${collectorBase}/api/v1/top-pages?metric=INP&site=test&source=rum&range=1h`;
    const res = await rawGet(url, { authorization: `Bearer ${TOKEN}` });
    assert.equal(res.status, 200, res.body.toString());
    const pages = JSON.parse(res.body).pages.map((p) => p.page_group).filter((g) => g.startsWith('/hash-router'));
    return pages.length === 3 && pages.sort();
  }, 10000);
  assert.deepEqual(groups, ['/hash-router', '/hash-router/#/cart', '/hash-router/#/product/:id']);
  await context.close();
});
