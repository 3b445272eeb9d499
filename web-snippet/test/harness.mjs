// Shared by the snippet's tests: a loopback HTTP server that serves test pages,
// the built snippet (the exact file the collector embeds) and the web-vitals
// reference, and records every beacon; and Debian's Chromium via playwright-core.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const root = new URL('..', import.meta.url);
export const SNIPPET_PATH = new URL('dist/vitalsign.min.js', root);
const REFERENCE_PATH = new URL('node_modules/web-vitals/dist/web-vitals.iife.js', root);

export async function startServer(pages) {
  const beacons = [];
  const files = {
    '/v1/snippet.js': await readFile(SNIPPET_PATH),
    '/web-vitals.js': await readFile(REFERENCE_PATH),
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
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
    if (!page) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/html', ...(page.headers || {}) }).end(page.html);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { base, beacons, close: () => new Promise((ok) => server.close(ok)) };
}

export async function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
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
