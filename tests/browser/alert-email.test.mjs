// The on-call path end to end: probe runs arrive on /v1/runs with a slow LCP,
// the collector's budget rule fires and emails a real SMTP server (aiosmtpd on
// loopback), and the link in that email, opened in Chromium by a person who
// signs in first, shows the series view with the alert's period drawn and the
// email's numbers on the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startCollector } from '../../web-snippet/test/collector-process.mjs';
import { until } from '../../web-snippet/test/harness.mjs';

const QUERY_TOKEN = 'alert-email-query-token-7d1e';
const AGENT_TOKEN = 'alert-email-agent-token-c44a';
// Email links start with public_url; the test opens the link's path and query
// on the collector it started (whose port is known only once it listens).
const PUBLIC_URL = 'https://vitals.example.test';
const HOUR = 3_600_000;
const SINK = fileURLToPath(new URL('../../test-support/smtp_sink.py', import.meta.url));

/** The venv's Python (test.sh creates it with aiosmtpd); never a skip. */
function python() {
  const aiosmtpd = process.env.VITALSIGN_TEST_AIOSMTPD;
  const py = aiosmtpd
    ? join(dirname(aiosmtpd), 'python')
    : fileURLToPath(new URL('../../target/test-venv/bin/python', import.meta.url));
  return py;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let mailDir;
let sink;
let collector;
let browser;

async function startSink(port) {
  mailDir = await mkdtemp(join(tmpdir(), 'vitalsign-mail-'));
  sink = spawn(python(), [SINK, String(port), mailDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let out = '';
    sink.on('error', (e) => reject(new Error(`the SMTP sink did not start (${python()}): ${e.message}; run ./test.sh once`)));
    sink.on('exit', (code) => reject(new Error(`the SMTP sink exited with ${code}: ${out}`)));
    sink.stdout.on('data', (c) => {
      out += c;
      if (out.includes('READY')) resolve();
    });
  });
}

async function received() {
  const files = (await readdir(mailDir)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(join(mailDir, f), 'utf8'))));
}

/** A checkout run whose first step has `lcp`, started at `startedMs`. */
async function run(startedMs, lcp, n) {
  const fixture = JSON.parse(
    await readFile(new URL('../fixtures/run/valid/checkout-pass.json', import.meta.url), 'utf8'),
  );
  fixture.run_id = `alert-email-${n}`;
  fixture.started_at_ms = startedMs;
  fixture.finished_at_ms = startedMs + 4200;
  fixture.steps[0].vitals.lcp = lcp;
  return fixture;
}

let dataDir;
let smtpPort;

/** The collector's config; `alerts` false for the run that only takes data. */
function config(alerts) {
  return [
    `query_tokens = ["${QUERY_TOKEN}"]`,
    `agent_tokens = ["${AGENT_TOKEN}"]`,
    '[alerts]',
    `enabled = ${alerts}`,
    'evaluate_every_secs = 1',
    'default_rules = false',
    `public_url = "${PUBLIC_URL}"`,
    // One completed hour over the bound is enough here: the test cannot wait two.
    '[alerts.budget]',
    'confirm = 1',
    '[[alerts.rules]]',
    'name = "checkout-lcp-budget"',
    'kind = "budget"',
    'metric = "LCP"',
    'source = "synthetic"',
    'flow = "checkout"',
    'bound = 2500.0',
    'min_samples = 3',
    '[alerts.routes.default]',
    'to = ["oncall@example.test"]',
    '[smtp]',
    'host = "127.0.0.1"',
    `port = ${smtpPort}`,
    'tls = "plain"',
    'from = "vitalsign <alerts@vitals.example.test>"',
    'poll_ms = 100',
    '',
  ].join('\n');
}

before(async () => {
  smtpPort = await freePort();
  await startSink(smtpPort);
  dataDir = await mkdtemp(join(tmpdir(), 'vitalsign-alert-email-'));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
});

after(async () => {
  await browser?.close();
  await collector?.stop();
  sink?.kill('SIGTERM');
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  if (mailDir) await rm(mailDir, { recursive: true, force: true });
});

test('the alert email links to the series view with its period and numbers', async () => {
  // Budget rules decide once per completed hour, from the hours stored when
  // the hour turns (or the collector starts): so the runs go to a collector
  // first, and the one that evaluates starts on its database afterwards.
  collector = await startCollector(config(false), { dir: dataDir });
  // Six runs in the last completed hour, each with LCP 4 s on the first step.
  const hourStart = Math.floor(Date.now() / HOUR) * HOUR;
  for (let i = 0; i < 6; i++) {
    const body = await run(hourStart - HOUR + 5 * 60_000 + i * 60_000, 4000 + i * 10, i);
    const res = await fetch(`${collector.base}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${AGENT_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.ok(res.status === 200 || res.status === 201, `run upload: ${res.status} ${await res.text()}`);
  }
  await collector.stop();
  collector = await startCollector(config(true), { dir: dataDir });
  try {
    await until(async () => (await received()).length >= 1, 20_000);
  } catch (e) {
    const alerts = await fetch(`${collector.base}/api/v1/alerts`, {
      headers: { authorization: `Bearer ${QUERY_TOKEN}` },
    }).then((r) => r.text());
    throw new Error(`no alert email within 20 s; alerts: ${alerts}\ncollector log:\n${collector.log()}`);
  }
  const mails = await received();
  assert.equal(mails.length, 1, 'exactly one email');
  const mail = mails[0];
  assert.match(mail.subject, /^\[FIRING\] LCP p75 4\.\d s over the 2\.5 s budget checkout › open home/);
  // The link in the text part starts with public_url and opens the series view.
  const link = mail.text.match(new RegExp(`${PUBLIC_URL.replace(/\./g, '\\.')}/series\\?\\S+`));
  assert.ok(link, `no dashboard link in the email:\n${mail.text}`);
  const url = new URL(link[0]);
  assert.equal(url.searchParams.get('metric'), 'LCP');
  assert.equal(url.searchParams.get('flow'), 'checkout');
  const alertId = url.searchParams.get('alert');
  assert.match(alertId, /^[0-9a-f]{16}$/);
  assert.ok(!mail.text.includes(QUERY_TOKEN) && !mail.html.includes(QUERY_TOKEN));
  // The HTML part carries the same link.
  assert.ok(mail.html.includes(url.pathname), 'the HTML part links the same view');

  // A person clicks it: not signed in, so sign-in first, then the exact view.
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  const target = `${collector.base}${url.pathname}${url.search}`;
  await page.goto(target);
  assert.equal(new URL(page.url()).pathname, '/signin');
  await page.getByLabel('Query token').fill(QUERY_TOKEN);
  await Promise.all([page.waitForURL(target), page.getByRole('button', { name: 'Sign in' }).click()]);
  assert.equal(page.url(), target, 'sign-in lands on the linked view');

  // The alert box names the alert and shows the email's numbers.
  const box = page.getByRole('region', { name: `Alert ${alertId}` });
  await box.waitFor();
  const boxText = await box.innerText();
  assert.match(boxText, /firing/);
  const current = mail.text.match(/p75 (\d+(?:\.\d+)? m?s) over the (\d+(?:\.\d+)? m?s) budget/);
  assert.ok(current, mail.text);
  assert.ok(boxText.includes(current[1]), `current p75 ${current[1]} not on the page:\n${boxText}`);
  assert.ok(boxText.includes(current[2]), `budget ${current[2]} not on the page:\n${boxText}`);
  // The firing period is drawn on the chart, with its label.
  const periods = page.locator('svg.series rect.period.firing');
  assert.ok((await periods.count()) >= 1, 'the firing period is drawn');
  assert.match(await periods.first().locator('title').textContent(), /firing: LCP p75/);
  // The lab line of the flow step is there with its p75.
  assert.match(await page.locator('#lab-p75').innerText(), /4\.\d s/);
  await page.screenshot({
    path: fileURLToPath(new URL('../../target/dashboard-screenshots/alert-link.png', import.meta.url)),
    fullPage: true,
  });
  await context.close();
});
