//! The PostgreSQL schema: numbered migrations of its own (the SQLite ones
//! are another dialect and another layout), applied in order, each in its own
//! transaction, with the version kept in `schema_migrations`.
//!
//! Several replicas may start at once against one database: each migration
//! runs under a transaction-scoped advisory lock, which, unlike a session
//! lock, is released at commit and so works behind PgBouncer's transaction
//! pooling. A database from a newer collector is refused, as SQLite does.
//!
//! Layout, and why it differs from SQLite's:
//! - `measurements` (raw rows, one per page view or probe step, a column per
//!   metric) is partitioned by day on `ts_ms`, so retention drops a
//!   partition instead of deleting rows ([`partition_name`]). A unique index
//!   on a partitioned table must contain the partition key, so the identity
//!   `(origin_id, step_index)` is a plain index; the writer takes a
//!   transaction advisory lock per identity before it looks rows up, so two
//!   replicas given the same page view serialise on it.
//! - `rollups` keeps counts per (metric, hour, series) and `rollup_buckets` a
//!   row per histogram bucket, so a batch merges its histogram deltas in SQL
//!   (`ON CONFLICT … DO UPDATE SET count = count + excluded.count`) and
//!   replicas never read-modify-write a blob. `rollups_daily` and
//!   `rollup_buckets_daily` hold the same per UTC day, as SQLite's
//!   `rollups_daily` does, so long ranges read ~24x fewer rows.
//! - `alert_lease` is the one row naming the replica that evaluates alerts,
//!   with a term every evaluation write checks.
//! - `outbox` rows carry a claim expiry, so replicas share the sending.

use tokio_postgres::Client;

use super::super::StoreError;

/// Key of the advisory lock migrations and partition creation serialise on
/// (an arbitrary constant: "vitalsig" in ASCII).
pub(super) const SCHEMA_LOCK: i64 = 0x7669_7461_6c73_6967;

pub const MIGRATIONS: &[&str] = &[
    // 1: everything, in the layout described above.
    "
    CREATE TABLE series (
        id serial PRIMARY KEY,
        site text NOT NULL,
        page_group text NOT NULL,
        device text NOT NULL,
        source text NOT NULL,            -- rum, synthetic
        flow text NOT NULL,
        step text NOT NULL,
        location text NOT NULL,
        UNIQUE (site, page_group, device, source, flow, step, location)
    );

    CREATE TABLE measurements (
        id bigserial NOT NULL,
        ts_ms bigint NOT NULL,
        series integer NOT NULL,         -- series.id
        -- page-view id (rum) or run id (synthetic): re-reports replace, never add
        origin_id text NOT NULL,
        step_index integer NOT NULL,     -- the probe step, or -1 for a page view
        lcp double precision, cls double precision, inp double precision,
        fcp double precision, ttfb double precision, tbt double precision,
        -- attribution_texts ids (NULL: a probe step)
        navigation integer,
        connection integer,
        lcp_element integer,
        lcp_resource integer,
        inp_target integer,
        cls_source integer,
        inp_input_delay double precision,
        inp_processing double precision,
        inp_presentation double precision
    ) PARTITION BY RANGE (ts_ms);
    CREATE INDEX measurements_identity ON measurements (origin_id, step_index);
    CREATE INDEX measurements_series ON measurements (series, ts_ms);

    CREATE TABLE rollups (
        metric text NOT NULL,
        hour integer NOT NULL,           -- ts_ms / 3_600_000
        series integer NOT NULL,
        count bigint NOT NULL,
        good bigint NOT NULL,
        needs_improvement bigint NOT NULL,
        poor bigint NOT NULL,
        PRIMARY KEY (metric, hour, series)
    );
    -- Reads of a few series (a filter on a page group or site, the sites
    -- offered as filters) find their rows here, not by walking every
    -- series' rows of the range; a filtered histogram read probes
    -- rollup_buckets' primary key with the rows found.
    CREATE INDEX rollups_series ON rollups (metric, series, hour);
    CREATE TABLE rollup_buckets (
        metric text NOT NULL,
        hour integer NOT NULL,
        series integer NOT NULL,
        bucket smallint NOT NULL,        -- crate::histogram's bucket index
        count bigint NOT NULL,
        PRIMARY KEY (metric, hour, series, bucket)
    );
    -- The same counts per UTC day (day = ts_ms / 86_400_000), written with
    -- the hourly rows: a long range reads its whole days here, ~24x fewer
    -- rows, and only its partial-day edges from the hourly tables.
    CREATE TABLE rollups_daily (
        metric text NOT NULL,
        day integer NOT NULL,
        series integer NOT NULL,
        count bigint NOT NULL,
        good bigint NOT NULL,
        needs_improvement bigint NOT NULL,
        poor bigint NOT NULL,
        PRIMARY KEY (metric, day, series)
    );
    CREATE INDEX rollups_daily_series ON rollups_daily (metric, series, day);
    CREATE TABLE rollup_buckets_daily (
        metric text NOT NULL,
        day integer NOT NULL,
        series integer NOT NULL,
        bucket smallint NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (metric, day, series, bucket)
    );

    CREATE TABLE attribution_texts (
        id serial PRIMARY KEY,           -- from 1 up: item 0 in the rollups means not attributed
        kind text NOT NULL,              -- selector, url, navigation_type, connection
        text text NOT NULL,
        UNIQUE (kind, text)
    );
    CREATE TABLE attribution_rollups (
        metric text NOT NULL,
        kind text NOT NULL,
        hour integer NOT NULL,
        site text NOT NULL,
        page_group text NOT NULL,
        device text NOT NULL,
        item integer NOT NULL,
        count bigint NOT NULL,
        value_sum double precision NOT NULL,
        split_count bigint NOT NULL,
        input_delay_sum double precision NOT NULL,
        processing_sum double precision NOT NULL,
        presentation_sum double precision NOT NULL,
        PRIMARY KEY (metric, kind, hour, site, page_group, device, item)
    );

    CREATE TABLE runs (
        run_id text PRIMARY KEY,
        flow text NOT NULL,
        location text NOT NULL,
        outcome text NOT NULL,
        started_at_ms bigint NOT NULL,
        received_ms bigint NOT NULL,
        document text NOT NULL           -- the run as the agent sent it (JSON)
    );
    CREATE INDEX runs_recent ON runs (started_at_ms);
    CREATE INDEX runs_flow_outcome ON runs (flow, location, started_at_ms, outcome);

    CREATE TABLE artifacts (
        run_id text NOT NULL,
        name text NOT NULL,
        content_type text NOT NULL,
        sha256 text NOT NULL,
        content bytea NOT NULL,
        PRIMARY KEY (run_id, name)
    );

    CREATE TABLE alert_states (
        key text PRIMARY KEY,
        id text NOT NULL UNIQUE,
        rule text NOT NULL,
        kind text NOT NULL,
        site text NOT NULL,
        state text NOT NULL,
        since_ms bigint NOT NULL,
        record text NOT NULL,            -- the engine's full record (JSON)
        acked_ms bigint,
        acked_by text,
        updated_ms bigint NOT NULL
    );
    CREATE INDEX alert_states_state ON alert_states (state);

    CREATE TABLE alert_transitions (
        seq bigserial PRIMARY KEY,
        alert_key text NOT NULL,
        rule text NOT NULL,
        at_ms bigint NOT NULL,
        from_state text NOT NULL,
        to_state text NOT NULL,
        numbers text NOT NULL
    );
    CREATE INDEX alert_transitions_key ON alert_transitions (alert_key, at_ms);
    CREATE INDEX alert_transitions_time ON alert_transitions (at_ms);

    CREATE TABLE outbox (
        seq bigserial PRIMARY KEY,
        message_id text NOT NULL UNIQUE,
        kind text NOT NULL,
        created_ms bigint NOT NULL,
        route text NOT NULL,
        message text NOT NULL,           -- rendered email (JSON): retries resend it unchanged
        status text NOT NULL,            -- pending, sent, dead
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_ms bigint NOT NULL,
        last_error text,
        done_ms bigint,
        -- a replica's claim: the row is its own until then (a crashed
        -- sender's rows come back when it passes)
        claimed_until_ms bigint
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);

    CREATE TABLE silences (
        id text PRIMARY KEY,
        created_ms bigint NOT NULL,
        starts_ms bigint NOT NULL,
        ends_ms bigint NOT NULL,
        matchers text NOT NULL,
        comment text NOT NULL,
        created_by text NOT NULL
    );
    CREATE INDEX silences_end ON silences (ends_ms);

    -- The replica that evaluates alerts: `term` grows by one at every change
    -- of holder, and an evaluation is written only under the term it read.
    CREATE TABLE alert_lease (
        id integer PRIMARY KEY CHECK (id = 1),
        holder text NOT NULL,
        term bigint NOT NULL,
        expires_ms bigint NOT NULL       -- the database's clock, not a replica's
    );
    ",
];

pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The daily partition of `measurements` holding `day` (days since the epoch, UTC).
pub fn partition_name(day: i64) -> String {
    format!("measurements_d{day}")
}

pub(super) const DAY_MS: i64 = 86_400_000;

/// Bring the database to [`current_version`], or refuse one that is newer.
pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    // Looked up first: `CREATE TABLE IF NOT EXISTS` of an existing table
    // makes the server send a NOTICE, which every start would log.
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version bigint PRIMARY KEY,
                     applied_ms bigint NOT NULL
                 )",
            )
            .await
            // Two replicas creating the table at the same moment: one of them
            // sees the other's row in the catalog; the table exists either way.
            .or_else(|e| if is_duplicate(&e) { Ok(()) } else { Err(e) })?;
    }
    loop {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        let found: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        if found > current_version() {
            return Err(StoreError::TooNew {
                found,
                supported: current_version(),
            });
        }
        if found == current_version() {
            return Ok(());
        }
        tx.batch_execute(MIGRATIONS[found as usize]).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms)
             VALUES ($1, (extract(epoch from clock_timestamp()) * 1000)::bigint)",
            &[&(found + 1)],
        )
        .await?;
        tx.commit().await?;
    }
}

/// Whether `e` is a unique or duplicate-object violation (a concurrent
/// replica made the same thing first).
pub(super) fn is_duplicate(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::DUPLICATE_TABLE
            || *c == SqlState::DUPLICATE_OBJECT
    )
}
