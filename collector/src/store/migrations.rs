//! Numbered schema migrations. Each runs in its own transaction and bumps
//! `PRAGMA user_version`; a database from a newer collector is refused rather
//! than half-understood.

use rusqlite::Connection;

use super::StoreError;

/// Index `i` upgrades the schema from version `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: samples, hourly rollups, runs, artifacts.
    "
    CREATE TABLE samples (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        site TEXT NOT NULL,
        page_group TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        device TEXT NOT NULL,
        source TEXT NOT NULL,
        flow TEXT NOT NULL,
        step TEXT NOT NULL,
        location TEXT NOT NULL,
        -- page-view id (rum) or run id (synthetic): re-reports replace, never add
        origin_id TEXT NOT NULL,
        step_index INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX samples_identity ON samples(source, origin_id, step_index, metric);
    CREATE INDEX samples_series ON samples(metric, site, page_group, ts_ms);
    CREATE INDEX samples_time ON samples(ts_ms);

    CREATE TABLE rollups (
        hour INTEGER NOT NULL,          -- ts_ms / 3_600_000
        site TEXT NOT NULL,
        page_group TEXT NOT NULL,
        metric TEXT NOT NULL,
        device TEXT NOT NULL,
        source TEXT NOT NULL,
        flow TEXT NOT NULL,
        step TEXT NOT NULL,
        location TEXT NOT NULL,
        count INTEGER NOT NULL,
        good INTEGER NOT NULL,
        needs_improvement INTEGER NOT NULL,
        poor INTEGER NOT NULL,
        histogram BLOB NOT NULL,
        PRIMARY KEY (metric, site, page_group, device, source, flow, step, location, hour)
    ) WITHOUT ROWID;
    CREATE INDEX rollups_hour ON rollups(metric, hour);

    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        location TEXT NOT NULL,
        outcome TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        document TEXT NOT NULL
    );
    CREATE INDEX runs_recent ON runs(started_at_ms);
    CREATE INDEX runs_flow ON runs(flow, location, started_at_ms);

    CREATE TABLE artifacts (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        content BLOB NOT NULL,
        PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID;
    ",
    // 2: alert states, their transitions, the email outbox, silences.
    "
    CREATE TABLE alert_states (
        key TEXT PRIMARY KEY,            -- kind|rule|series: stable across restarts
        id TEXT NOT NULL UNIQUE,         -- short hash of key, used by the API and emails
        rule TEXT NOT NULL,
        kind TEXT NOT NULL,
        site TEXT NOT NULL,
        state TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        record TEXT NOT NULL,            -- the engine's full record (JSON)
        acked_ms INTEGER,                -- written by the API only; cleared when it resolves
        acked_by TEXT,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX alert_states_state ON alert_states(state);

    CREATE TABLE alert_transitions (
        seq INTEGER PRIMARY KEY,
        alert_key TEXT NOT NULL,
        rule TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        numbers TEXT NOT NULL            -- what the detector saw (JSON)
    );
    CREATE INDEX alert_transitions_key ON alert_transitions(alert_key, at_ms);
    CREATE INDEX alert_transitions_time ON alert_transitions(at_ms);

    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        route TEXT NOT NULL,
        message TEXT NOT NULL,           -- rendered email (JSON): retries resend it unchanged
        status TEXT NOT NULL,            -- pending, sent, dead
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        done_ms INTEGER
    );
    CREATE INDEX outbox_due ON outbox(status, next_attempt_ms);

    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        starts_ms INTEGER NOT NULL,
        ends_ms INTEGER NOT NULL,
        matchers TEXT NOT NULL,          -- JSON
        comment TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE INDEX silences_end ON silences(ends_ms);
    ",
    // 3: attribution kept at ingest (see `store::attribution`): a dictionary of
    // selectors, URLs and labels, an hourly count per attributed item, and on
    // each sample the ids it contributed, so a re-report can take them back.
    // The sample columns are nullable: rows written before this migration keep
    // NULL there, which the writer reads as "contributed nothing".
    "
    CREATE TABLE attribution_texts (
        id INTEGER PRIMARY KEY,          -- from 1 up: item 0 in the rollups means not attributed
        kind TEXT NOT NULL,              -- selector, url, navigation_type, connection
        text TEXT NOT NULL,              -- at most 200 (selector) or 2048 (url) characters
        UNIQUE (kind, text)
    );

    -- Hour early in the key: a ranking reads one (metric, kind) over a range of
    -- hours, whatever the site or page group.
    CREATE TABLE attribution_rollups (
        metric TEXT NOT NULL,
        kind TEXT NOT NULL,              -- lcp_element, lcp_resource, inp_target, cls_source, navigation_type, connection
        hour INTEGER NOT NULL,           -- ts_ms / 3_600_000 of the sample
        site TEXT NOT NULL,
        page_group TEXT NOT NULL,
        device TEXT NOT NULL,
        item INTEGER NOT NULL,           -- attribution_texts.id, or 0: the report had no such attribution
        count INTEGER NOT NULL,          -- samples (one per page view and metric)
        value_sum REAL NOT NULL,         -- of the metric's value
        split_count INTEGER NOT NULL,    -- samples with an INP split (the sums below are over these)
        input_delay_sum REAL NOT NULL,
        processing_sum REAL NOT NULL,
        presentation_sum REAL NOT NULL,
        PRIMARY KEY (metric, kind, hour, site, page_group, device, item)
    ) WITHOUT ROWID;

    ALTER TABLE samples ADD COLUMN attr_navigation INTEGER;
    ALTER TABLE samples ADD COLUMN attr_connection INTEGER;
    ALTER TABLE samples ADD COLUMN attr_target INTEGER;
    ALTER TABLE samples ADD COLUMN attr_resource INTEGER;
    ALTER TABLE samples ADD COLUMN attr_input_delay REAL;
    ALTER TABLE samples ADD COLUMN attr_processing REAL;
    ALTER TABLE samples ADD COLUMN attr_presentation REAL;
    ",
    // 4: a flow's runs with their outcome in one index, so the pass rate over a
    // range (the dashboard's flow lists) is counted from the index alone: 1.5 s
    // → 98 ms for 30 days of a 20 s schedule. It serves everything
    // `runs_flow` did, which goes.
    "
    CREATE INDEX runs_flow_outcome ON runs(flow, location, started_at_ms, outcome);
    DROP INDEX runs_flow;
    ",
    // 5: daily rollups beside the hourly ones, so long ranges merge a row a
    // day per series (filled from the hourly rows by `fill_daily_rollups`).
    "
    CREATE TABLE rollups_daily (
        day INTEGER NOT NULL,           -- ts_ms / 86_400_000 (UTC days)
        site TEXT NOT NULL,
        page_group TEXT NOT NULL,
        metric TEXT NOT NULL,
        device TEXT NOT NULL,
        source TEXT NOT NULL,
        flow TEXT NOT NULL,
        step TEXT NOT NULL,
        location TEXT NOT NULL,
        count INTEGER NOT NULL,
        good INTEGER NOT NULL,
        needs_improvement INTEGER NOT NULL,
        poor INTEGER NOT NULL,
        histogram BLOB NOT NULL,
        PRIMARY KEY (metric, site, page_group, device, source, flow, step, location, day)
    ) WITHOUT ROWID;
    CREATE INDEX rollups_daily_day ON rollups_daily(metric, day);
    ",
    // 6: raw rows per page load instead of per metric (see
    // `store::measurements`): one row per page view (RUM) or probe step with a
    // column per metric, its dimensions dictionary-encoded in `series`. The
    // samples of a page view (or step) become one row at its first sample's
    // time, with the navigation and connection ids its samples carried and
    // each metric's own attribution columns. Rollups are unchanged.
    "
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        page_group TEXT NOT NULL,
        device TEXT NOT NULL,
        source TEXT NOT NULL,            -- rum, synthetic
        flow TEXT NOT NULL,
        step TEXT NOT NULL,
        location TEXT NOT NULL,
        UNIQUE (site, page_group, device, source, flow, step, location)
    );

    CREATE TABLE measurements (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        series INTEGER NOT NULL,         -- series.id
        -- page-view id (rum) or run id (synthetic): re-reports replace, never add
        origin_id TEXT NOT NULL,
        step_index INTEGER NOT NULL,     -- the probe step, or -1 for a page view
        lcp REAL, cls REAL, inp REAL, fcp REAL, ttfb REAL, tbt REAL,
        -- attribution_texts ids (NULL: a probe step, or stored before attribution was kept)
        navigation INTEGER,
        connection INTEGER,
        lcp_element INTEGER,
        lcp_resource INTEGER,
        inp_target INTEGER,
        cls_source INTEGER,
        inp_input_delay REAL,
        inp_processing REAL,
        inp_presentation REAL
    );

    INSERT INTO series (site, page_group, device, source, flow, step, location)
        SELECT DISTINCT site, page_group, device, source, flow, step, location FROM samples;

    INSERT INTO measurements (ts_ms, series, origin_id, step_index, lcp, cls, inp, fcp, ttfb, tbt,
                              navigation, connection, lcp_element, lcp_resource, inp_target, cls_source,
                              inp_input_delay, inp_processing, inp_presentation)
        SELECT min(x.ts_ms), min(se.id), x.origin_id,
               CASE WHEN x.source = 'rum' THEN -1 ELSE x.step_index END,
               max(CASE WHEN x.metric = 'LCP' THEN x.value END),
               max(CASE WHEN x.metric = 'CLS' THEN x.value END),
               max(CASE WHEN x.metric = 'INP' THEN x.value END),
               max(CASE WHEN x.metric = 'FCP' THEN x.value END),
               max(CASE WHEN x.metric = 'TTFB' THEN x.value END),
               max(CASE WHEN x.metric = 'TBT' THEN x.value END),
               max(x.attr_navigation), max(x.attr_connection),
               max(CASE WHEN x.metric = 'LCP' THEN x.attr_target END),
               max(CASE WHEN x.metric = 'LCP' THEN x.attr_resource END),
               max(CASE WHEN x.metric = 'INP' THEN x.attr_target END),
               max(CASE WHEN x.metric = 'CLS' THEN x.attr_target END),
               max(CASE WHEN x.metric = 'INP' THEN x.attr_input_delay END),
               max(CASE WHEN x.metric = 'INP' THEN x.attr_processing END),
               max(CASE WHEN x.metric = 'INP' THEN x.attr_presentation END)
        FROM samples AS x
        JOIN series AS se ON se.site = x.site AND se.page_group = x.page_group AND se.device = x.device
             AND se.source = x.source AND se.flow = x.flow AND se.step = x.step AND se.location = x.location
        GROUP BY x.source, x.origin_id, x.step_index
        ORDER BY min(x.ts_ms);

    DROP TABLE samples;
    CREATE UNIQUE INDEX measurements_identity ON measurements(origin_id, step_index);
    CREATE INDEX measurements_series ON measurements(series, ts_ms);
    CREATE INDEX measurements_time ON measurements(ts_ms);

    -- The writer merges rollup changes over batches while ingest is busy and
    -- writes them within a fraction of a second; after a crash, `Store::open`
    -- adds what rows past `rolled_up_through` contributed and corrects the
    -- journaled rows (as the rollups counted them before a re-report).
    CREATE TABLE rollup_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        rolled_up_through INTEGER NOT NULL   -- measurements.id
    );
    INSERT INTO rollup_state (id, rolled_up_through)
        VALUES (1, coalesce((SELECT max(id) FROM measurements), 0));
    CREATE TABLE rollup_journal (
        id INTEGER PRIMARY KEY,          -- measurements.id
        ts_ms INTEGER NOT NULL,
        series INTEGER NOT NULL,
        lcp REAL, cls REAL, inp REAL, fcp REAL, ttfb REAL, tbt REAL,
        navigation INTEGER, connection INTEGER, lcp_element INTEGER, lcp_resource INTEGER,
        inp_target INTEGER, cls_source INTEGER,
        inp_input_delay REAL, inp_processing REAL, inp_presentation REAL
    );
    ",
    // 7: no per-series index on raw rows. `(series, ts_ms)` put each row of a
    // batch on its own page (one per series), and every such page went to the
    // WAL at every commit: dropping it cut the collector's CPU per beacon by a
    // fifth in the ingest bench. Raw reads (ranges up to 6 h) walk the time
    // index instead, which now carries the series so rows of other series are
    // skipped without reading them (`measurements::raw_query`).
    "
    DROP INDEX measurements_series;
    DROP INDEX measurements_time;
    CREATE INDEX measurements_time ON measurements(ts_ms, series);
    ",
];

pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > current_version() {
        return Err(StoreError::TooNew {
            found: version,
            supported: current_version(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if index + 1 == 5 {
            fill_daily_rollups(&tx)?;
        }
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database migrated");
    }
    Ok(())
}

/// Sum the hourly rollups of each series into days (migration 5, for data
/// stored before the writer kept daily rollups; the query bench, which writes
/// hourly rollups itself, calls it too). Expects an empty `rollups_daily`. The
/// rows come in primary-key order, a series' hours together, so one day is
/// merged at a time.
pub fn fill_daily_rollups(tx: &rusqlite::Transaction) -> Result<(), StoreError> {
    use crate::histogram::Histogram;
    let mut read = tx.prepare(
        "SELECT metric, site, page_group, device, source, flow, step, location, hour,
                count, good, needs_improvement, poor, histogram
         FROM rollups ORDER BY metric, site, page_group, device, source, flow, step, location, hour",
    )?;
    let mut write = tx.prepare(
        "INSERT INTO rollups_daily (metric, site, page_group, device, source, flow, step, location, day,
                                    count, good, needs_improvement, poor, histogram)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    type Key = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        i64,
    );
    let mut current: Option<(Key, [i64; 4], Histogram)> = None;
    let mut flush = |done: (Key, [i64; 4], Histogram)| -> rusqlite::Result<()> {
        let (k, n, h) = done;
        write.execute(rusqlite::params![
            k.0,
            k.1,
            k.2,
            k.3,
            k.4,
            k.5,
            k.6,
            k.7,
            k.8,
            n[0],
            n[1],
            n[2],
            n[3],
            h.encode()
        ])?;
        Ok(())
    };
    let mut rows = read.query([])?;
    while let Some(r) = rows.next()? {
        let key: Key = (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get::<_, i64>(8)?.div_euclid(24),
        );
        let counts = [r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?];
        let hour = Histogram::decode(&r.get::<_, Vec<u8>>(13)?);
        match &mut current {
            Some((k, n, h)) if *k == key => {
                for (total, add) in n.iter_mut().zip(counts) {
                    *total += add;
                }
                h.merge(&hour);
            }
            _ => {
                if let Some(done) = current.replace((key, counts, hour)) {
                    flush(done)?;
                }
            }
        }
    }
    if let Some(done) = current {
        flush(done)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;

    #[test]
    fn migration_5_sums_existing_hours_into_days() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        // Two series; the first has three hours on day 10 and one on day 11.
        let rows = [
            ("/a", 240, 10.0),
            ("/a", 241, 20.0),
            ("/a", 250, 30.0),
            ("/a", 264, 40.0),
            ("/b", 240, 50.0),
        ];
        for (group, hour, value) in rows {
            let mut h = Histogram::default();
            h.add(value, 2);
            conn.execute(
                "INSERT INTO rollups (hour, site, page_group, metric, device, source, flow, step, location,
                                      count, good, needs_improvement, poor, histogram)
                 VALUES (?1, 'shop', ?2, 'LCP', 'mobile', 'rum', '', '', '', 2, 2, 0, 0, ?3)",
                rusqlite::params![hour, group, h.encode()],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let mut stmt = conn
            .prepare("SELECT page_group, day, count, good, histogram FROM rollups_daily ORDER BY page_group, day")
            .unwrap();
        let days: Vec<(String, i64, i64, i64, u64)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    Histogram::decode(&r.get::<_, Vec<u8>>(4)?).count(),
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            days,
            vec![
                ("/a".to_string(), 10, 6, 6, 6),
                ("/a".to_string(), 11, 2, 2, 2),
                ("/b".to_string(), 10, 2, 2, 2),
            ]
        );
    }
}
