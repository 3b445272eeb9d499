//! The collector's configuration: serde defaults, then the TOML file given with
//! `--config`, then `VITALSIGN_…` variables (see `deploy/collector.example.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use vitalsign_core::config::{self, ConfigError, ConfigSource, LogFormat};
use vitalsign_core::metric::{Metric, Source};
use vitalsign_core::secret::Secret;

use crate::alerts::rules::RuleKind;
use crate::grouping::GroupRule;

/// The `db` setting: a SQLite file, or a PostgreSQL URL (which may hold a
/// password, so it prints and serialises with the password as `***`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(Secret),
}

impl Database {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else a file path.
    pub fn parse(value: &str) -> Result<Database, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("is empty: give a SQLite file or a postgres:// URL".into());
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            // Parse now, so a typo is a config error at startup rather than a
            // connection failure later; the parser's message quotes no part of
            // the URL, so the password stays out of it.
            value
                .parse::<tokio_postgres::Config>()
                .map_err(|e| format!("is not a PostgreSQL URL ({e})"))?;
            return Ok(Database::Postgres(Secret::new(value)));
        }
        if value.contains("://") {
            return Err(format!(
                "has the scheme {:?}: only postgres:// URLs or SQLite file paths are supported",
                value.split("://").next().unwrap_or_default()
            ));
        }
        Ok(Database::Sqlite(PathBuf::from(value)))
    }

    /// What to show an operator: the file, or the URL with its password as `***`.
    pub fn redacted(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => redact_url(url.expose()),
        }
    }
}

/// `scheme://user:password@rest` → `scheme://user:***@rest`.
/// Query parameters (where libpq also takes `password=`) show as `?***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, "?***"),
        None => (rest, ""),
    };
    match rest.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let password = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{password}@{host}{query}")
        }
        None => format!("{scheme}://{rest}{query}"),
    }
}

impl TryFrom<String> for Database {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Database::parse(&value)
    }
}

impl std::str::FromStr for Database {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Database::parse(value)
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.redacted())
    }
}

impl Serialize for Database {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    pub listen: String,
    /// Where to store: a SQLite file (created with its migrations when
    /// missing), or `postgres://user:password@host:port/database` for
    /// several collector replicas on one PostgreSQL.
    pub db: Database,
    /// Sites whose pages may send beacons, by the key in the tag's `data-site`.
    pub sites: BTreeMap<String, SiteConfig>,
    /// Bearer tokens agents use for `/v1/runs` and artifact uploads.
    pub agent_tokens: Vec<Secret>,
    /// Bearer tokens for `/api/v1/…` and artifact downloads.
    pub query_tokens: Vec<Secret>,
    /// Serve `/api/v1/…` without a token (for a collector on a private network).
    pub public_queries: bool,
    /// Serve the dashboard pages without sign-in (acknowledging and silencing
    /// still need a session).
    pub public_dashboard: bool,
    /// How long a dashboard sign-in lasts, in hours.
    pub session_hours: u64,
    /// Beacons per second each client IP may send (token bucket refill rate).
    pub rate_limit_per_second: f64,
    /// Burst allowance of the per-client bucket.
    pub rate_limit_burst: f64,
    /// Networks of the reverse proxies in front of the collector (CIDR, such as
    /// `10.0.0.0/8`; a bare address is one host). When the peer is in one of
    /// them, the client is the rightmost `X-Forwarded-For` entry outside them;
    /// empty (the default): the peer address, and the header is ignored.
    pub trusted_proxies: Vec<crate::client_ip::IpNet>,
    /// Replaced by `trusted_proxies`: `true` is refused at load with a message
    /// saying so (it believed the leftmost entry, which the client writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_forwarded_for: Option<bool>,
    /// Timeouts and caps of client connections (`[connections]`).
    pub connections: ConnectionConfig,
    /// Largest accepted beacon body in bytes.
    pub max_beacon_bytes: usize,
    /// Largest accepted probe run document in bytes.
    pub max_run_bytes: usize,
    /// Largest accepted artifact (screenshot) in bytes.
    pub max_artifact_bytes: usize,
    /// `/readyz` answers 503 when less than this many MiB are free on the
    /// file system of the database (writes would soon fail).
    pub min_free_disk_mb: u64,
    /// Raw samples and runs older than this are deleted; hourly rollups stay.
    pub retention_days: u32,
    /// How often the retention pruner runs, in seconds.
    pub prune_interval_secs: u64,
    /// Rules that turn URL paths into page groups, tried in order before the
    /// built-in ones (numeric and hash-like segments become `:id` / `:hash`).
    pub page_groups: Vec<GroupRule>,
    /// Serve this directory at `/demo/` (the bundled demo site; unset in production).
    pub demo_site_dir: Option<PathBuf>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Alert rules, routes of recipients and maintenance windows (see `docs/alerts.md`).
    pub alerts: AlertsConfig,
    /// The SMTP server alert emails go through; without `host`, alerts are
    /// evaluated and recorded but no email is queued.
    pub smtp: SmtpConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// Origins (`https://shop.example`) whose pages may send beacons; `"*"` allows any.
    pub origins: Vec<String>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            listen: "127.0.0.1:8080".into(),
            db: Database::Sqlite(PathBuf::from("vitalsign.db")),
            sites: BTreeMap::new(),
            agent_tokens: Vec::new(),
            query_tokens: Vec::new(),
            public_queries: false,
            public_dashboard: false,
            session_hours: 12,
            rate_limit_per_second: 5.0,
            rate_limit_burst: 50.0,
            trusted_proxies: Vec::new(),
            trust_forwarded_for: None,
            connections: ConnectionConfig::default(),
            max_beacon_bytes: 64 * 1024,
            max_run_bytes: 1024 * 1024,
            max_artifact_bytes: 5 * 1024 * 1024,
            min_free_disk_mb: 100,
            retention_days: 30,
            prune_interval_secs: 3600,
            page_groups: Vec::new(),
            demo_site_dir: None,
            log_format: LogFormat::Text,
            alerts: AlertsConfig::default(),
            smtp: SmtpConfig::default(),
        }
    }
}

impl CollectorConfig {
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let (config, source) = config::load::<CollectorConfig>(file)?;
        config.validate(&source)?;
        Ok(config)
    }

    pub fn validate(&self, source: &ConfigSource) -> Result<(), ConfigError> {
        if !(1..=24 * 90).contains(&self.session_hours) {
            return Err(ConfigError::invalid(
                source,
                "session_hours",
                format!("{} is not from 1 to 2160 (90 days)", self.session_hours),
            ));
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                source,
                "listen",
                format!(
                    "{:?} is not ADDRESS:PORT, e.g. \"127.0.0.1:8080\"",
                    self.listen
                ),
            ));
        }
        for (key, site) in &self.sites {
            if key.is_empty()
                || key.len() > 64
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            {
                return Err(ConfigError::invalid(
                    source,
                    &format!("sites.{key}"),
                    "site keys are 1 to 64 letters, digits, '-', '_', '.' or ':'",
                ));
            }
            for (i, origin) in site.origins.iter().enumerate() {
                let ok = origin == "*"
                    || ((origin.starts_with("http://") || origin.starts_with("https://"))
                        && !origin
                            .trim_start_matches("http://")
                            .trim_start_matches("https://")
                            .contains('/'));
                if !ok {
                    return Err(ConfigError::invalid(
                        source,
                        &format!("sites.{key}.origins[{i}]"),
                        format!(
                            "{origin:?} is not an origin like \"https://shop.example\" (scheme and host, no path) or \"*\""
                        ),
                    ));
                }
            }
        }
        if !(self.rate_limit_per_second > 0.0 && self.rate_limit_burst >= 1.0) {
            return Err(ConfigError::invalid(
                source,
                "rate_limit_per_second",
                "needs a positive rate and rate_limit_burst of at least 1",
            ));
        }
        self.connections
            .validate()
            .map_err(|(key, reason)| ConfigError::invalid(source, &key, reason))?;
        if self.trust_forwarded_for == Some(true) {
            return Err(ConfigError::invalid(
                source,
                "trust_forwarded_for",
                "is replaced by trusted_proxies: list the networks of your proxies, for example trusted_proxies = [\"10.0.0.0/8\"], and remove trust_forwarded_for",
            ));
        }
        if self.retention_days == 0 {
            return Err(ConfigError::invalid(
                source,
                "retention_days",
                "must be at least 1",
            ));
        }
        if self.prune_interval_secs == 0 {
            return Err(ConfigError::invalid(
                source,
                "prune_interval_secs",
                "must be at least 1",
            ));
        }
        self.alerts
            .validate()
            .map_err(|(key, reason)| ConfigError::invalid(source, &key, reason))?;
        self.smtp
            .validate(!self.alerts.routes.is_empty())
            .map_err(|(key, reason)| ConfigError::invalid(source, &key, reason))?;
        Ok(())
    }
}

/// `[connections]`: how long a client may take and how many connections it
/// may hold, so slow or many connections cannot starve everyone else.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Seconds a client has to send a request's headers, counted from when
    /// the server starts waiting for them (also between keep-alive requests).
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body once its headers arrived;
    /// slower: 408 and the connection is closed.
    pub body_read_timeout_secs: u64,
    /// A connection with no bytes sent or received for this many seconds is
    /// closed (after the request in flight, if any, is answered).
    pub idle_timeout_secs: u64,
    /// Open client connections at most, in total; lowered at start to fit the
    /// descriptor limit (RLIMIT_NOFILE, `LimitNOFILE` in systemd) less 64.
    /// Connections over the cap are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Open connections at most from one peer address (the proxy's, behind a
    /// proxy: raise it there, or let the proxy cap clients).
    pub max_connections_per_client: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 8192,
            max_connections_per_client: 256,
        }
    }
}

impl ConnectionConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        for (key, value) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if !(1..=3600).contains(&value) {
                return Err((
                    format!("connections.{key}"),
                    format!("is {value}; expected 1 to 3600 seconds"),
                ));
            }
        }
        if self.max_connections == 0 {
            return Err((
                "connections.max_connections".into(),
                "must be at least 1".into(),
            ));
        }
        if self.max_connections_per_client == 0 {
            return Err((
                "connections.max_connections_per_client".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// `[alerts]`: when and how regressions, budget breaches and failing flows
/// become alert states and emails. Every default is explained in `docs/alerts.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate at all (states, transitions, emails). Off: nothing is recorded.
    pub enabled: bool,
    /// Seconds between evaluation ticks. Regression and budget rules decide once
    /// per completed hour (the rollup bucket); flows, silences ending and
    /// reminders are checked on every tick.
    pub evaluate_every_secs: u64,
    /// Collectors sharing one PostgreSQL database: the evaluator lease lasts
    /// this many seconds unless its holder renews it (every third of it), so
    /// another collector takes over evaluation this long after the holder
    /// stops. (SQLite: one collector, always the evaluator.)
    pub lease_ttl_secs: u64,
    /// Apply the built-in rules (regression on every series, budget at the CWV
    /// "good" bounds for LCP/INP/CLS, flow failure and stale flow on every
    /// flow at every location) to what no configured rule matches.
    pub default_rules: bool,
    /// Base URL of this collector as the on-call person reaches it; email links
    /// start with it.
    pub public_url: String,
    /// Route (key of `routes`) of the built-in rules and of rules without one.
    pub default_route: String,
    /// Re-send a firing alert that nobody acknowledged every this many hours; 0 = never.
    pub reminder_hours: u64,
    /// A firing email waits this long (one hourly decision) while other alerts
    /// of the same site and route are pending, so they go out together; 0 = never wait.
    pub group_wait_hours: u64,
    /// An alert that fires within this many hours of an email about its site
    /// and route, while that email's alerts still fire, joins that incident
    /// (same thread, no new email): one deploy, one email.
    pub group_window_hours: u64,
    /// Defaults of regression rules.
    pub regression: RegressionSettings,
    /// Defaults of budget rules.
    pub budget: BudgetSettings,
    /// Defaults of flow-failure and stale-flow rules.
    pub flow: FlowSettings,
    /// Rules, tried in order; for each kind the first matching rule applies to a series.
    pub rules: Vec<AlertRule>,
    /// Who gets the email, by route name.
    pub routes: BTreeMap<String, AlertRoute>,
    /// Recurring windows in which matching alerts send no email (evaluation goes on).
    pub maintenance: Vec<MaintenanceWindow>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            evaluate_every_secs: 60,
            lease_ttl_secs: 15,
            default_rules: true,
            public_url: "http://127.0.0.1:8080".into(),
            default_route: "default".into(),
            reminder_hours: 0,
            group_wait_hours: 1,
            group_window_hours: 6,
            regression: RegressionSettings::default(),
            budget: BudgetSettings::default(),
            flow: FlowSettings::default(),
            rules: Vec::new(),
            routes: BTreeMap::new(),
            maintenance: Vec::new(),
        }
    }
}

/// Regression detection: the recent window against a baseline window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegressionSettings {
    /// Hours of history before the recent window that form the baseline (a
    /// week, so every weekday and hour of day is in it).
    pub baseline_hours: u32,
    /// Shortest recent window in hours.
    pub min_window_hours: u32,
    /// Longest recent window: a low-traffic series widens its window up to this
    /// to reach `min_samples`, and stays `insufficient_data` beyond it.
    pub max_window_hours: u32,
    /// Samples the recent window needs.
    pub min_samples: u64,
    /// Samples the baseline needs.
    pub min_baseline_samples: u64,
    /// One-sided Mann-Whitney U significance level.
    pub alpha: f64,
    /// Smallest p75 increase that counts, as a fraction (0.10 = +10 %).
    pub min_relative_change: f64,
    /// The change must also exceed this many robust standard deviations of the
    /// baseline's own window-to-window p75 movement (noise-aware threshold).
    pub noise_multiplier: f64,
    /// Smallest absolute p75 increase per metric (ms; CLS unitless).
    pub floors: BTreeMap<Metric, f64>,
    /// Evaluations in a row that must agree before `pending` becomes `firing`.
    pub confirm: u32,
    /// Evaluations in a row below half the firing threshold before `firing` resolves.
    pub resolve_after: u32,
}

impl Default for RegressionSettings {
    fn default() -> Self {
        RegressionSettings {
            baseline_hours: 168,
            min_window_hours: 3,
            max_window_hours: 6,
            min_samples: 40,
            min_baseline_samples: 200,
            alpha: 0.01,
            min_relative_change: 0.10,
            noise_multiplier: 4.0,
            floors: BTreeMap::from([
                (Metric::Lcp, 100.0),
                (Metric::Inp, 25.0),
                (Metric::Cls, 0.02),
                (Metric::Fcp, 100.0),
                (Metric::Ttfb, 50.0),
                (Metric::Tbt, 50.0),
            ]),
            confirm: 2,
            resolve_after: 2,
        }
    }
}

/// Budget rules: p75 of the recent window above a bound.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetSettings {
    /// Bounds per metric for the built-in budget rule (the CWV "good" bounds).
    pub bounds: BTreeMap<Metric, f64>,
    /// A firing budget resolves only below `bound × (1 − hysteresis)`.
    pub hysteresis: f64,
    /// Evaluations in a row above the bound before it fires.
    pub confirm: u32,
    /// Evaluations in a row below the resolve line before it resolves.
    pub resolve_after: u32,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            bounds: [Metric::Lcp, Metric::Inp, Metric::Cls]
                .into_iter()
                .map(|m| (m, m.bounds().0))
                .collect(),
            hysteresis: 0.10,
            confirm: 2,
            resolve_after: 2,
        }
    }
}

/// Flow rules: consecutive failed runs of a flow at a location (flow failure),
/// and results that stopped arriving (stale flow).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowSettings {
    /// Failed runs in a row that fire.
    pub fail_after: u32,
    /// Passed runs in a row that resolve.
    pub pass_after: u32,
    /// Runs in a row that ended in an agent/browser error before the state is `error`.
    pub error_after: u32,
    /// A stale flow (no result for more than 3 usual intervals) fires only once
    /// the silence has also lasted this long, in seconds: one run that hangs
    /// until its flow timeout delays the next result without anything being
    /// wrong with the agent. 0 = the three intervals alone.
    pub stale_min_secs: u64,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            fail_after: 2,
            pass_after: 2,
            error_after: 2,
            stale_min_secs: 120,
        }
    }
}

/// One configured rule. Unset matchers match everything. Every field but
/// `kind` may be left out (no struct-level default: a rule without a kind
/// is an error, not a regression rule).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Shown in emails and alert states; unique.
    #[serde(default)]
    pub name: String,
    /// `regression`, `budget`, `flow_failure` or `flow_stale`.
    pub kind: RuleKind,
    /// `false` mutes what this rule matches (the built-in rule does not apply either).
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub site: Option<String>,
    /// Glob over page groups (`/checkout/**`, `/product/*`).
    #[serde(default)]
    pub page_group: Option<PageGlob>,
    /// `LCP`, `INP`, `CLS`, `FCP`, `TTFB` or `TBT`.
    #[serde(default)]
    pub metric: Option<Metric>,
    /// Device class (`mobile`, `desktop`, `tablet`; a probe's profile).
    #[serde(default)]
    pub device: Option<String>,
    /// `rum` or `synthetic`.
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default)]
    pub flow: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    /// Route (key of `routes`) this rule's emails go to.
    #[serde(default)]
    pub route: Option<String>,
    /// Budget bound (budget rules; required when the metric has no default bound).
    #[serde(default)]
    pub bound: Option<f64>,
    /// Overrides `regression.min_relative_change`.
    #[serde(default)]
    pub min_relative_change: Option<f64>,
    /// Overrides the metric's `regression.floors` entry.
    #[serde(default)]
    pub floor: Option<f64>,
    /// Overrides `regression.min_samples`.
    #[serde(default)]
    pub min_samples: Option<u64>,
}

impl AlertRule {
    /// A rule of `kind` that matches everything, to narrow with its fields.
    pub fn new(name: &str, kind: RuleKind) -> AlertRule {
        AlertRule {
            name: name.into(),
            kind,
            enabled: None,
            site: None,
            page_group: None,
            metric: None,
            device: None,
            source: None,
            flow: None,
            location: None,
            route: None,
            bound: None,
            min_relative_change: None,
            floor: None,
            min_samples: None,
        }
    }
}

/// A glob over page groups (`/checkout/**`), checked and compiled once when
/// the configuration is read; written back as the text it was given as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PageGlob {
    glob: Glob,
    matcher: GlobMatcher,
}

impl PageGlob {
    pub fn new(pattern: &str) -> Result<PageGlob, String> {
        let glob = Glob::new(pattern).map_err(|e| format!("{pattern:?} is not a glob: {e}"))?;
        Ok(PageGlob {
            matcher: glob.compile_matcher(),
            glob,
        })
    }

    pub fn is_match(&self, page_group: &str) -> bool {
        self.matcher.is_match(page_group)
    }

    pub fn as_str(&self) -> &str {
        self.glob.glob()
    }
}

impl TryFrom<String> for PageGlob {
    type Error = String;
    fn try_from(pattern: String) -> Result<Self, String> {
        PageGlob::new(&pattern)
    }
}

impl From<PageGlob> for String {
    fn from(glob: PageGlob) -> String {
        glob.glob.glob().to_string()
    }
}

/// A day of the week, as maintenance windows name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Monday first, as ISO 8601 counts.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// The weekday of a day counted from 1970-01-01 (a Thursday).
    pub fn of_unix_day(day: i64) -> Weekday {
        Weekday::ALL[(day + 3).rem_euclid(7) as usize]
    }
}

/// Recipients of one route.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRoute {
    /// Email addresses.
    pub to: Vec<String>,
}

/// A recurring window (UTC) in which matching alerts send no email. A file
/// must give `start` and `duration`; the rest may be left out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    #[serde(default)]
    pub name: String,
    /// Weekdays it recurs on (`mon` … `sun`); empty = every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Start time of day, `HH:MM` UTC.
    pub start: TimeOfDay,
    /// Length, like `2h` or `30m`, from a minute to 7 days.
    pub duration: WindowLength,
    #[serde(default)]
    pub site: Option<String>,
    /// Glob over page groups.
    #[serde(default)]
    pub page_group: Option<PageGlob>,
    #[serde(default)]
    pub flow: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
}

/// For windows built in code: daily from 00:00 for an hour, matching everything.
impl Default for MaintenanceWindow {
    fn default() -> Self {
        MaintenanceWindow {
            name: String::new(),
            days: Vec::new(),
            start: TimeOfDay { minute: 0 },
            duration: WindowLength { minutes: 60 },
            site: None,
            page_group: None,
            flow: None,
            location: None,
        }
    }
}

/// A time of day, `HH:MM` (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay {
    minute: u32,
}

impl TimeOfDay {
    /// Minutes since midnight.
    pub fn minute_of_day(self) -> u32 {
        self.minute
    }
}

impl std::str::FromStr for TimeOfDay {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        text.split_once(':')
            .filter(|(h, m)| h.len() <= 2 && m.len() == 2)
            .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
            .filter(|(h, m)| *h < 24 && *m < 60)
            .map(|(h, m)| TimeOfDay { minute: h * 60 + m })
            .ok_or_else(|| format!("{text:?} is not HH:MM (UTC), e.g. \"02:30\""))
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        format!("{:02}:{:02}", t.minute / 60, t.minute % 60)
    }
}

/// How long a maintenance window lasts: whole minutes, 1 minute to 7 days,
/// written like `2h` or `30m` (humantime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WindowLength {
    minutes: u32,
}

impl WindowLength {
    pub fn minutes(self) -> u32 {
        self.minutes
    }
}

impl std::str::FromStr for WindowLength {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let length = humantime::parse_duration(text)
            .map_err(|_| format!("{text:?} is not like \"2h\" or \"30m\""))?;
        let minutes = length.as_secs() / 60;
        if minutes == 0 || minutes > 7 * 24 * 60 {
            return Err(format!("{text:?} must be between 1 minute and 7 days"));
        }
        Ok(WindowLength {
            minutes: minutes as u32,
        })
    }
}

impl TryFrom<String> for WindowLength {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<WindowLength> for String {
    fn from(length: WindowLength) -> String {
        humantime::format_duration(std::time::Duration::from_secs(
            u64::from(length.minutes) * 60,
        ))
        .to_string()
    }
}

impl AlertsConfig {
    /// Checks that need more than serde: (key, reason) of the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, reason: String| Err((format!("alerts.{key}"), reason));
        if self.evaluate_every_secs == 0 {
            return bad("evaluate_every_secs", "must be at least 1".into());
        }
        if !(1..=3600).contains(&self.lease_ttl_secs) {
            return bad(
                "lease_ttl_secs",
                format!("{} is not between 1 and 3600", self.lease_ttl_secs),
            );
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return bad(
                "public_url",
                format!(
                    "{:?} is not an http(s) URL like \"https://vitals.example\"",
                    self.public_url
                ),
            );
        }
        let r = &self.regression;
        if r.min_window_hours == 0 || r.max_window_hours < r.min_window_hours {
            return bad(
                "regression.max_window_hours",
                "needs 1 <= min_window_hours <= max_window_hours".into(),
            );
        }
        if r.baseline_hours < 24 * r.max_window_hours {
            return bad(
                "regression.baseline_hours",
                format!(
                    "{} h cannot hold 24 windows of max_window_hours ({} h), which the noise estimate needs",
                    r.baseline_hours, r.max_window_hours
                ),
            );
        }
        if !(r.alpha > 0.0 && r.alpha < 0.5) {
            return bad(
                "regression.alpha",
                format!("{} is not in (0, 0.5)", r.alpha),
            );
        }
        if !(r.min_relative_change >= 0.0 && r.min_relative_change.is_finite()) {
            return bad(
                "regression.min_relative_change",
                "must be a fraction >= 0 (0.10 = +10 %)".into(),
            );
        }
        if !(r.noise_multiplier >= 0.0 && r.noise_multiplier.is_finite()) {
            return bad("regression.noise_multiplier", "must be >= 0".into());
        }
        for (metric, floor) in &r.floors {
            if floor.is_nan() || *floor < 0.0 {
                return bad(
                    &format!("regression.floors.{metric}"),
                    "must be >= 0".into(),
                );
            }
        }
        for (metric, bound) in &self.budget.bounds {
            if bound.is_nan() || *bound <= 0.0 {
                return bad(&format!("budget.bounds.{metric}"), "must be > 0".into());
            }
        }
        if !(0.0..1.0).contains(&self.budget.hysteresis) {
            return bad("budget.hysteresis", "must be in [0, 1)".into());
        }
        for (key, n) in [
            ("regression.confirm", r.confirm),
            ("regression.resolve_after", r.resolve_after),
            ("budget.confirm", self.budget.confirm),
            ("budget.resolve_after", self.budget.resolve_after),
            ("flow.fail_after", self.flow.fail_after),
            ("flow.pass_after", self.flow.pass_after),
            ("flow.error_after", self.flow.error_after),
        ] {
            if n == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let key = |k: &str| format!("rules[{i}].{k}");
            if rule.name.is_empty() || !names.insert(rule.name.as_str()) {
                return bad(
                    &key("name"),
                    "every rule needs a unique, non-empty name".into(),
                );
            }
            if let Some(route) = &rule.route
                && !self.routes.contains_key(route)
            {
                return bad(
                    &key("route"),
                    format!("{route:?} is not a key of alerts.routes"),
                );
            }
            if rule.kind == RuleKind::Budget && rule.enabled != Some(false) && rule.bound.is_none()
            {
                let has_default = rule
                    .metric
                    .is_some_and(|m| self.budget.bounds.contains_key(&m));
                if !has_default {
                    return bad(
                        &key("bound"),
                        "a budget rule needs `bound` unless its `metric` has one in alerts.budget.bounds".into(),
                    );
                }
            }
            if let Some(b) = rule.bound
                && (b.is_nan() || b <= 0.0)
            {
                return bad(&key("bound"), "must be > 0".into());
            }
        }
        for (name, route) in &self.routes {
            for (i, to) in route.to.iter().enumerate() {
                if to.parse::<lettre::Address>().is_err() {
                    return bad(
                        &format!("routes.{name}.to[{i}]"),
                        format!("{to:?} is not an email address"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// How the connection to the SMTP server is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// No encryption: loopback or a trusted relay only (usually port 25).
    Plain,
    /// Plain connection upgraded with STARTTLS, required (usually port 587).
    Starttls,
    /// Implicit TLS from the first byte, "SMTPS" (usually port 465).
    Tls,
}

/// `[smtp]`: the mail server alert emails go through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name; empty = no email (alerts are still evaluated and recorded).
    pub host: String,
    /// Port; 0 picks the usual one for `tls` (25 plain, 587 starttls, 465 tls).
    pub port: u16,
    /// `plain` (no encryption: loopback or a trusted relay only), `starttls`
    /// (upgrade required) or `tls` (implicit TLS, "SMTPS").
    pub tls: SmtpTls,
    /// Login user; empty = no authentication.
    pub username: String,
    /// Login password (prefer VITALSIGN_SMTP__PASSWORD); never logged.
    pub password: Secret,
    /// Sender address, e.g. `vitalsign <alerts@example.com>`.
    pub from: String,
    /// Seconds to wait for the server before the attempt counts as failed.
    pub timeout_secs: u64,
    /// First retry delay after a temporary failure; doubles up to `retry_max_secs`.
    pub retry_initial_secs: f64,
    /// Longest delay between retries.
    pub retry_max_secs: f64,
    /// How often the outbox worker looks for due messages, in milliseconds.
    pub poll_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 0,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: Secret::default(),
            from: "vitalsign <vitalsign@localhost>".into(),
            timeout_secs: 30,
            retry_initial_secs: 5.0,
            retry_max_secs: 600.0,
            poll_ms: 1000,
        }
    }
}

impl SmtpConfig {
    pub fn enabled(&self) -> bool {
        !self.host.is_empty()
    }

    /// The port to connect to: the configured one or the usual one for the TLS mode.
    pub fn effective_port(&self) -> u16 {
        match (self.port, self.tls) {
            (0, SmtpTls::Plain) => 25,
            (0, SmtpTls::Tls) => 465,
            (0, SmtpTls::Starttls) => 587,
            (p, _) => p,
        }
    }

    pub fn validate(&self, has_routes: bool) -> Result<(), (String, String)> {
        let bad = |key: &str, reason: String| Err((format!("smtp.{key}"), reason));
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return bad(
                "from",
                format!(
                    "{:?} is not an address like \"vitalsign <alerts@example.com>\"",
                    self.from
                ),
            );
        }
        if self.timeout_secs == 0 {
            return bad("timeout_secs", "must be at least 1".into());
        }
        if !(self.retry_initial_secs > 0.0 && self.retry_max_secs >= self.retry_initial_secs) {
            return bad(
                "retry_max_secs",
                "needs 0 < retry_initial_secs <= retry_max_secs".into(),
            );
        }
        if self.poll_ms == 0 {
            return bad("poll_ms", "must be at least 1".into());
        }
        if self.enabled() && !has_routes {
            tracing::warn!(
                "smtp.host is set but alerts.routes is empty: no alert has recipients, so no email will be sent"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_loads_and_hides_secrets() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/collector.example.toml");
        let config = CollectorConfig::load(Some(&path)).unwrap();
        assert!(config.sites.contains_key("shop"));
        assert_eq!(config.alerts.rules.len(), 2);
        assert!(!config.smtp.enabled());
        let printed = format!("{config:?}");
        assert!(!printed.contains("replace-with"), "{printed}");
    }

    #[test]
    fn db_is_a_sqlite_file_or_a_postgres_url_whose_password_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "db = \"postgres://vs:hunter2@db.internal:5432/vitalsign?sslmode=disable\"\n",
        )
        .unwrap();
        let config = CollectorConfig::load(Some(&path)).unwrap();
        assert!(matches!(&config.db, Database::Postgres(url) if url.expose().contains("hunter2")));
        for shown in [
            config.db.to_string(),
            format!("{config:?}"),
            serde_json::to_string(&config).unwrap(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(
            config.db.to_string(),
            "postgres://vs:***@db.internal:5432/vitalsign?***"
        );
        assert_eq!(
            "data/vs.db".parse::<Database>().unwrap(),
            Database::Sqlite(PathBuf::from("data/vs.db"))
        );
        for (toml, says) in [
            ("db = \"mysql://u:hunter2@h/d\"\n", "\"mysql\""),
            (
                "db = \"postgres://u:hunter2@h:notaport/d\"\n",
                "not a PostgreSQL URL",
            ),
            ("db = \" \"\n", "is empty"),
        ] {
            std::fs::write(&path, toml).unwrap();
            let err = CollectorConfig::load(Some(&path)).unwrap_err().to_string();
            assert!(
                err.contains("c.toml") && err.contains("db") && err.contains(says),
                "{toml}: {err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn errors_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[sites.shop]\norigins = [\"https://shop.example/path\"]\n",
        )
        .unwrap();
        let err = CollectorConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("c.toml") && err.contains("sites.shop.origins[0]"),
            "{err}"
        );
        std::fs::write(&path, "listen = \"8080\"\n").unwrap();
        let err = CollectorConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("`listen`"), "{err}");
    }

    #[test]
    fn alert_and_smtp_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (toml, key) in [
            (
                "[[alerts.rules]]\nname = \"x\"\nkind = \"regresion\"\n",
                "alerts.rules[0].kind",
            ),
            (
                "[[alerts.rules]]\nname = \"x\"\nkind = \"budget\"\nmetric = \"TTFB\"\n",
                "alerts.rules[0].bound",
            ),
            (
                "[[alerts.rules]]\nname = \"x\"\nkind = \"regression\"\npage_group = \"/a/[\"\n",
                "alerts.rules[0].page_group",
            ),
            (
                "[[alerts.rules]]\nname = \"x\"\nkind = \"regression\"\nroute = \"ops\"\n",
                "alerts.rules[0].route",
            ),
            (
                "[alerts.routes.ops]\nto = [\"not an address\"]\n",
                "alerts.routes.ops.to[0]",
            ),
            (
                "[[page_groups]]\npattern = \"/a/**/b\"\ngroup = \"/a\"\n",
                "page_groups[0]",
            ),
            (
                "[alerts.regression]\nalpha = 0.7\n",
                "alerts.regression.alpha",
            ),
            (
                "[alerts.regression]\nmax_window_hours = 48\n",
                "alerts.regression.baseline_hours",
            ),
            (
                "[[alerts.maintenance]]\nstart = \"25:00\"\nduration = \"1h\"\n",
                "alerts.maintenance[0].start",
            ),
            (
                "[[alerts.maintenance]]\nstart = \"02:00\"\nduration = \"8d\"\n",
                "alerts.maintenance[0].duration",
            ),
            (
                "[[alerts.maintenance]]\nname = \"no start\"\nduration = \"1h\"\n",
                "alerts.maintenance[0]",
            ),
            (
                "[[alerts.rules]]\nname = \"x\"\nkind = \"regression\"\nmetric = \"FID\"\n",
                "alerts.rules[0].metric",
            ),
            (
                "[[alerts.rules]]\nname = \"x\"\nkind = \"regression\"\nsource = \"lab\"\n",
                "alerts.rules[0].source",
            ),
            (
                "[[alerts.rules]]\nname = \"ok\"\nkind = \"budget\"\nbound = 1.0\n[[alerts.rules]]\nname = \"x\"\n",
                "alerts.rules[1]",
            ),
            (
                "[alerts.regression.floors]\nFID = 10\n",
                "alerts.regression.floors.FID",
            ),
            (
                "[alerts.budget.bounds]\nlcp = 2000\n",
                "alerts.budget.bounds.lcp",
            ),
            (
                "[[alerts.maintenance]]\nstart = \"02:00\"\nduration = \"1h\"\ndays = [\"sun\", \"sunday\"]\n",
                "alerts.maintenance[0].days[1]",
            ),
            (
                "[[alerts.maintenance]]\nstart = \"02:00\"\nduration = \"1h\"\npage_group = \"/a/{\"\n",
                "alerts.maintenance[0].page_group",
            ),
            ("log_format = \"yaml\"\n", "log_format"),
            ("[smtp]\ntls = \"ssl\"\n", "smtp.tls"),
            ("[smtp]\nfrom = \"nobody\"\n", "smtp.from"),
        ] {
            std::fs::write(&path, toml).unwrap();
            let err = CollectorConfig::load(Some(&path)).unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{key}`")) && err.contains("c.toml"),
                "{toml}: {err}"
            );
        }
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn maintenance_times_parse_and_write_back() {
        let t: TimeOfDay = "2:05".parse().unwrap();
        assert_eq!((t.minute_of_day(), String::from(t)), (125, "02:05".into()));
        assert!("24:00".parse::<TimeOfDay>().is_err());
        assert!("12:5".parse::<TimeOfDay>().is_err());
        let l: WindowLength = "90m".parse().unwrap();
        assert_eq!((l.minutes(), String::from(l)), (90, "1h 30m".into()));
        assert_eq!(
            "7days".parse::<WindowLength>().unwrap().minutes(),
            7 * 24 * 60
        );
        assert!("30s".parse::<WindowLength>().is_err());
    }
}

#[cfg(test)]
mod edge_tests {
    use super::*;

    /// Issue 18: connection limits and the client-address setting are
    /// validated with their key, and the old `trust_forwarded_for` says what
    /// replaced it.
    #[test]
    fn connection_and_proxy_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (toml, key, says) in [
            (
                "[connections]\nheader_read_timeout_secs = 0\n",
                "connections.header_read_timeout_secs",
                "1 to 3600",
            ),
            (
                "[connections]\nmax_connections_per_client = 0\n",
                "connections.max_connections_per_client",
                "at least 1",
            ),
            (
                "trust_forwarded_for = true\n",
                "trust_forwarded_for",
                "trusted_proxies = [",
            ),
            (
                "trusted_proxies = [\"10.0.0.0/33\"]\n",
                "trusted_proxies",
                "prefix length",
            ),
        ] {
            std::fs::write(&path, toml).unwrap();
            let err = CollectorConfig::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{toml}: {err}");
        }
        std::fs::write(&path, "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        let config = CollectorConfig::load(Some(&path)).unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
    }
}
