// The overview, pages and series views against the query API, after real
// page views of the test site (the snippet the collector serves, in
// Chromium), crafted beacons with known attribution (posted as a browser
// posts them) and probe runs on /v1/runs: each view shows the API's numbers
// for the same filters, written as the page writes values.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, SITE } from './lib/env.mjs';
import { visit, postBeacon, postRun } from './lib/seed.mjs';
import { value, rated, percent, when, shares, bodyRows, rowCells, assertHeaderRows } from './lib/view.mjs';

const FIELD = ['LCP', 'INP', 'CLS', 'FCP', 'TTFB'];
const MOBILE = { width: 390, height: 800 };
const TABLET = { width: 900, height: 800 };

let env;
let page;
/** Page views that reported each metric (the samples the collector must hold). */
const expected = Object.fromEntries(FIELD.map((m) => [m, new Set()]));
const runs = [];

/** The crafted attribution: 9 of one item and 3 of another per kind, so the top item is known. */
const CRAFTED = { lcp: ['main>img.hero', 'h1.title'], inp: ['button#add-to-cart', 'nav>a.menu'], cls: ['#promo-banner', 'div.ad-slot'] };
const TOP_COUNT = 9;

const count = (bodies) => {
  for (const b of bodies) for (const r of b.reports) expected[r.metric].add(b.page_view_id);
};

before(async () => {
  env = await startEnv();
  // Real page views: three page groups, desktop, tablet and mobile.
  for (const [path, viewport] of [
    ['/late-image-lcp/', undefined],
    ['/late-image-lcp/', undefined],
    ['/late-image-lcp/', MOBILE],
    ['/interactions-worst-wins/', undefined],
    ['/interactions-worst-wins/', TABLET],
    ['/cls-two-windows/', undefined],
    ['/cls-two-windows/', MOBILE],
  ]) {
    count(await visit(env, path, { viewport }));
  }
  // Crafted page views of /product/N (one page group): known attribution counts.
  const lcp = [1200, 1350, 1800, 2100, 2300, 2600, 2900, 3100, 4200, 1500, 1700, 1900];
  const inp = [80, 120, 160, 210, 260, 310, 90, 140, 520, 60, 180, 240];
  const cls = [0.02, 0.05, 0.08, 0.12, 0.15, 0.3, 0.01, 0.04, 0.06, 0.11, 0.09, 0.2];
  for (let i = 0; i < 12; i++) {
    const k = i < TOP_COUNT ? 0 : 1;
    const body = await postBeacon(
      env,
      `/product/${i + 1}`,
      {
        LCP: [lcp[i], { target: CRAFTED.lcp[k], url: `${env.server.base}/img/${k ? 'title' : 'hero'}.jpg` }],
        INP: [
          inp[i],
          {
            target: CRAFTED.inp[k],
            input_delay: Math.round(inp[i] * 0.1),
            processing: Math.round(inp[i] * 0.7),
            presentation: inp[i] - Math.round(inp[i] * 0.1) - Math.round(inp[i] * 0.7),
            interaction: 'pointer',
          },
        ],
        CLS: [cls[i], { target: CRAFTED.cls[k] }],
        FCP: 400 + i * 50,
        TTFB: 60 + i * 7,
      },
      { device: i % 2 ? 'mobile' : 'desktop' },
    );
    count([body]);
  }
  // Three passing runs of checkout whose steps are pages of the test site.
  for (const [agoMs, lcpLab, inpLab] of [[50 * 60_000, 1650.2, 88], [30 * 60_000, 1720.5, 95], [10 * 60_000, 1580.9, 70]]) {
    runs.push(
      await postRun(env, 'checkout-pass', {
        agoMs,
        edit: (run) => {
          run.steps[0].url = `${env.server.base}/late-image-lcp/`;
          run.steps[0].vitals.lcp = lcpLab;
          run.steps[1].url = run.steps[2].url = `${env.server.base}/interactions-worst-wins/`;
          run.steps[1].vitals.inp = inpLab;
        },
      }),
    );
  }
  ({ page } = await env.signedIn());
});
after(async () => {
  await env?.close();
});

/** The description beside a term of a description list (`Field (RUM) p75` → its value). */
const described = (term) =>
  page.getByRole('term').filter({ hasText: term }).locator('xpath=following-sibling::dd[1]').innerText();

const summary = async (query) => (await env.api(`/api/v1/summary?${query}`)).summary;

test('overview: every field metric of the site, the flows and the lab steps as the API says', async () => {
  await env.open(page, '/');
  const site = page.getByRole('table', { name: `Site ${SITE} · pages of ${SITE}` });
  for (const m of FIELD) {
    const s = await summary(`metric=${m}&site=${SITE}&source=rum&range=24h`);
    assert.equal(s.count, expected[m].size, `${m}: every page view that reported it is stored once`);
    const [p75, samples, share, change] = await rowCells(site, m);
    assert.equal(p75, rated(m, s.p75), `${m} p75`);
    assert.equal(samples, String(s.count), `${m} samples`);
    assert.equal(share, shares(s), `${m} shares`);
    // Nothing came in during the 24 hours before this range.
    const now = Date.now();
    const prev = await summary(`metric=${m}&site=${SITE}&source=rum&from=${now - 48 * 3600_000}&to=${now - 24 * 3600_000}`);
    assert.equal(prev.count, 0);
    assert.equal(change, 'no earlier data');
  }

  const { runs: stored } = await env.api('/api/v1/runs?flow=checkout&location=eu-west');
  assert.equal(stored.length, runs.length);
  const passes = stored.filter((r) => r.outcome === 'pass').length;
  const flows = page.getByRole('table', { name: 'Each flow at each location' });
  const [location, outcome, passRate] = await rowCells(flows, 'checkout');
  assert.equal(location, 'eu-west');
  assert.equal(outcome, stored[0].outcome);
  assert.equal(passRate, `${percent(passes / stored.length)} of ${stored.length}`);

  const lab = page.getByRole('table', { name: 'Lab p75 per step over this range' });
  for (const step of ['open home', 'add to cart']) {
    const cells = await rowCells(lab, `checkout › ${step}`);
    assert.equal(cells[0], 'eu-west');
    const columns = ['LCP', 'CLS', 'INP', 'TBT'];
    for (const [i, m] of columns.entries()) {
      const s = await summary(`metric=${m}&source=synthetic&flow=checkout&step=${encodeURIComponent(step)}&location=eu-west&range=24h`);
      assert.equal(cells[i + 1], s.count ? rated(m, s.p75) : '—', `${step} ${m}`);
    }
  }
  assert.ok((await assertHeaderRows(page, 'overview')) >= 3);
  await env.screenshot(page, 'overview');
});

test('pages: page groups ranked as /api/v1/top-pages, and the filter form changes the URL and the view', async () => {
  await env.open(page, `/pages?site=${SITE}&metric=LCP`);
  const check = async (metric) => {
    const table = page.getByRole('table', { name: new RegExp(`^Page groups by ${metric} `) });
    const { pages } = await env.api(`/api/v1/top-pages?metric=${metric}&site=${SITE}&source=rum&range=24h&limit=100`);
    const rows = await bodyRows(table);
    assert.deepEqual(rows.map((r) => r[0]), pages.map((p) => p.page_group), `${metric}: the same groups in the same order`);
    const others = ['LCP', 'INP', 'CLS'].filter((m) => m !== metric);
    for (const [i, p] of pages.entries()) {
      const [, site, p75, samples, poor, ...rest] = rows[i];
      assert.deepEqual([site, p75, samples, poor], [p.site, rated(metric, p.p75), String(p.count), percent(p.poor)], p.page_group);
      for (const [j, m] of others.entries()) {
        const s = await summary(`metric=${m}&site=${SITE}&page_group=${encodeURIComponent(p.page_group)}&source=rum&range=24h`);
        assert.equal(rest[j], rated(m, s.p75), `${p.page_group} ${m}`);
      }
    }
    return pages;
  };
  const lcpPages = await check('LCP');
  assert.deepEqual(lcpPages.map((p) => p.page_group).sort(), ['/cls-two-windows', '/interactions-worst-wins', '/late-image-lcp', '/product/:id']);
  assert.equal(lcpPages.find((p) => p.page_group === '/product/:id').count, 12);
  await env.screenshot(page, 'pages');
  assert.equal(await assertHeaderRows(page, 'pages'), 1);

  // The filter form is a GET: its state goes into the URL.
  await page.getByLabel('Metric').selectOption('INP');
  await page.getByLabel('Time range').selectOption('7d');
  await Promise.all([page.waitForURL(/metric=INP/), page.getByRole('button', { name: 'Apply' }).click()]);
  const url = new URL(page.url());
  assert.equal(url.pathname, '/pages');
  assert.equal(url.searchParams.get('metric'), 'INP');
  assert.equal(url.searchParams.get('range'), '7d');
  assert.equal(url.searchParams.get('site'), SITE);
  assert.equal(await page.getByLabel('Metric').inputValue(), 'INP');
  // 7 days hold the same samples as 24 hours here.
  const inpPages = await check('INP');
  assert.deepEqual(inpPages.map((p) => p.page_group).sort(), ['/interactions-worst-wins', '/product/:id']);

  // Sorting is a link too, and reorders on the server.
  await Promise.all([page.waitForURL(/sort=samples/), page.getByRole('link', { name: 'Samples', exact: true }).click()]);
  const sorted = await bodyRows(page.getByRole('table', { name: /^Page groups by INP / }));
  const counts = sorted.map((r) => Number(r[3]));
  assert.deepEqual(counts, [...counts].sort((a, b) => b - a));
  assert.equal(await page.getByRole('columnheader', { name: /^Samples/ }).getAttribute('aria-sort'), 'descending');
});

test('series: the p75, samples, lab line, chart numbers and devices are the API and the JSON export', async () => {
  const path = `/series?range=24h&metric=LCP&site=${SITE}&page_group=/late-image-lcp`;
  await env.open(page, path);
  await page.getByRole('heading', { level: 1, name: 'LCP of /late-image-lcp on shop' }).waitFor();
  const filter = `metric=LCP&site=${SITE}&page_group=${encodeURIComponent('/late-image-lcp')}&source=rum&range=24h`;
  const field = await summary(filter);
  assert.equal(field.count, 3, 'three page views of /late-image-lcp/');
  assert.equal(await described('Field (RUM) p75'), `${rated('LCP', field.p75)} · ${field.count} samples`);
  const lab = await summary('metric=LCP&source=synthetic&flow=checkout&step=open%20home&location=eu-west&range=24h');
  assert.equal(lab.count, runs.length);
  assert.equal(await described('Lab p75 (checkout › open home at eu-west)'), `${rated('LCP', lab.p75)} · ${lab.count} runs`);

  // The JSON export of the same URL is what the page was drawn from.
  const exported = await (await page.request.get(`${env.base}${path}&format=json`)).json();
  const [fieldSummary, fieldPoints] = exported.field;
  const [labStep, labSummary, labPoints] = exported.lab;
  assert.deepEqual(fieldSummary, field);
  assert.deepEqual(labStep, { flow: 'checkout', step: 'open home', location: 'eu-west' });
  assert.deepEqual(labSummary, lab);
  // The same range as the page's (its buckets start at its own `from`).
  const range = `from=${exported.from_ms}&to=${exported.to_ms}`;
  const series = await env.api(`/api/v1/series?${filter.replace('range=24h', range)}&bucket=${exported.bucket_ms}ms`);
  assert.deepEqual(fieldPoints.map((p) => [p.start_ms, p.count, p.p75]), series.points.map((p) => [p.start_ms, p.count, p.p75]));
  assert.equal(fieldPoints.reduce((n, p) => n + p.count, 0), field.count);

  await page.getByText('The numbers behind the chart').click();
  const points = page.getByRole('group').filter({ hasText: 'The numbers behind the chart' }).getByRole('table');
  const shown = await bodyRows(points);
  const row = (source) => (p) => [source, when(p.start_ms), value('LCP', p.p50), value('LCP', p.p75), value('LCP', p.p90), String(p.count)];
  assert.deepEqual(shown, [...fieldPoints.map(row('field')), ...labPoints.map(row('lab'))]);

  const devices = await bodyRows(page.getByRole('region', { name: 'By device' }).getByRole('table'));
  assert.deepEqual(devices.map((d) => d[0]), ['mobile', 'desktop']);
  for (const [device, p75, samples, share] of devices) {
    const s = await summary(`${filter}&device=${device}`);
    assert.deepEqual([p75, samples, share], [rated('LCP', s.p75), String(s.count), shares(s)], device);
  }
  assert.deepEqual(exported.devices.map(([d, s]) => [d, s.count]), devices.map(([d, , n]) => [d, Number(n)]));
  await page.getByRole('img', { name: 'Distribution of LCP values' }).waitFor();
  assert.ok((await assertHeaderRows(page, 'series')) >= 3);
  await env.screenshot(page, 'series');

  // The filter form: another page group, metric and range, by GET.
  await page.getByLabel('Page group').fill('/interactions-worst-wins');
  await page.getByLabel('Metric').selectOption('INP');
  await page.getByLabel('Time range').selectOption('7d');
  await Promise.all([page.waitForURL(/metric=INP/), page.getByRole('button', { name: 'Apply' }).click()]);
  const url = new URL(page.url());
  assert.equal(url.pathname, '/series');
  assert.deepEqual(
    ['range', 'metric', 'site', 'page_group'].map((k) => url.searchParams.get(k)),
    ['7d', 'INP', SITE, '/interactions-worst-wins'],
  );
  await page.getByRole('heading', { level: 1, name: 'INP of /interactions-worst-wins on shop' }).waitFor();
  const inp = await summary(`metric=INP&site=${SITE}&page_group=%2Finteractions-worst-wins&source=rum&range=7d`);
  assert.equal(inp.count, 2);
  assert.equal(await described('Field (RUM) p75'), `${rated('INP', inp.p75)} · ${inp.count} samples`);
  const labInp = await summary('metric=INP&source=synthetic&flow=checkout&step=add%20to%20cart&location=eu-west&range=7d');
  assert.equal(await described('Lab p75 (checkout › add to cart at eu-west)'), `${rated('INP', labInp.p75)} · ${labInp.count} runs`);
});

test('series over 30 days: the top LCP element, INP target and CLS source with their counts, as /api/v1/attribution', async () => {
  for (const [metric, kind, caption, top] of [
    ['LCP', 'lcp_element', 'LCP element', CRAFTED.lcp[0]],
    ['INP', 'inp_target', 'INP target', CRAFTED.inp[0]],
    ['CLS', 'cls_source', 'Largest layout shift source', CRAFTED.cls[0]],
  ]) {
    await env.open(page, `/series?range=30d&metric=${metric}&site=${SITE}`);
    const { items } = await env.api(`/api/v1/attribution?metric=${metric}&kind=${kind}&site=${SITE}&range=30d`);
    assert.equal(items[0].item, top, `${kind}: the crafted item is on top`);
    assert.equal(items[0].count, TOP_COUNT);
    assert.ok(items.some((i) => i.item === CRAFTED[kind.slice(0, 3)][1] && i.count === 3), `${kind}: the second crafted item, 3 times`);
    const table = page.getByRole('table', { name: caption, exact: true });
    const rows = await bodyRows(table);
    const split = kind === 'inp_target';
    assert.deepEqual(
      rows,
      items.map((i) => [
        i.item || '(none)',
        String(i.count),
        percent(i.share),
        value(metric, i.mean_value),
        ...(split ? [value('INP', i.mean_input_delay), value('INP', i.mean_processing), value('INP', i.mean_presentation)] : []),
      ]),
      `${caption} as the API ranks it`,
    );
    const [shownCount] = await rowCells(table, top);
    assert.equal(shownCount, String(TOP_COUNT), `${top} is shown with its count`);
    if (metric === 'LCP') {
      // The snippet's own attribution is there too: the late hero image of the real page views.
      assert.ok(rows.some((r) => r[0] === '#hero' && r[1] === '3'), `#hero from the three real page views: ${JSON.stringify(rows)}`);
    }
    if (metric === 'INP') {
      assert.ok(rows.some((r) => r[0] === '#b220' && r[1] === '2'), `#b220 from the two real clicks: ${JSON.stringify(rows)}`);
    }
    assert.ok((await assertHeaderRows(page, `series ${metric} 30d`)) >= 3);
    await env.screenshot(page, `series-attribution-${metric}`);
  }
});

test('keyboard: Tab reaches every control of the filter form and Apply, and Enter applies it', async () => {
  await env.open(page, `/series?metric=LCP&site=${SITE}&page_group=/late-image-lcp`);
  const reached = [];
  for (let i = 0; i < 40 && reached.at(-1) !== 'button Apply'; i++) {
    await page.keyboard.press('Tab');
    reached.push(
      await page.evaluate(() => {
        const el = document.activeElement;
        const label = el.labels?.[0]?.firstChild?.textContent.trim();
        return `${el.tagName.toLowerCase()} ${label ?? el.textContent.trim()}`;
      }),
    );
  }
  const form = [
    'select Time range', 'input From (UTC)', 'input To (UTC)', 'select Site', 'input Page group', 'select Device',
    'select Source', 'select Flow', 'select Location', 'input Step', 'select Metric', 'button Apply',
  ];
  assert.equal(reached[0], 'a Skip to content', 'the first Tab is the skip link');
  // A datetime-local control takes one Tab per part of the date (day, month, year, …).
  const controls = reached.filter((r, i) => r !== reached[i - 1]);
  assert.deepEqual(controls.filter((r) => form.includes(r)), form, `in order: ${controls.join(' | ')}`);
  // Typed and applied from the keyboard alone.
  await page.getByLabel('Page group').focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('/cls-two-windows');
  await page.getByRole('button', { name: 'Apply' }).focus();
  await Promise.all([page.waitForURL(/page_group=%2Fcls-two-windows/), page.keyboard.press('Enter')]);
  await page.getByRole('heading', { level: 1, name: 'LCP of /cls-two-windows on shop' }).waitFor();
});
