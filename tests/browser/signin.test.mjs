// Sign-in: without a session every dashboard page sends the browser to the
// sign-in form with the page it asked for; a wrong token is refused (401)
// with a message that says so and sets no cookie; the right token lands on
// the page first asked for, with an HttpOnly, SameSite=Strict cookie that
// never holds the token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, QUERY_TOKEN } from './lib/env.mjs';

let env;
before(async () => {
  env = await startEnv();
});
after(async () => {
  await env?.close();
});

// Every view, its exports, a run's artifact, with view state in the query string.
const PAGES = [
  '/',
  '/?range=7d&source=rum',
  '/pages?site=shop&metric=INP&sort=samples&dir=desc',
  '/series?range=30d&metric=CLS&site=shop&page_group=/checkout',
  '/series?metric=LCP&format=json',
  '/pages?format=csv',
  '/flows',
  '/flows/runs?flow=checkout&location=eu-west',
  '/runs/r-0001',
  '/runs/r-0001/artifacts/step-2-failure.png',
  '/alerts?state=firing',
  '/alerts/3f1e5c3a8b1c2d4e',
];

test('without a session every page redirects to /signin?next=<the page>', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  for (const path of PAGES) {
    const res = await page.goto(env.base + path);
    const hop = res.request().redirectedFrom();
    assert.ok(hop, `${path}: answered ${res.status()} without a redirect`);
    const first = await hop.response();
    assert.ok([302, 303, 307].includes(first.status()), `${path}: redirect status ${first.status()}`);
    const url = new URL(page.url());
    assert.equal(url.pathname, '/signin', `${path} went to ${page.url()}`);
    assert.equal(url.searchParams.get('next'), path, `${path}: next=${url.searchParams.get('next')}`);
    assert.equal(res.status(), 200);
    await page.getByRole('heading', { name: 'Sign in to vitalsign' }).waitFor();
  }
  // Nothing was signed in on the way.
  assert.deepEqual(await context.cookies(), []);
  await context.close();
});

test('a wrong token is refused with 401 and a message; the right one lands on the page asked for', async () => {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const asked = '/series?range=30d&metric=CLS&site=shop&page_group=/checkout';
  await page.goto(env.base + asked);
  assert.equal(new URL(page.url()).pathname, '/signin');

  const token = page.getByLabel('Query token');
  assert.equal(await token.getAttribute('type'), 'password');
  await token.fill('not-the-token');
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${env.base}/signin` && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  assert.equal(refused.status(), 401);
  const alert = page.getByRole('alert');
  assert.match(await alert.innerText(), /not one of this collector's query tokens/);
  assert.deepEqual(await context.cookies(), [], 'a refused sign-in sets no cookie');
  assert.ok(!page.url().includes('not-the-token'), 'the token is never in a URL');
  assert.ok(!(await page.content()).includes('not-the-token'), 'the refused token is not echoed into the page');
  await env.screenshot(page, 'signin-refused');

  // The form still carries where the browser was going.
  await page.getByLabel('Query token').fill(QUERY_TOKEN);
  await Promise.all([
    page.waitForURL(env.base + asked),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  await page.getByRole('heading', { level: 1, name: 'CLS of /checkout on shop' }).waitFor();
  assert.equal(await page.getByLabel('Time range').inputValue(), '30d');

  const [cookie, ...others] = await context.cookies();
  assert.deepEqual(others, []);
  assert.equal(cookie.name, 'vs_session');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.ok(cookie.expires > Date.now() / 1000, 'the session expires');
  assert.ok(!cookie.value.includes(QUERY_TOKEN), 'the cookie does not hold the token');
  assert.ok(!page.url().includes(QUERY_TOKEN));
  assert.ok(!(await page.content()).includes(QUERY_TOKEN), 'the token is not in the page');

  // Signed in, the sign-in form goes straight on; signing out ends the session.
  await page.goto(`${env.base}/signin?next=${encodeURIComponent('/flows')}`);
  assert.equal(page.url(), `${env.base}/flows`);
  await Promise.all([page.waitForURL(/\/signin$/), page.getByRole('button', { name: 'Sign out' }).click()]);
  await page.goto(`${env.base}/alerts`);
  assert.equal(page.url(), `${env.base}/signin?next=/alerts`);
  await context.close();
});

test('after sign-in, next never leaves the collector', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.base}/signin?next=${encodeURIComponent('//evil.example/')}`);
  await page.getByLabel('Query token').fill(QUERY_TOKEN);
  await Promise.all([page.waitForURL(`${env.base}/`), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  await context.close();
});
