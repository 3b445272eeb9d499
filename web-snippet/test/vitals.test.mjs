// The snippet against the reference: web-vitals 6.2.3 runs in the same page
// load of the same Chromium, and both must report the same numbers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, launch, until, fixtureKeys, FIXTURE_PAGES } from './harness.mjs';

// A page with a late large image-like block (LCP), shifts (CLS) and a slow
// click handler (INP). Both libraries load synchronously in <head>.
const PAGE = (extraHead = '') => `<!doctype html><html><head>
<meta charset="utf-8">${extraHead}
<script src="/web-vitals.js"></script>
<script src="/v1/snippet.js" data-site="test"></script>
<script src="/reference.js"></script>
</head><body>
<h1 id="title">Snippet test page</h1>
<div id="slot"></div>
<p style="font-size:40px" id="copy">Some paragraph text that paints first.</p>
<button id="slow" class="btn primary">slow</button>
<input id="field">
<script src="/page.js"></script>
</body></html>`;

const REFERENCE = `window.__ref = {};
['onLCP','onCLS','onINP','onFCP','onTTFB'].forEach(function (fn) {
  webVitals[fn](function (m) { window.__ref[m.name] = m.value; }, { reportAllChanges: true });
});`;

const PAGE_JS = `
document.getElementById('slow').addEventListener('click', function () {
  var until = performance.now() + 150; while (performance.now() < until) {}
});
document.getElementById('field').addEventListener('keydown', function () {
  var until = performance.now() + 60; while (performance.now() < until) {}
});
setTimeout(function () {
  var big = document.createElement('div');
  big.id = 'hero'; big.style.cssText = 'width:600px;height:400px;background:linear-gradient(red,blue)';
  big.textContent = 'hero block with enough text to be the largest contentful paint of this page';
  big.style.fontSize = '48px';
  document.getElementById('slot').appendChild(big);
}, 300);`;

let server;
let browser;
before(async () => {
  const pages = {
    '/page.html': { html: PAGE() },
    '/csp.html': { html: PAGE(), headers: { 'content-security-policy': "script-src 'self'; object-src 'none'" } },
    '/other.html': { html: '<!doctype html><p>elsewhere</p>' },
    // A browser without soft navigations (Safari, Firefox): the same page with
    // the API hidden before anything runs, as tests/fixtures/pages/hash-push/no-soft-nav.html does.
    '/no-soft-nav.html': { html: PAGE('<script src="/hide-soft-nav.js"></script>') },
  };
  server = await startServer(pages);
  // Served as files so the strict-CSP page can load them too.
  const hideSoftNav = await readFile(new URL('hash-push/hide-soft-nav.js', FIXTURE_PAGES), 'utf8');
  const extra = { '/reference.js': REFERENCE, '/page.js': PAGE_JS, '/hide-soft-nav.js': hideSoftNav };
  for (const [path, body] of Object.entries(extra)) pages[path] = { html: body, headers: { 'content-type': 'text/javascript' } };
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

const close = (a, b, tolerance) => Math.abs(a - b) <= tolerance;

async function loadAndInteract(page, path) {
  await page.goto(server.base + path, { waitUntil: 'load' });
  await page.waitForSelector('#hero');
  await page.waitForTimeout(300);
  await page.click('#slow');
  await page.click('#slow');
  await page.focus('#field');
  await page.keyboard.press('a');
  await page.waitForTimeout(300);
}

test('LCP, CLS, INP, FCP and TTFB equal the web-vitals reference', async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  await loadAndInteract(page, '/page.html');
  // web-vitals handles event entries when the page is idle: wait until it has
  // caught up with the last interaction (or give up and let the asserts say why).
  const ref = await until(() =>
    page.evaluate(() => {
      const inp = window.__vitalsign.read().reports.find((r) => r.metric === 'INP');
      return window.__ref.INP !== undefined && inp && Math.abs(inp.value - window.__ref.INP) < 1 && window.__ref;
    }),
  ).catch(() => page.evaluate(() => window.__ref));
  const ours = Object.fromEntries(
    (await page.evaluate(() => window.__vitalsign.read().reports)).map((r) => [r.metric, r]),
  );
  for (const name of ['LCP', 'FCP', 'TTFB']) {
    assert.ok(ours[name], `snippet has no ${name}`);
    assert.ok(close(ours[name].value, ref[name], 0.1), `${name}: ours ${ours[name].value} vs web-vitals ${ref[name]}`);
  }
  assert.ok(close(ours.CLS.value, ref.CLS, 1e-5), `CLS: ours ${ours.CLS.value} vs web-vitals ${ref.CLS}`);
  assert.ok(ref.CLS > 0, 'the inserted hero block shifts the page');
  assert.equal(ours.INP.value, ref.INP, 'INP');
  assert.ok(ours.INP.value >= 150, 'the 150 ms click handler is in INP');
  assert.equal(ours.INP.attribution.target, '#slow');
  assert.equal(ours.INP.attribution.interaction, 'pointer');
  assert.equal(ours.LCP.attribution.target, '#hero');
  await page.close();
});

test('a hidden page sends exactly one text/plain beacon that matches the shared fixtures', async () => {
  const before = server.beacons.length;
  const page = await browser.newPage();
  await loadAndInteract(page, '/page.html');
  await page.goto(server.base + '/other.html');
  const [beacon] = await until(() => server.beacons.length > before && server.beacons.slice(before));
  await page.waitForTimeout(300);
  assert.equal(server.beacons.length, before + 1, 'one beacon per flush');
  assert.match(beacon.contentType, /^text\/plain/);
  const body = beacon.body;
  assert.equal(body.site, 'test');
  assert.equal(body.url, server.base + '/page.html');
  assert.deepEqual(body.reports.map((r) => r.metric).sort(), ['CLS', 'FCP', 'INP', 'LCP', 'TTFB']);

  // Every key the snippet sends is one the valid fixtures (and so the Rust
  // wire contract) know, so the two sides cannot drift apart silently.
  const known = await fixtureKeys();
  Object.keys(body).forEach((k) => assert.ok(known.top.has(k), `beacon key ${k} is in no valid fixture`));
  for (const r of body.reports) {
    Object.keys(r).forEach((k) => assert.ok(known.report.has(k), `report key ${k} is in no valid fixture`));
    Object.keys(r.attribution || {}).forEach((k) =>
      assert.ok(known.attribution.has(k), `attribution key ${k} is in no valid fixture`),
    );
  }
  await page.close();
});

test('without soft navigations, a History-API route change flushes the old route and starts a new page view', async () => {
  const before = server.beacons.length;
  const page = await browser.newPage();
  await loadAndInteract(page, '/no-soft-nav.html');
  assert.equal(await page.evaluate(() => PerformanceObserver.supportedEntryTypes.includes('soft-navigation')), false);
  const first = await page.evaluate(() => window.__vitalsign.read().page_view_id);
  await page.evaluate(() => history.pushState({}, '', '/route-b'));
  const [flushed] = await until(() => server.beacons.length > before && server.beacons.slice(before));
  assert.equal(flushed.body.page_view_id, first);
  assert.equal(flushed.body.url, server.base + '/no-soft-nav.html');
  const second = await page.evaluate(() => window.__vitalsign.read());
  assert.notEqual(second.page_view_id, first);
  assert.equal(second.url, server.base + '/route-b');
  assert.equal(second.navigation_type, 'route');
  // The new route has its own INP: the old route's slow click is not in it.
  await page.keyboard.press('b');
  await page.waitForTimeout(300);
  const inp = (await page.evaluate(() => window.__vitalsign.read().reports)).find((r) => r.metric === 'INP');
  // (By target, not by value: on a loaded machine the key press alone can take 150 ms.)
  assert.ok(!inp || inp.attribution.target !== '#slow', `route B inherited route A's INP: ${JSON.stringify(inp)}`);

  // A fragment that is an anchor is no route; one that looks like a path is,
  // pushed or followed (popstate), without the fragment's query.
  const views = () => page.evaluate(() => window.__vitalsign.read());
  await page.evaluate(() => history.pushState({}, '', '#details'));
  assert.equal((await views()).page_view_id, second.page_view_id, '#details is an anchor, not a route');
  await page.evaluate(() => history.pushState({}, '', '#/cart?coupon=SECRET'));
  const cart = await views();
  assert.notEqual(cart.page_view_id, second.page_view_id);
  assert.equal(cart.url, server.base + '/route-b#/cart');
  await page.evaluate(() => (location.hash = '#!/orders/42'));
  const orders = await until(async () => {
    const v = await views();
    return v.page_view_id !== cart.page_view_id && v;
  });
  assert.equal(orders.url, server.base + '/route-b#!/orders/42');
  assert.equal(orders.navigation_type, 'route');
  await page.close();
});

test('with soft navigations, a URL change the browser does not call a navigation starts no route (as web-vitals)', async () => {
  const page = await browser.newPage();
  await loadAndInteract(page, '/page.html');
  assert.ok(await page.evaluate(() => PerformanceObserver.supportedEntryTypes.includes('soft-navigation')));
  const first = await page.evaluate(() => window.__vitalsign.read().page_view_id);
  // No user interaction caused it: Chromium reports no soft navigation.
  await page.evaluate(() => history.pushState({}, '', '/route-b#/cart'));
  await page.waitForTimeout(300);
  const now = await page.evaluate(() => ({
    view: window.__vitalsign.read(),
    soft: performance.getEntriesByType('soft-navigation').length,
    ref: window.__ref,
  }));
  assert.equal(now.soft, 0, 'Chromium saw no soft navigation');
  assert.equal(now.view.page_view_id, first);
  assert.equal(now.view.url, server.base + '/page.html');
  await page.close();
});

test('works under a strict CSP with no violations', async () => {
  const page = await browser.newPage();
  const violations = [];
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && violations.push(m.text()));
  await loadAndInteract(page, '/csp.html');
  const reports = await page.evaluate(() => window.__vitalsign.read().reports);
  assert.ok(reports.some((r) => r.metric === 'LCP'), 'measures under CSP');
  assert.deepEqual(violations, []);
  await page.close();
});
