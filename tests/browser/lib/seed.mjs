// Data for the dashboard, sent the way production data arrives: page views of
// the test site in Chromium with the snippet the collector serves (its
// beacons on /v1/rum), beacons posted as a browser posts them (text/plain,
// with the page's Origin) where a test needs exact attribution counts, and
// probe runs on /v1/runs with the agent token.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { until } from '../../../web-snippet/test/harness.mjs';
import { AGENT_TOKEN, SITE } from './env.mjs';

const FIXTURES = new URL('../../fixtures/', import.meta.url);
const BOUNDS = { LCP: [2500, 4000], INP: [200, 500], CLS: [0.1, 0.25], FCP: [1800, 3000], TTFB: [800, 1800] };

/** The wire rating of a value (a value on a bound is the better class). */
export function rating(metric, value) {
  const [good, poor] = BOUNDS[metric];
  return value <= good ? 'good' : value <= poor ? 'needs-improvement' : 'poor';
}

/** Hidden the way a browser reports it (a headless tab never is): one flush. */
const hide = (page) =>
  page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
    delete document.visibilityState;
    document.dispatchEvent(new Event('visibilitychange'));
  });

const reported = (page, metric) =>
  page.waitForFunction((m) => window.__vitalsign.read().reports.some((r) => r.metric === m), metric);

/**
 * What each fixture page needs before it is hidden, so that its page view
 * reports what the page is there for.
 */
export const PAGES = {
  // LCP is the late hero image (attribution: its selector and URL); the
  // heading is an earlier candidate, so wait for the image's own entry.
  '/late-image-lcp/': async (page) =>
    page.waitForFunction(() =>
      window.__vitalsign.read().reports.some((r) => r.metric === 'LCP' && r.attribution?.target === '#hero'),
    ),
  // INP from a click whose handler blocks 220 ms (attribution: #b220 and its split).
  '/interactions-worst-wins/': async (page) => {
    await reported(page, 'LCP');
    await page.click('#b220');
    await reported(page, 'INP');
  },
  // Two session windows of layout shifts, the second at 1.9–2 s.
  '/cls-two-windows/': async (page) => {
    await page.waitForFunction(() => performance.now() > 2300);
    await reported(page, 'CLS');
  },
};

/**
 * One page view of `path` in a fresh context: load, act, hide, and wait until
 * the collector has answered the beacon (it answers after the commit). Returns
 * the beacons the page sent.
 */
export async function visit(env, path, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await env.browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  const rum = `${env.base}/v1/rum`;
  const bodies = [];
  const answers = [];
  page.on('request', (r) => r.url() === rum && bodies.push(JSON.parse(r.postData())));
  page.on('requestfinished', async (r) => {
    if (r.url() === rum) answers.push((await r.response())?.status());
  });
  await page.goto(env.server.base + path, { waitUntil: 'load' });
  assert.equal(
    await page.evaluate(() => document.querySelector('script[data-site]').src),
    `${env.base}/v1/snippet.js`,
    'the page loads the snippet the collector serves',
  );
  await PAGES[path](page);
  await hide(page);
  await until(() => answers.length === 1, 10000);
  assert.deepEqual(answers, [204], `the collector stored the beacon of ${path}`);
  assert.deepEqual(errors, [], `no page errors on ${path}`);
  await context.close();
  return bodies;
}

let viewCount = 0;

/**
 * Posts one beacon as the snippet would: text/plain JSON with the test
 * site's Origin. `reports` is {METRIC: value or [value, attribution]}.
 */
export async function postBeacon(env, path, reports, { device = 'desktop' } = {}) {
  viewCount += 1;
  const body = {
    schema_version: 1,
    site: SITE,
    page_view_id: `v1-${Date.now()}-${viewCount}-${randomBytes(4).toString('hex')}`,
    url: env.server.base + path,
    navigation_type: 'navigate',
    device,
    snippet_version: '0.1.0',
    reports: Object.entries(reports).map(([metric, v]) => {
      const [value, attribution] = Array.isArray(v) ? v : [v, undefined];
      return { metric, value, rating: rating(metric, value), ...(attribution ? { attribution } : {}) };
    }),
  };
  const res = await fetch(`${env.base}/v1/rum`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain;charset=UTF-8', origin: env.server.base },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 204, `beacon refused: ${res.status} ${await res.text()}`);
  return body;
}

let runCount = 0;

/**
 * Posts a run built from a fixture (tests/fixtures/run/valid/NAME.json) with
 * a fresh run_id, started `agoMs` before now; `edit` may change the document
 * before it is sent. Resolves with the document as posted.
 */
export async function postRun(env, fixture, { agoMs = 60_000, edit = () => {} } = {}) {
  const run = JSON.parse(await readFile(new URL(`run/valid/${fixture}.json`, FIXTURES), 'utf8'));
  runCount += 1;
  const duration = run.finished_at_ms - run.started_at_ms;
  run.run_id = `r-dash-${Date.now().toString(36)}-${runCount}-${randomBytes(3).toString('hex')}`;
  run.started_at_ms = Date.now() - agoMs;
  run.finished_at_ms = run.started_at_ms + duration;
  edit(run);
  const res = await fetch(`${env.base}/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${AGENT_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(run),
  });
  assert.equal(res.status, 201, `run refused: ${res.status} ${await res.text()}`);
  return run;
}

/** The size and sha256 a run declares for an artifact it will upload. */
export function describeArtifact(name, bytes, contentType = 'image/png') {
  return { name, content_type: contentType, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export async function putArtifact(env, runId, name, bytes, contentType = 'image/png') {
  const res = await fetch(`${env.base}/v1/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(name)}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${AGENT_TOKEN}`, 'content-type': contentType },
    body: bytes,
  });
  assert.equal(res.status, 201, `artifact refused: ${res.status} ${await res.text()}`);
}
