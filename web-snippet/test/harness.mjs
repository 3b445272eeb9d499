// Shared by the snippet's tests: a loopback HTTP server that serves test pages
// and the shared fixture pages (tests/fixtures/pages), injects the snippet and
// the web-vitals reference into them, and records every beacon; and Debian's
// Chromium via playwright-core.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { readdir } from 'node:fs/promises';
import { extname } from 'node:path';
import { chromium } from 'playwright-core';

const root = new URL('..', import.meta.url);
export const SNIPPET_PATH = new URL('dist/vitalsign.min.js', root);
export const FIXTURE_PAGES = new URL('../tests/fixtures/pages/', root);
const REFERENCE_PATH = new URL('node_modules/web-vitals/dist/web-vitals.iife.js', root);
const REFERENCE_GLUE = new URL('test/reference.js', root);

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.css': 'text/css',
};

/**
 * The tags the harness puts just before `</head>` of every fixture page: the
 * snippet (from `snippetSrc`, with data-site), then web-vitals and the glue that
 * records its reports in window.__ref. Before `</head>` so that a fixture's own
 * head scripts (which break browser APIs on purpose) run first.
 */
export function injectedTags(snippetSrc, site = 'test') {
  return (
    `<script src="${snippetSrc}" data-site="${site}"></script>\n` +
    '<script src="/__harness/web-vitals.js"></script>\n' +
    '<script src="/__harness/reference.js"></script>\n'
  );
}

/**
 * `pages` maps a path to {html, headers}; anything else under
 * /<scenario>/<file> comes from tests/fixtures/pages (`?bare`: without injected
 * tags). `?delay=N` on any request
 * holds the response back N ms (the late image). `snippetSrc` is where injected
 * pages load the snippet from: this server's copy of dist unless `server.snippetSrc` is set.
 */
export async function startServer(pages = {}, { site = 'test' } = {}) {
  const beacons = [];
  // Where injected pages load the snippet from; settable (the collector test points it at the collector).
  const state = { snippetSrc: '/v1/snippet.js' };
  const files = {
    '/v1/snippet.js': await readFile(SNIPPET_PATH),
    '/web-vitals.js': await readFile(REFERENCE_PATH),
    '/__harness/web-vitals.js': await readFile(REFERENCE_PATH),
    '/__harness/reference.js': await readFile(REFERENCE_GLUE),
  };
  const serve = async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const path = url.pathname;
    const delay = Number(url.searchParams.get('delay')) || 0;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (req.method === 'POST' && path === '/v1/rum') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        beacons.push({ contentType: req.headers['content-type'], body: JSON.parse(body) });
        res.writeHead(204).end();
      });
      return;
    }
    if (files[path]) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(files[path]);
      return;
    }
    const page = pages[path];
    if (page) {
      res.writeHead(200, { 'content-type': 'text/html', ...(page.headers || {}) }).end(page.html);
      return;
    }
    let file = path.endsWith('/') ? path + 'index.html' : path;
    if (file.includes('..') || !/^\/[a-z0-9-]+\/[a-z0-9.-]+$/.test(file)) return res.writeHead(404).end();
    let body;
    try {
      body = await readFile(new URL(file.slice(1), FIXTURE_PAGES));
    } catch {
      return res.writeHead(404).end();
    }
    const type = extname(file);
    // `?bare`: the page as it is, for tests that inject the snippet the way a probe does.
    if (type === '.html' && !url.searchParams.has('bare')) {
      body = body.toString().replace('</head>', injectedTags(state.snippetSrc, site) + '</head>');
    }
    res.writeHead(200, { 'content-type': TYPES[type] || 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(body);
  };
  const server = createServer((req, res) => {
    serve(req, res).catch(() => res.writeHead(500).end());
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    beacons,
    set snippetSrc(src) {
      state.snippetSrc = src;
    },
    close: () => new Promise((ok) => { server.closeAllConnections(); server.close(ok); }) };
}

export async function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    // Playwright turns the back/forward cache off by default; the bfcache scenario needs it.
    ignoreDefaultArgs: ['--disable-back-forward-cache'],
    // Soft navigations need no flag: Debian's Chromium 156 reports them by
    // default (--enable-features=SoftNavigationHeuristics is a no-op there, and no
    // --disable-features / --disable-blink-features switch turns them off), so
    // the scenario without them hides the API in the page (hash-push/hide-soft-nav.js).
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
}

/** Polls `fn` until it returns something truthy (or throws after `ms`). */
export async function until(fn, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${fn}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every key the shared valid beacon fixtures (and so the Rust wire contract) use. */
export async function fixtureKeys() {
  const known = { top: new Set(), report: new Set(), attribution: new Set() };
  const dir = new URL('../tests/fixtures/beacon/valid/', root);
  for (const file of await readdir(dir)) {
    const doc = JSON.parse(await readFile(new URL(file, dir), 'utf8'));
    Object.keys(doc).forEach((k) => known.top.add(k));
    for (const r of doc.reports) {
      Object.keys(r).forEach((k) => known.report.add(k));
      Object.keys(r.attribution || {}).forEach((k) => known.attribution.add(k));
    }
  }
  return known;
}
