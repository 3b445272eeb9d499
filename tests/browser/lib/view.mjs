// Reading the dashboard's pages: values written the way the pages write them
// (core/src/format.rs `metric_value`, dashboard/layout.rs), and the
// text of tables found by role.
import assert from 'node:assert/strict';

/**
 * `x` with `digits` decimals as Rust's `format!("{:.N}")` writes it: the
 * nearest decimal, and on an exact tie the even one (JavaScript's toFixed
 * rounds ties up: 0.125 → "0.13", where the page says "0.12").
 */
export function fixed(x, digits) {
  // With 25 more digits a double's expansion is exact far enough to see a tie.
  const long = x.toFixed(digits + 25);
  const dot = long.indexOf('.');
  const kept = long.slice(0, dot + (digits ? digits + 1 : 0));
  const rest = long.slice(dot + 1 + digits);
  if (/^50*$/.test(rest) && Number(kept.at(-1)) % 2 === 0) return kept;
  return x.toFixed(digits);
}

const TIME = new Set(['LCP', 'INP', 'FCP', 'TTFB', 'TBT']);
const BOUNDS = { LCP: [2500, 4000], INP: [200, 500], CLS: [0.1, 0.25], FCP: [1800, 3000], TTFB: [800, 1800], TBT: [200, 600] };

/** `850 ms`, `2.1 s`, `0.12`; `—` for no value. */
export function value(metric, v) {
  if (v === null || v === undefined) return '—';
  if (!TIME.has(metric)) return fixed(v, 2);
  return v < 999.5 ? `${fixed(v, 0)} ms` : `${fixed(v / 1000, 1)} s`;
}

export function ratingWord(metric, v) {
  const [good, poor] = BOUNDS[metric];
  return v <= good ? 'good' : v <= poor ? 'needs improvement' : 'poor';
}

/** A value with its rating in words, as a table cell shows it; `no data` for none. */
export function rated(metric, v) {
  return v === null || v === undefined ? 'no data' : `${value(metric, v)} ${ratingWord(metric, v)}`;
}

export const percent = (share) => `${fixed(share * 100, 0)} %`;

/** `2026-11-24 09:00 UTC`. */
export const when = (ms) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** The shares as a share bar writes them beside its picture. */
export const shares = (s) =>
  `${percent(s.good)} good, ${percent(s.needs_improvement)} needs improvement, ${percent(s.poor)} poor`;

/** The rows of a table's body, each as the trimmed text of its cells (header cells included). */
export async function bodyRows(table) {
  return table.evaluate((t) =>
    [...t.tBodies].flatMap((b) => [...b.rows]).map((r) => [...r.cells].map((c) => c.innerText.trim())),
  );
}

/** The one body row whose row header is `name`, as the text of its cells after the header. */
export async function rowCells(table, name) {
  const row = table.getByRole('row').filter({ has: table.page().getByRole('rowheader', { name, exact: true }) });
  assert.equal(await row.count(), 1, `one row headed ${JSON.stringify(name)}`);
  return row.getByRole('cell').allInnerTexts().then((cells) => cells.map((c) => c.trim()));
}

/**
 * Every table of the page, shown or inside a closed <details>, opens with a
 * header row: column headers only. Returns how many tables were checked.
 */
export async function assertHeaderRows(page, view) {
  const tables = page.getByRole('table', { includeHidden: true });
  const n = await tables.count();
  for (let i = 0; i < n; i++) {
    const first = tables.nth(i).getByRole('row', { includeHidden: true }).first();
    const headers = await first.getByRole('columnheader', { includeHidden: true }).count();
    const cells = await first.getByRole('cell', { includeHidden: true }).count();
    const rowHeaders = await first.getByRole('rowheader', { includeHidden: true }).count();
    assert.ok(
      headers > 0 && cells === 0 && rowHeaders === 0,
      `${view}: table ${i + 1} of ${n} (${await tables.nth(i).getAttribute('class')}) opens with a header row`,
    );
  }
  return n;
}
