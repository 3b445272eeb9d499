// Flows, runs, a run's page and the alerts, after runs posted on /v1/runs
// with the agent token (two passes, then two failures with a screenshot
// uploaded as the agent uploads it, which fire a flow-failure alert): each
// view shows what the query API holds, the run page shows every step and its
// screenshot inline, and acknowledge or silence without the form's CSRF token
// is refused with 403 and changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../../web-snippet/test/harness.mjs';
import { startEnv } from './lib/env.mjs';
import { postRun, putArtifact, describeArtifact } from './lib/seed.mjs';
import { percent, when, bodyRows, rowCells, assertHeaderRows } from './lib/view.mjs';

const SHOT = 'step-2-failure.png';
let env;
let page;
let png;
const posted = [];
let alert;

before(async () => {
  env = await startEnv();
  // The screenshot a failed step uploads: a real PNG, taken by Chromium.
  const shooter = await env.browser.newPage({ viewport: { width: 480, height: 300 } });
  await shooter.goto(`${env.server.base}/late-image-lcp/`, { waitUntil: 'load' });
  png = await shooter.screenshot();
  await shooter.close();

  for (const agoMs of [40 * 60_000, 30 * 60_000]) posted.push(await postRun(env, 'checkout-pass', { agoMs }));
  for (const agoMs of [20 * 60_000, 10 * 60_000]) {
    const run = await postRun(env, 'checkout-fail-with-screenshot', {
      agoMs,
      edit: (r) => {
        r.artifacts = [describeArtifact(SHOT, png)];
      },
    });
    await putArtifact(env, run.run_id, SHOT, png);
    posted.push(run);
  }
  // Two failed runs in a row fire the built-in flow-failure rule on the next tick.
  alert = await until(async () => {
    const { alerts } = await env.api('/api/v1/alerts?state=firing');
    return alerts.find((a) => a.kind === 'flow_failure' && a.flow === 'checkout');
  }, 20000);
  ({ page } = await env.signedIn());
});
after(async () => {
  await env?.close();
});

test('flows: each flow × location with its last outcome and pass rate, as the runs API says', async () => {
  await env.open(page, '/flows');
  const { runs } = await env.api('/api/v1/runs?flow=checkout&location=eu-west');
  assert.deepEqual(runs.map((r) => r.run_id), posted.map((r) => r.run_id).reverse(), 'newest first');
  const table = page.getByRole('table', { name: /^Each flow at each location/ });
  const [location, outcome, passRate] = await rowCells(table, 'checkout');
  assert.equal(location, 'eu-west');
  assert.equal(outcome, runs[0].outcome);
  assert.equal(outcome, 'fail');
  const passes = runs.filter((r) => r.outcome === 'pass').length;
  assert.equal(passRate, `${percent(passes / runs.length)} of ${runs.length} runs`);
  // The JSON export holds the same.
  const { flows } = await (await page.request.get(`${env.base}/flows?format=json`)).json();
  assert.deepEqual(
    flows.map((f) => [f.flow, f.location, f.last_outcome, f.last_run_id, f.runs, f.passes]),
    [['checkout', 'eu-west', 'fail', runs[0].run_id, runs.length, passes]],
  );
  assert.equal(await assertHeaderRows(page, 'flows'), 1);
  await env.screenshot(page, 'flows');
});

test('runs: newest first with outcome and failure, as /api/v1/runs', async () => {
  await env.open(page, '/flows');
  await Promise.all([
    page.waitForURL(/\/flows\/runs\?/),
    page.getByRole('link', { name: 'runs of checkout at eu-west' }).click(),
  ]);
  const url = new URL(page.url());
  assert.deepEqual([url.searchParams.get('flow'), url.searchParams.get('location')], ['checkout', 'eu-west']);
  const { runs } = await env.api('/api/v1/runs?flow=checkout&location=eu-west');
  const table = page.getByRole('table', { name: 'Runs of checkout at eu-west — page 1 of 1' });
  const rows = await bodyRows(table);
  assert.deepEqual(
    rows.map((r) => [r[0], r[1], r[2], r[3], r[5]]),
    runs.map((r) => [when(r.started_at_ms), r.flow, r.location, r.outcome, String(r.attempt)]),
  );
  for (const [i, r] of runs.entries()) {
    // The step name is in a <q>: its quotes are drawn by CSS, not in the text.
    const failure = r.failure ? `step ${r.steps[r.failure.step].name}: ${r.failure.reason}` : '';
    assert.equal(rows[i][6], failure, `failure of ${r.run_id}`);
    const ms = r.finished_at_ms - r.started_at_ms;
    assert.equal(rows[i][4], ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
  }
  assert.equal(await assertHeaderRows(page, 'runs'), 1);
  await env.screenshot(page, 'runs');
});

test('run page: every step, the failure and the screenshot inline', async () => {
  const run = posted.at(-1);
  await env.open(page, '/flows/runs?flow=checkout&location=eu-west');
  // The newest run is the first row; its start time links to its page.
  await Promise.all([
    page.waitForURL(`${env.base}/runs/${run.run_id}`),
    page.getByRole('link', { name: when(run.started_at_ms) }).first().click(),
  ]);
  await page.getByRole('heading', { level: 1, name: 'Run of checkout at eu-west' }).waitFor();
  const steps = page.getByRole('table', { name: /^Each step of this run/ });
  // A step that went wrong is followed by a row with what went wrong.
  const all = await bodyRows(steps);
  const rows = all.filter((r) => r.length > 2);
  const errors = all.filter((r) => r.length === 2);
  assert.deepEqual(
    rows.map((r) => [r[0], r[1], r[2], r[3]]),
    run.steps.map((s, i) => [String(i + 1), s.name, s.kind, s.outcome]),
    'every step in order, with its kind and outcome',
  );
  assert.equal(errors.length, 1, 'one error row: the failed step');
  assert.equal(all[all.indexOf(rows[run.failure.step]) + 1], errors[0], 'right under the failed step');
  assert.ok(errors[0][1].includes(run.steps[run.failure.step].error), `the step's error: ${errors[0][1]}`);
  const why = page.getByRole('region', { name: 'Why it did not pass' });
  assert.match(await why.innerText(), new RegExp(`Step 3 \\(cart shows item\\): ${run.failure.reason.replace(/[()"]/g, '\\$&')}`));

  // The screenshot is inline, loaded, and the bytes the agent uploaded.
  const img = page.getByRole('img', { name: 'Screenshot of step 3 (cart shows item)' });
  await img.scrollIntoViewIfNeeded();
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
  assert.equal(await img.evaluate((el) => el.naturalWidth), 480);
  const served = await page.request.get(new URL(await img.getAttribute('src'), env.base).href);
  assert.equal(served.status(), 200);
  assert.equal(served.headers()['content-type'], 'image/png');
  assert.ok(Buffer.from(await served.body()).equals(png), 'the screenshot is the uploaded file');
  assert.ok((await assertHeaderRows(page, 'run')) >= 1);
  await env.screenshot(page, 'run');
});

test('alerts: the firing flow alert as /api/v1/alerts, with the detector numbers', async () => {
  await env.open(page, '/alerts');
  await page.getByRole('heading', { level: 2, name: 'Firing (1)' }).waitFor();
  const firing = page.getByRole('table', { name: 'Firing alerts' });
  const rows = await bodyRows(firing);
  assert.equal(rows.length, 1);
  const [, state, rule, , acked, emails] = rows[0];
  assert.equal(state, 'firing');
  assert.equal(rule, `${alert.rule} (flow failure)`);
  assert.equal(acked, 'no');
  // This collector has no SMTP server: the page says no email goes out.
  assert.equal(emails, 'none (no SMTP server configured)');
  assert.ok((await assertHeaderRows(page, 'alerts')) >= 1);
  await env.screenshot(page, 'alerts');

  await Promise.all([page.waitForURL(`${env.base}/alerts/${alert.id}`), firing.getByRole('link').first().click()]);
  const numbers = page.getByRole('table', { name: 'The numbers behind this alert' });
  const latest = await rowCells(numbers, 'Latest evaluation');
  const n = alert.numbers;
  // The API leaves out counters that are 0.
  assert.deepEqual(latest.slice(0, 5), [String(n.failures), String(n.passes ?? 0), String(n.errors ?? 0), n.last_run_id, n.reason]);
  assert.equal(n.failures, 2);
  assert.equal(n.last_run_id, posted.at(-1).run_id);
  const { transitions } = await env.api(`/api/v1/alerts/transitions?alert=${alert.id}`);
  const shown = await bodyRows(page.getByRole('table', { name: /^Every change of state/ }));
  assert.deepEqual(shown.map((r) => [r[0], r[1]]), transitions.map((t) => [when(t.at_ms), `${t.from.replace('_', ' ')} → ${t.to.replace('_', ' ')}`]));
  assert.ok((await assertHeaderRows(page, 'alert')) >= 2);
  await env.screenshot(page, 'alert');
});

test('acknowledge and silence without the CSRF token answer 403 and change nothing', async () => {
  const alertPath = `/alerts/${alert.id}`;
  const unchanged = async () => {
    const { alerts } = await env.api('/api/v1/alerts?state=firing');
    const now = alerts.find((a) => a.id === alert.id);
    assert.equal(now.acked_ms, null, 'still not acknowledged');
    assert.deepEqual((await env.api('/api/v1/silences')).silences, [], 'no silence');
  };
  /** Submits the named form of the alert page after `tamper` changed its CSRF field. */
  const submit = async (button, tamper) => {
    await env.open(page, alertPath);
    const form = page.getByRole('button', { name: button, exact: true }).locator('xpath=ancestor::form');
    await form.evaluate(tamper);
    if (button === 'Silence') await page.getByLabel('Why (shown to everyone who sees the silence)').fill('deploy of the checkout');
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.getByRole('button', { name: button, exact: true }).click(),
    ]);
    return res;
  };
  const drop = (form) => form.querySelector('input[name=csrf]').remove();
  const forge = (form) => {
    form.querySelector('input[name=csrf]').value = 'f'.repeat(64);
  };
  for (const [button, tamper] of [
    ['Acknowledge this alert', drop],
    ['Acknowledge this alert', forge],
    ['Silence', drop],
    ['Silence', forge],
  ]) {
    const res = await submit(button, tamper);
    assert.equal(res.status(), 403, `${button} (${tamper.name} the token): ${res.status()}`);
    assert.match(await page.getByRole('alert').innerText(), /Nothing was changed: this form's security token is missing/);
    await unchanged();
  }
  // No session at all: refused before the form is read.
  const stranger = await env.browser.newContext();
  const res = await stranger.request.post(`${env.base}${alertPath}/ack`, { form: { csrf: 'f'.repeat(64) }, maxRedirects: 0 });
  assert.equal(res.status(), 403);
  await stranger.close();
  await unchanged();

  // With the page's own token the same forms work: the 403s above were the token.
  await submit('Acknowledge this alert', () => {});
  await page.waitForURL(env.base + alertPath);
  await page.getByText('Acknowledged by dashboard at').waitFor();
  const { alerts } = await env.api('/api/v1/alerts?state=firing');
  assert.equal(alerts.find((a) => a.id === alert.id).acked_by, 'dashboard');
  await submit('Silence', () => {});
  await page.waitForURL(env.base + alertPath);
  const { silences } = await env.api('/api/v1/silences');
  assert.equal(silences.length, 1);
  assert.equal(silences[0].comment, 'deploy of the checkout');
  await env.screenshot(page, 'alert-acknowledged');
});
