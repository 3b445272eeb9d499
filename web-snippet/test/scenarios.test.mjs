// One test per fixture page in tests/fixtures/pages: our snippet and the
// web-vitals 6.2.3 reference run on the same page load in Debian's Chromium,
// and must agree (CLS to 1e-4, times to 1 ms). Each test also checks that its
// scenario really happened (the image was late, the shift had recent input, the
// page was restored from the bfcache, ...), so agreement is never vacuous.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, launch, until, SNIPPET_PATH } from './harness.mjs';

let server;
let browser;
before(async () => {
  server = await startServer();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

const TOLERANCE = { CLS: 1e-4, LCP: 1, INP: 1, FCP: 1, TTFB: 1 };
// After a bfcache restore, FCP and LCP are `performance.now() - pageshow.timeStamp`
// read in a double requestAnimationFrame, by the snippet and by web-vitals in two
// separate callbacks of the same frame. They differ by the time between those two
// callbacks (1.2 ms seen on a loaded CI machine), not by a frame: one frame late
// would be ~16.7 ms apart, which this tolerance still fails.
const RESTORE_TOLERANCE = { ...TOLERANCE, LCP: 5, FCP: 5 };
const tolerance = (opts) => (opts.navigationType === 'back-forward-cache' ? RESTORE_TOLERANCE : TOLERANCE);

async function open(path) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  if (path) await page.goto(server.base + path, { waitUntil: 'load' });
  return { context, page, errors };
}

/** Our current reports, by metric. */
async function ours(page) {
  const snap = await page.evaluate(() => window.__vitalsign.read());
  return { snap, by: Object.fromEntries(snap.reports.map((r) => [r.metric, r])) };
}

/** web-vitals' last reported value per metric (for one navigation type and URL, from one list). */
async function reference(page, names, { navigationType, list = 'reports', url } = {}) {
  return until(
    () =>
      page.evaluate(
        ([names, navigationType, list, url]) => {
          const out = {};
          for (const n of names) {
            const v = window.__ref.last(n, navigationType, window.__ref[list], url);
            if (v === undefined) return null;
            out[n] = v;
          }
          return out;
        },
        [names, navigationType, list, url],
      ),
    5000,
  );
}

/**
 * Waits until web-vitals has reported `names` and our values equal its values;
 * fails with both sets of numbers when they never agree. Returns ours.
 */
async function agree(scenario, page, names, opts = {}) {
  let last;
  try {
    await until(async () => {
      const ref = await reference(page, names, opts);
      const { by } = await ours(page);
      last = { ref, by };
      return names.every((n) => by[n] && Math.abs(by[n].value - ref[n]) <= tolerance(opts)[n]);
    }, 5000);
  } catch {
    // Fall through to the assertions, which name the metric that differs.
  }
  const { ref, by } = last;
  for (const n of names) {
    assert.ok(by[n], `${scenario}: the snippet has no ${n} (web-vitals: ${ref[n]})`);
    console.log(`${scenario}: ${n} ours ${by[n].value} | web-vitals ${ref[n]}`);
    assert.ok(
      Math.abs(by[n].value - ref[n]) <= tolerance(opts)[n],
      `${scenario}: ${n} ours ${by[n].value} vs web-vitals ${ref[n]}`,
    );
  }
  return by;
}

/** Every layout-shift entry of the page so far (value, hadRecentInput). */
const shifts = (page) =>
  page.evaluate(
    () =>
      new Promise((resolve) => {
        new PerformanceObserver((list, po) => {
          po.disconnect();
          resolve(list.getEntries().map((e) => ({ value: e.value, hadRecentInput: e.hadRecentInput, t: e.startTime })));
        }).observe({ type: 'layout-shift', buffered: true });
      }),
  );

test('late image LCP', async () => {
  const { context, page, errors } = await open('/late-image-lcp/');
  await page.waitForTimeout(300);
  const by = await agree('late-image-lcp', page, ['LCP', 'FCP', 'TTFB']);
  assert.ok(by.LCP.value >= 700, `LCP ${by.LCP.value} ms is the image held back 700 ms`);
  assert.ok(by.FCP.value < by.LCP.value, 'the heading painted before the image');
  assert.equal(by.LCP.attribution.target, '#hero');
  assert.equal(by.LCP.attribution.url, `${server.base}/late-image-lcp/hero.png?delay=700`);
  assert.deepEqual(errors, []);
  await context.close();
});

test('late text LCP', async () => {
  const { context, page, errors } = await open('/late-text-lcp/');
  await page.waitForSelector('#late');
  await page.waitForTimeout(300);
  const by = await agree('late-text-lcp', page, ['LCP', 'FCP', 'TTFB']);
  assert.ok(by.LCP.value >= 400, `LCP ${by.LCP.value} ms is the text inserted at 400 ms`);
  assert.equal(by.LCP.attribution.target, '#late');
  assert.equal(by.LCP.attribution.url, undefined, 'text has no resource URL');
  assert.deepEqual(errors, []);
  await context.close();
});

test('layout shifts in two session windows: CLS is the larger window', async () => {
  const { context, page, errors } = await open('/cls-two-windows/');
  await page.waitForSelector('#w2b');
  await page.waitForTimeout(400);
  const by = await agree('cls-two-windows', page, ['CLS']);
  const all = await shifts(page);
  assert.equal(all.length, 4, `four shifts: ${JSON.stringify(all)}`);
  const total = all.reduce((s, e) => s + e.value, 0);
  const second = all[2].value + all[3].value;
  assert.ok(all[2].t - all[1].t > 1000, 'more than 1 s between the windows');
  assert.ok(Math.abs(by.CLS.value - second) <= 1e-4, `CLS ${by.CLS.value} is window 2 (${second}), not all shifts (${total})`);
  assert.ok(by.CLS.value < total - 1e-3);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a shift right after input is excluded', async () => {
  const { context, page, errors } = await open('/shift-after-input/');
  await page.waitForSelector('#unexpected');
  await page.waitForTimeout(300);
  await page.click('#grow');
  await page.waitForTimeout(600);
  const by = await agree('shift-after-input', page, ['CLS']);
  const all = await shifts(page);
  const expected = all.filter((e) => e.hadRecentInput);
  assert.equal(expected.length, 1, `one shift with recent input: ${JSON.stringify(all)}`);
  assert.ok(expected[0].value > by.CLS.value, 'the big input-driven shift is not in CLS');
  assert.ok(by.CLS.value > 0, 'the unexpected shift is');
  assert.deepEqual(errors, []);
  await context.close();
});

test('several interactions: the worst one is INP', async () => {
  const { context, page, errors } = await open('/interactions-worst-wins/');
  for (const id of ['#b60', '#b220', '#b120']) {
    await page.click(id);
    await page.waitForTimeout(100);
  }
  await page.waitForTimeout(300);
  const by = await agree('interactions-worst-wins', page, ['INP', 'LCP', 'FCP', 'TTFB']);
  const inp = JSON.stringify(by.INP);
  // The worst interaction by the browser's own event timing (on an idle machine
  // #b220; on a loaded one another click can be slower, and then it must win).
  const worst = await page.evaluate(
    () =>
      new Promise((resolve) => {
        new PerformanceObserver((list, po) => {
          po.disconnect();
          const top = list.getEntries().filter((e) => e.interactionId).sort((a, b) => b.duration - a.duration)[0];
          resolve({ id: top.target && top.target.id, duration: top.duration });
        }).observe({ type: 'event', buffered: true, durationThreshold: 16 });
      }),
  );
  assert.ok(by.INP.value >= 220, `INP is at least the 220 ms click: ${inp}`);
  assert.equal(by.INP.value, worst.duration, `INP is the longest interaction: ${inp} vs ${JSON.stringify(worst)}`);
  assert.equal(by.INP.attribution.target, '#' + worst.id, inp);
  assert.equal(by.INP.attribution.interaction, 'pointer', inp);
  const split = by.INP.attribution;
  assert.ok(split.processing >= Number(worst.id.slice(1)) - 1, `processing covers the click handler: ${inp}`);
  assert.ok(Math.abs(split.input_delay + split.processing + split.presentation - by.INP.value) <= 0.3, `the split adds up: ${inp}`);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a key press is an interaction', async () => {
  const { context, page, errors } = await open('/key-press/');
  await page.focus('#field');
  await page.keyboard.press('a');
  await page.waitForTimeout(300);
  const by = await agree('key-press', page, ['INP']);
  assert.ok(by.INP.value >= 120, `INP ${by.INP.value} is the 120 ms keydown`);
  assert.equal(by.INP.attribution.interaction, 'keyboard');
  assert.equal(by.INP.attribution.target, '#field');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a page hidden before its first paint reports no FCP and no LCP', async () => {
  const before = server.beacons.length;
  const { context, page, errors } = await open('/hidden-before-paint/');
  await page.waitForSelector('#late');
  await page.waitForTimeout(400);
  const facts = await page.evaluate(() => ({
    hiddenAt: window.__hiddenAt,
    fcp: performance.getEntriesByType('paint').filter((e) => e.name === 'first-contentful-paint').map((e) => e.startTime),
  }));
  assert.ok(facts.hiddenAt > 0 && facts.fcp.length === 1 && facts.hiddenAt < facts.fcp[0],
    `the page was hidden before it painted: ${JSON.stringify(facts)}`);
  await agree('hidden-before-paint', page, ['TTFB']);
  const { snap, by } = await ours(page);
  const ref = await page.evaluate(() => window.__ref.reports.map((r) => r.name));
  for (const name of ['FCP', 'LCP', 'CLS']) {
    assert.ok(!ref.includes(name), `web-vitals reported ${name}`);
    assert.ok(!by[name], `the snippet reported ${name} ${by[name] && by[name].value}`);
  }
  // Hiding flushed what there was (TTFB, if the page had loaded by then): no paint metric.
  const sent = server.beacons.slice(before).filter((b) => b.body.page_view_id === snap.page_view_id);
  assert.ok(sent.length <= 1, 'at most one beacon for one hide');
  for (const b of sent) assert.ok(b.body.reports.every((r) => r.metric === 'TTFB'), JSON.stringify(b.body.reports));
  assert.deepEqual(errors, []);
  await context.close();
});

test('back and forward through the bfcache: a new page view with the restored values', async () => {
  const { context, page, errors } = await open('/bfcache/');
  await page.waitForTimeout(200);
  await page.click('#slow');
  await page.waitForTimeout(300);
  const first = await agree('bfcache (first view)', page, ['INP', 'LCP', 'FCP', 'TTFB']);
  const firstId = (await ours(page)).snap.page_view_id;
  await page.click('#away');
  await page.waitForURL('**/away.html');
  // The first view was flushed when it was hidden: one beacon with its id.
  const sent = await until(() => server.beacons.filter((b) => b.body.page_view_id === firstId));
  assert.equal(sent.length, 1);
  const sentInp = sent[0].body.reports.find((r) => r.metric === 'INP');
  assert.equal(sentInp.value, first.INP.value);

  await page.goBack({ waitUntil: 'commit' });
  const restored = await until(() =>
    page.evaluate(() => window.__ref.reports.some((r) => r.navigationType === 'back-forward-cache')),
  );
  assert.ok(restored, 'web-vitals saw a bfcache restore');
  await page.waitForTimeout(300);
  await page.click('#after');
  await page.waitForTimeout(300);
  const by = await agree('bfcache (restored)', page, ['TTFB', 'FCP', 'LCP', 'CLS', 'INP'], {
    navigationType: 'back-forward-cache',
  });
  const { snap } = await ours(page);
  assert.notEqual(snap.page_view_id, firstId, 'a restore is a new page view');
  assert.equal(snap.navigation_type, 'back-forward-cache');
  assert.equal(by.TTFB.value, 0);
  assert.ok(by.INP.value >= 90, `INP ${by.INP.value}`);
  assert.equal(by.INP.attribution.target, '#after', 'INP started over: the click before leaving is not in it');
  assert.deepEqual(errors, []);
  await context.close();
});

test('an SPA route change: each route has its own INP', async () => {
  const { context, page, errors } = await open('/spa-route/');
  await page.click('#slowA');
  await page.waitForTimeout(300);
  const firstId = (await ours(page)).snap.page_view_id;
  await page.click('#go');
  await page.waitForSelector('#slowB');
  await page.waitForTimeout(300);
  await page.click('#slowB');
  await page.waitForTimeout(300);
  // Route A went out in a beacon when the route changed.
  const [a] = await until(() => server.beacons.filter((b) => b.body.page_view_id === firstId));
  const inpA = a.body.reports.find((r) => r.metric === 'INP');
  assert.equal(a.body.url, `${server.base}/spa-route/`);
  // web-vitals with reportSoftNavs splits INP at Chromium's soft navigation.
  const softA = await reference(page, ['INP'], { navigationType: 'navigate', list: 'soft' });
  console.log(`spa-route: route A INP ours ${inpA.value} | web-vitals ${softA.INP}`);
  assert.ok(Math.abs(inpA.value - softA.INP) <= 1, `route A INP ours ${inpA.value} vs web-vitals ${softA.INP}`);
  assert.ok(inpA.value >= 250);
  assert.equal(inpA.attribution.target, '#slowA');
  const by = await agree('spa-route (route B)', page, ['INP'], { navigationType: 'soft-navigation', list: 'soft' });
  const { snap } = await ours(page);
  assert.notEqual(snap.page_view_id, firstId);
  assert.equal(snap.navigation_type, 'route');
  assert.equal(snap.url, `${server.base}/spa-route/route-b`);
  assert.ok(by.INP.value >= 120, `INP ${by.INP.value}`);
  assert.equal(by.INP.attribution.target, '#slowB', "route B has its own INP, without route A's click");
  assert.deepEqual(errors, []);
  await context.close();
});

test('no PerformanceObserver: loads cleanly and still reports TTFB', async () => {
  const { context, page, errors } = await open('/no-performance-observer/');
  assert.equal(await page.evaluate(() => typeof window.PerformanceObserver), 'undefined');
  await page.click('#slow');
  await page.waitForTimeout(300);
  const { snap } = await until(async () => {
    const o = await ours(page);
    return o.by.TTFB && o;
  });
  const nav = await page.evaluate(() => performance.getEntriesByType('navigation')[0].responseStart);
  const ttfb = snap.reports.find((r) => r.metric === 'TTFB');
  assert.ok(Math.abs(ttfb.value - nav) <= 1, `TTFB ${ttfb.value} vs responseStart ${nav}`);
  await page.goto(server.base + '/bfcache/away.html');
  const sent = await until(() => server.beacons.filter((b) => b.body.page_view_id === snap.page_view_id));
  assert.ok(sent[0].body.reports.some((r) => r.metric === 'TTFB'), 'the beacon carries TTFB');
  assert.deepEqual(errors, [], `page errors: ${errors.join('; ')}`);
  await context.close();
});

test('no interactionId: loads cleanly, INP from the first input', async () => {
  const { context, page, errors } = await open('/no-interaction-id/');
  assert.equal(await page.evaluate(() => 'interactionId' in PerformanceEventTiming.prototype), false);
  await page.click('#slow');
  await page.waitForTimeout(300);
  const by = await agree('no-interaction-id', page, ['LCP', 'FCP', 'TTFB']);
  const firstInput = await page.evaluate(() => performance.getEntriesByType('first-input')[0].duration);
  assert.ok(by.INP, 'INP from the first-input entry');
  assert.equal(by.INP.value, firstInput);
  assert.ok(by.INP.value >= 150, `INP ${by.INP.value}`);
  const ref = await page.evaluate(() => window.__ref.reports.map((r) => r.name));
  assert.ok(!ref.includes('INP'), 'web-vitals reports no INP without interactionId');
  assert.deepEqual(errors, [], `page errors: ${errors.join('; ')}`);
  await context.close();
});

test('no layout-shift support: no CLS at all (not 0), the rest as usual', async () => {
  const { context, page, errors } = await open('/no-layout-shift/');
  await page.waitForSelector('#banner');
  await page.waitForTimeout(400);
  const by = await agree('no-layout-shift', page, ['LCP', 'FCP', 'TTFB']);
  assert.ok(!by.CLS, `the snippet reported CLS ${by.CLS && by.CLS.value}`);
  const ref = await page.evaluate(() => window.__ref.reports.map((r) => r.name));
  assert.ok(!ref.includes('CLS'), 'web-vitals reported CLS');
  assert.ok((await shifts(page)).length > 0, 'the page did shift');
  assert.deepEqual(errors, []);
  await context.close();
});

test('lab mode, as the probes inject it: read() is the page view, its end goes to __vitalsignLab, never a beacon', async () => {
  const before = server.beacons.length;
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  // What probes/src/measure.rs does: the dist file before any page script, no
  // data-site, and a recorder that takes what a real page would have sent.
  await context.addInitScript({
    content: (await readFile(SNIPPET_PATH, 'utf8')) + ';window.__ended=[];window.__vitalsignLab=function(v){__ended.push(v)};',
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${server.base}/spa-route/?bare`, { waitUntil: 'load' });
  assert.equal(await page.evaluate(() => typeof window.webVitals), 'undefined', 'nothing but the snippet injected');
  await page.click('#slowA');
  await page.waitForTimeout(300);
  const first = await page.evaluate(() => window.__vitalsign.read());
  assert.deepEqual(Object.keys(first).sort(), ['navigation_type', 'page_view_id', 'reports', 'url']);
  assert.equal(first.navigation_type, 'navigate');
  const inp = first.reports.find((r) => r.metric === 'INP');
  assert.ok(inp && inp.value >= 250 && typeof inp.rating === 'string', JSON.stringify(first.reports));
  for (const r of first.reports) assert.deepEqual(Object.keys(r).slice(0, 3), ['metric', 'value', 'rating']);
  assert.deepEqual(first.reports.map((r) => r.metric).sort(), ['CLS', 'FCP', 'INP', 'LCP', 'TTFB']);
  // Reading has no side effects: the same page view, the same values.
  const again = await page.evaluate(() => window.__vitalsign.read());
  assert.equal(again.page_view_id, first.page_view_id);
  assert.deepEqual(again.reports, first.reports);
  assert.deepEqual(await page.evaluate(() => window.__ended), [], 'nothing ended yet');
  // A route change ends route A: its values go to the recorder, a new page view starts.
  await page.click('#go');
  await page.waitForSelector('#slowB');
  // Chromium reports the soft navigation after the new route has painted, in
  // an observer callback of its own: wait for it rather than race it.
  await page.waitForFunction(() => window.__ended.length > 0, null, { timeout: 5000 });
  const ended = await page.evaluate(() => window.__ended);
  assert.equal(ended.length, 1, JSON.stringify(ended));
  assert.equal(ended[0].page_view_id, first.page_view_id);
  assert.equal(ended[0].reports.find((r) => r.metric === 'INP').value, inp.value);
  const route = await page.evaluate(() => window.__vitalsign.read());
  assert.notEqual(route.page_view_id, first.page_view_id);
  assert.equal(route.navigation_type, 'route');
  // Hidden and gone: lab mode never sends.
  await page.goto(`${server.base}/bfcache/away.html?bare`);
  await page.waitForTimeout(300);
  assert.equal(server.beacons.length, before, 'lab mode sent a beacon');
  assert.deepEqual(errors, []);
  await context.close();
});

/** The browser's own event timing: the longest entry of the interaction on `#id`. */
const interactionOn = (page, id) =>
  page.evaluate(
    (id) =>
      new Promise((resolve) => {
        new PerformanceObserver((list, po) => {
          po.disconnect();
          const mine = list.getEntries().filter((e) => e.interactionId && e.target && e.target.id === id);
          resolve(Math.max(...mine.map((e) => e.duration)));
        }).observe({ type: 'event', buffered: true, durationThreshold: 16 });
      }),
    id,
  );

/** Our page views so far: every beacon's view (by id, latest values) and the current one. */
async function views(page) {
  const current = (await ours(page)).snap;
  const byId = new Map();
  for (const { body } of server.beacons) {
    const view = byId.get(body.page_view_id) || { ...body, by: {} };
    for (const r of body.reports) view.by[r.metric] = r;
    byId.set(body.page_view_id, view);
  }
  return { byId, current };
}

/** Home: a shift, the slow click; then #go (pushes #/cart and paints); then the cart's shift and slow click. */
async function homeThenCart(page) {
  await page.waitForSelector('#shiftA');
  await page.waitForTimeout(300);
  await page.click('#slowA');
  await page.waitForTimeout(300);
}
async function inTheCart(page) {
  await page.waitForSelector('#shiftB');
  await page.waitForTimeout(200);
  await page.click('#slowB');
  await page.waitForTimeout(300);
}

test('a click that pushes #/cart and paints: a new route at Chromium\'s soft navigation, as web-vitals reportSoftNavs', async () => {
  const { context, page, errors } = await open('/hash-push/');
  await homeThenCart(page);
  const homeId = (await ours(page)).snap.page_view_id;
  await page.click('#go');
  await page.waitForSelector('#slowB');
  await inTheCart(page);
  // The scenario happened: Chromium (156: on by default) reported one soft navigation, to the hash.
  const cartUrl = `${server.base}/hash-push/#/cart`;
  const soft = await page.evaluate(() => performance.getEntriesByType('soft-navigation').map((e) => e.name));
  assert.deepEqual(soft, [cartUrl]);
  // Home went out in a beacon when the soft navigation came, with web-vitals' values for it.
  const home = (await views(page)).byId.get(homeId);
  assert.ok(home, 'home was sent at the soft navigation');
  assert.equal(home.url, `${server.base}/hash-push/`);
  const refHome = await reference(page, ['INP', 'CLS'], { navigationType: 'navigate', list: 'soft' });
  console.log(`hash-push (home): INP ours ${home.by.INP.value} | web-vitals ${refHome.INP}; CLS ours ${home.by.CLS.value} | web-vitals ${refHome.CLS}`);
  assert.ok(Math.abs(home.by.INP.value - refHome.INP) <= TOLERANCE.INP, `home INP ours ${home.by.INP.value} vs ${refHome.INP}`);
  assert.ok(Math.abs(home.by.CLS.value - refHome.CLS) <= TOLERANCE.CLS, `home CLS ours ${home.by.CLS.value} vs ${refHome.CLS}`);
  assert.equal(home.by.INP.attribution.target, '#slowA');
  assert.ok(home.by.CLS.value > 0, 'home shifted');
  // The cart: a page view of its own, its INP and CLS equal web-vitals' for the soft navigation.
  const by = await agree('hash-push (cart)', page, ['INP', 'CLS'], { navigationType: 'soft-navigation', list: 'soft', url: cartUrl });
  const { snap } = await ours(page);
  assert.notEqual(snap.page_view_id, homeId);
  assert.equal(snap.navigation_type, 'route');
  assert.equal(snap.url, cartUrl);
  assert.equal(by.INP.attribution.target, '#slowB', "the cart's INP is its own click, not home's");
  assert.ok(by.CLS.value > 0 && Math.abs(by.CLS.value - home.by.CLS.value) > 1e-3, 'the cart has its own shift');
  assert.deepEqual(errors, []);
  await context.close();
});

test('the same click in a browser without soft navigations: the History-API rule splits at the pushed #/cart', async () => {
  const { context, page, errors } = await open('/hash-push/no-soft-nav.html');
  assert.equal(await page.evaluate(() => PerformanceObserver.supportedEntryTypes.includes('soft-navigation')), false);
  await homeThenCart(page);
  // web-vitals, which cannot split here, has home's values until the push.
  const beforePush = await agree('hash-push without soft navigations (home)', page, ['INP', 'CLS'], { list: 'soft' });
  const homeId = (await ours(page)).snap.page_view_id;
  await page.click('#go');
  await page.waitForSelector('#slowB');
  await inTheCart(page);
  const home = (await views(page)).byId.get(homeId);
  assert.ok(home, 'home was sent at the push');
  assert.equal(home.by.INP.value, beforePush.INP.value);
  assert.equal(home.by.CLS.value, beforePush.CLS.value);
  const { snap, by } = await ours(page);
  assert.equal(snap.navigation_type, 'route');
  assert.equal(snap.url, `${server.base}/hash-push/no-soft-nav.html#/cart`);
  // The cart's INP is its own click by the browser's event timing; its CLS the shift after the push.
  const slowB = await interactionOn(page, 'slowB');
  assert.equal(by.INP.value, slowB);
  assert.equal(by.INP.attribution.target, '#slowB');
  const all = await shifts(page);
  const cartShift = all[all.length - 1];
  assert.ok(!cartShift.hadRecentInput);
  assert.ok(Math.abs(by.CLS.value - cartShift.value) <= TOLERANCE.CLS, `cart CLS ours ${by.CLS.value} vs its shift ${cartShift.value}`);
  // web-vitals, one view for the whole page: its INP and CLS are the worse of our two routes'.
  const whole = await reference(page, ['INP', 'CLS'], { list: 'soft' });
  assert.ok(!(await page.evaluate(() => window.__ref.soft.some((r) => r.navigationType === 'soft-navigation'))));
  assert.ok(Math.abs(whole.INP - Math.max(home.by.INP.value, by.INP.value)) <= TOLERANCE.INP, `web-vitals INP ${whole.INP}`);
  assert.ok(Math.abs(whole.CLS - Math.max(home.by.CLS.value, by.CLS.value)) <= TOLERANCE.CLS, `web-vitals CLS ${whole.CLS}`);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a hash router (#/cart, #/product/7): each route is a page view, as web-vitals reportSoftNavs splits them', async () => {
  const { context, page, errors } = await open('/hash-router/');
  const base = `${server.base}/hash-router/`;
  const steps = [
    { button: 'slowHome', link: '#toCart', url: base, navigationType: 'navigate' },
    { button: 'slowCart', link: '#toItem', url: base + '#/cart', navigationType: 'soft-navigation' },
    { button: 'slowItem', url: base + '#/product/7', refUrl: base + '#/product/7?ref=nav', navigationType: 'soft-navigation' },
  ];
  const ids = [];
  for (const step of steps) {
    await page.waitForSelector('#' + step.button);
    await page.waitForTimeout(100);
    await page.click('#' + step.button);
    await page.waitForTimeout(250);
    ids.push((await ours(page)).snap.page_view_id);
    if (step.link) await page.click(step.link);
  }
  await page.waitForTimeout(200);
  const soft = await page.evaluate(() => performance.getEntriesByType('soft-navigation').map((e) => e.name));
  assert.deepEqual(soft, [steps[1].url, steps[2].refUrl], 'Chromium reported both fragment navigations');
  assert.equal(new Set(ids).size, 3, 'three page views');
  const { byId, current } = await views(page);
  for (const [i, step] of steps.entries()) {
    const view = i < 2 ? byId.get(ids[i]) : { ...current, by: (await ours(page)).by };
    assert.ok(view, `route ${step.url} was sent`);
    assert.equal(view.url, step.url, 'the route URL keeps the fragment path, not its query');
    const ref = await reference(page, ['INP'], {
      navigationType: step.navigationType,
      list: 'soft',
      url: step.navigationType === 'navigate' ? undefined : step.refUrl || step.url,
    });
    console.log(`hash-router (${step.url}): INP ours ${view.by.INP.value} | web-vitals ${ref.INP}`);
    assert.ok(Math.abs(view.by.INP.value - ref.INP) <= TOLERANCE.INP, `${step.url}: INP ours ${view.by.INP.value} vs ${ref.INP}`);
    assert.equal(view.by.INP.attribution.target, '#' + step.button);
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('an invalid responseStart (-1, 0, 1e12): no TTFB, not even after a bfcache restore (as web-vitals)', async () => {
  for (const responseStart of [-1, 0, 1e12]) {
    const { context, page, errors } = await open(`/ttfb-invalid/?responseStart=${responseStart}`);
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation')[0].responseStart), responseStart);
    await agree(`ttfb-invalid ${responseStart}`, page, ['FCP']);
    const firstId = (await ours(page)).snap.page_view_id;
    await page.click('#away');
    await page.waitForURL('**/away.html');
    await page.goBack({ waitUntil: 'commit' });
    await until(() => page.evaluate(() => window.__ref.reports.some((r) => r.navigationType === 'back-forward-cache')));
    // The restore really happened: a new view, with web-vitals' restore FCP.
    await agree(`ttfb-invalid ${responseStart} (restored)`, page, ['FCP'], { navigationType: 'back-forward-cache' });
    const { snap, by } = await ours(page);
    assert.equal(snap.navigation_type, 'back-forward-cache');
    assert.ok(!by.TTFB, `the restore reported TTFB ${by.TTFB && by.TTFB.value}`);
    const ref = await page.evaluate(() => window.__ref.reports.filter((r) => r.name === 'TTFB'));
    assert.deepEqual(ref, [], 'web-vitals reported TTFB');
    const sent = server.beacons.filter((b) => b.body.page_view_id === firstId || b.body.page_view_id === snap.page_view_id);
    assert.ok(sent.length >= 1, 'the first view was sent when it was left');
    for (const b of sent) assert.ok(!b.body.reports.some((r) => r.metric === 'TTFB'), JSON.stringify(b.body));
    assert.deepEqual(errors, []);
    await context.close();
  }
});

test('a page put in the bfcache before its load event: no TTFB for the restore (as web-vitals)', async () => {
  const { context, page, errors } = await open();
  await page.goto(server.base + '/bfcache-before-load/', { waitUntil: 'commit' });
  await page.waitForSelector('#away');
  await agree('bfcache-before-load', page, ['FCP']);
  const firstId = (await ours(page)).snap.page_view_id;
  await page.click('#away');
  await page.waitForURL('**/away.html');
  await page.goBack({ waitUntil: 'commit' });
  await until(() => page.evaluate(() => window.__ref.reports.some((r) => r.navigationType === 'back-forward-cache')));
  await agree('bfcache-before-load (restored)', page, ['FCP', 'LCP'], { navigationType: 'back-forward-cache' });
  await page.waitForTimeout(300);
  // The scenario happened: hidden into the bfcache with no load event before, then restored.
  const life = await page.evaluate(() => window.__life);
  assert.deepEqual(life.slice(0, 2), ['pagehide persisted=true', 'pageshow persisted=true'], JSON.stringify(life));
  const { snap, by } = await ours(page);
  assert.notEqual(snap.page_view_id, firstId);
  assert.equal(snap.navigation_type, 'back-forward-cache');
  assert.ok(!by.TTFB, `the restore reported TTFB ${by.TTFB && by.TTFB.value}`);
  // web-vitals waits for load, which Chromium never fires for this document: no TTFB at all. Nor ours.
  const ref = await page.evaluate(() => window.__ref.reports.filter((r) => r.name === 'TTFB'));
  assert.deepEqual(ref, []);
  const first = (await views(page)).byId.get(firstId);
  assert.ok(first, 'the first view was sent when it was left');
  assert.ok(!first.by.TTFB, JSON.stringify(first));
  assert.deepEqual(errors, []);
  await context.close();
});

test('TTFB known only after a route change: filed under the page load\'s view (as web-vitals), not the route\'s', async () => {
  const { context, page, errors } = await open();
  await page.goto(server.base + '/route-before-load/', { waitUntil: 'commit' });
  await page.waitForSelector('#go');
  await page.waitForTimeout(300);
  const firstId = (await ours(page)).snap.page_view_id;
  await page.click('#go');
  const routed = await until(async () => {
    const { snap } = await ours(page);
    return snap.page_view_id !== firstId && snap;
  });
  assert.equal(await page.evaluate(() => document.readyState === 'complete'), false, 'the route changed before load');
  const ref = await reference(page, ['TTFB'], { navigationType: 'navigate' });
  // The first view went out at the route change, and again with its TTFB once it was known.
  const first = await until(() => {
    const view = server.beacons.filter((b) => b.body.page_view_id === firstId).flatMap((b) => b.body.reports);
    return view.find((r) => r.metric === 'TTFB');
  });
  console.log(`route-before-load: TTFB ours ${first.value} | web-vitals ${ref.TTFB}`);
  assert.ok(Math.abs(first.value - ref.TTFB) <= TOLERANCE.TTFB);
  const { snap, by } = await ours(page);
  assert.equal(snap.page_view_id, routed.page_view_id);
  assert.equal(snap.url, `${server.base}/route-before-load/#/next`);
  assert.ok(!by.TTFB, "the route's view has no TTFB of its own");
  assert.deepEqual(errors, []);
  await context.close();
});
