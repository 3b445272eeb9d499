//! The public endpoint's edges (issue 18): spoofed client addresses, absurd
//! timestamps, charsets and encodings we do not decode, error bodies that
//! must not echo the input, keep-alive after a rejection. The collector runs
//! in-process on 127.0.0.1 with a temp SQLite file.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitalsign_collector::CollectorConfig;
use vitalsign_collector::config::{Database, SiteConfig};
use vitalsign_core::secret::Secret;
use vitalsign_test_support::collector::InProcess;

const AGENT: &str = "agent-token-1";

/// The in-process collector (the one harness) and its temp directory.
struct TestApp {
    app: InProcess,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestApp {
    type Target = InProcess;
    fn deref(&self) -> &InProcess {
        &self.app
    }
}

fn config(db: &Path) -> CollectorConfig {
    let mut c = CollectorConfig {
        listen: "127.0.0.1:0".into(),
        db: Database::Sqlite(db.to_path_buf()),
        agent_tokens: vec![Secret::new(AGENT)],
        ..CollectorConfig::default()
    };
    c.sites.insert(
        "demo".into(),
        SiteConfig {
            origins: vec!["*".into()],
        },
    );
    c
}

async fn spawn_app(change: impl FnOnce(&mut CollectorConfig)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("c.db"));
    change(&mut c);
    TestApp {
        app: InProcess::start(c).await,
        _dir: dir,
    }
}

fn fixture(path: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn beacon(pv: &str) -> Value {
    json!({"schema_version": 1, "site": "demo", "page_view_id": pv,
           "url": "https://shop.example/cart", "navigation_type": "navigate",
           "snippet_version": "0.1.0",
           "reports": [{"metric": "LCP", "value": 1200.0, "rating": "good"}]})
}

async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn edge_timestamps_are_refused_naming_the_field() {
    let app = spawn_app(|_| {}).await;
    let run = fixture("run/valid/checkout-pass.json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for started in [1u64 << 63, u64::MAX, (1u64 << 63) - 1, now + 3_600_000] {
        let mut doc = run.clone();
        doc["started_at_ms"] = json!(started);
        doc["finished_at_ms"] = json!(started);
        let r = app
            .client
            .post(format!("{}/v1/runs", app.base))
            .bearer_auth(AGENT)
            .json(&doc)
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{started}: {error}");
        assert!(error.starts_with("started_at_ms: "), "{started}: {error}");
    }
    // A run that started now is still welcome.
    let mut doc = run.clone();
    doc["started_at_ms"] = json!(now);
    doc["finished_at_ms"] = json!(now + 2_000);
    let r = app
        .client
        .post(format!("{}/v1/runs", app.base))
        .bearer_auth(AGENT)
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn spoofed_forwarded_for_does_not_escape_the_rate_limit() {
    // The test client is the proxy (127.0.0.1); every beacon claims a new
    // client in the leftmost entry, the part the client writes.
    let app = spawn_app(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.rate_limit_per_second = 1.0;
        c.rate_limit_burst = 20.0;
    })
    .await;
    let mut limited = 0;
    for i in 0..2_000u32 {
        let r = app
            .client
            .post(format!("{}/v1/rum", app.base))
            .header("content-type", "text/plain;charset=UTF-8")
            .header(
                "x-forwarded-for",
                format!("203.0.{}.{}, 198.51.100.7", i / 256, i % 256),
            )
            .body(beacon(&format!("pv-{i}")).to_string())
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::NO_CONTENT => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("beacon {i}: {other}"),
        }
    }
    // 20 of burst plus at most one a second of refill for the test's duration.
    assert!(limited >= 1_900, "only {limited} of 2000 were rate-limited");
    // A different real client behind the same proxy is not affected.
    let r = app
        .client
        .post(format!("{}/v1/rum", app.base))
        .header("x-forwarded-for", "198.51.100.8")
        .body(beacon("pv-other").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn charsets_and_encodings_we_do_not_decode_are_415() {
    let app = spawn_app(|_| {}).await;
    let body = beacon("pv-1").to_string();
    let cases: [(&str, Option<&str>, &str); 4] = [
        ("text/plain; charset=utf-16", None, "charset"),
        ("application/json; charset=\"ISO-8859-1\"", None, "charset"),
        ("text/plain", Some("gzip"), "Content-Encoding"),
        ("application/json", Some("br"), "Content-Encoding"),
    ];
    for (ct, encoding, word) in cases {
        for path in ["/v1/rum", "/v1/runs"] {
            let mut req = app
                .client
                .post(format!("{}{path}", app.base))
                .bearer_auth(AGENT)
                .header("content-type", ct)
                .body(body.clone());
            if let Some(e) = encoding {
                req = req.header("content-encoding", e);
            }
            let (status, error) = error_of(req.send().await.unwrap()).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {ct}: {error}"
            );
            assert!(error.contains(word), "{path} {ct}: {error}");
        }
    }
    let r = app
        .client
        .post(format!("{}/v1/rum", app.base))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("content-encoding", "identity")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn error_bodies_quote_at_most_a_short_excerpt() {
    let app = spawn_app(|_| {}).await;
    let long = format!("\u{1b}[2J{}\u{7}", "A".repeat(60_000));
    let mut cases = Vec::new();
    for key in [
        "site",
        "url",
        "navigation_type",
        "snippet_version",
        "page_view_id",
    ] {
        let mut b = beacon("pv-1");
        b[key] = json!(long);
        cases.push(b.to_string());
    }
    let mut b = beacon("pv-1");
    b["reports"][0]["metric"] = json!(long);
    cases.push(b.to_string());
    let mut b = beacon("pv-1");
    b.as_object_mut().unwrap().insert(long.clone(), json!(1));
    cases.push(b.to_string());
    cases.push(long.clone());
    let mut b = beacon("pv-1");
    b["url"] = json!("https:// /");
    cases.push(b.to_string());
    for body in cases {
        let r = app
            .client
            .post(format!("{}/v1/rum", app.base))
            .header("content-type", "text/plain")
            .header("origin", format!("https://{}", "B".repeat(4_000)))
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert!(
            !error.contains(&"A".repeat(201)) && error.len() < 1_000,
            "echoes the input: {} bytes",
            error.len()
        );
        assert!(!error.chars().any(char::is_control), "{error:?}");
        let field = error.split(':').next().unwrap();
        assert!(
            !field.is_empty() && field != "?" && !field.contains(' '),
            "names no field: {error}"
        );
    }
}

/// Read one HTTP/1.1 response (headers and a Content-Length body) from `conn`.
async fn read_response(conn: &mut tokio::net::TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed inside a body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let status = head[9..12].parse().unwrap();
            return (status, head);
        }
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn keep_alive_survives_a_rejected_request() {
    let app = spawn_app(|c| {
        c.rate_limit_per_second = 0.001;
        c.rate_limit_burst = 1.0;
        c.max_beacon_bytes = 1_000;
    })
    .await;
    let good = beacon("pv-1").to_string();
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(900));
    let too_large = "y".repeat(5_000);
    // Each rejection is followed, on the same connection, by a request that
    // must get its own answer: /healthz.
    let rejections: Vec<(String, u16)> = vec![
        (
            format!(
                "POST /v1/rum HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{good}",
                good.len()
            ),
            204,
        ),
        (
            format!(
                "POST /v1/rum HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{big}",
                big.len()
            ),
            429,
        ),
        (
            format!(
                "POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AGENT}\r\nContent-Length: {}\r\n\r\n{too_large}",
                too_large.len()
            ),
            413,
        ),
        (
            format!(
                "POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AGENT}\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n{big}",
                big.len()
            ),
            415,
        ),
    ];
    let limit_runs = |c: &mut CollectorConfig| c.max_run_bytes = 1_000;
    let runs_app = spawn_app(limit_runs).await;
    for (request, expected) in rejections {
        let addr = if request.starts_with("POST /v1/runs") {
            runs_app.addr
        } else {
            app.addr
        };
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Headers first and the body a moment later, as a body larger than a
        // segment arrives: a server that answers without reading the body
        // must still leave the connection at the start of the next request.
        let (head, body) = request.split_at(request.find("\r\n\r\n").unwrap() + 4);
        conn.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        conn.write_all(body.as_bytes()).await.unwrap();
        let (status, head) = read_response(&mut conn).await;
        assert_eq!(status, expected, "{head}");
        if head.to_ascii_lowercase().contains("connection: close") {
            // Allowed by HTTP for a body we will not read, but then the client
            // must be told; we promise to drain small bodies instead.
            panic!(
                "closed after a {status} with a body of {} bytes: {head}",
                request.len()
            );
        }
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (status, head) = read_response(&mut conn).await;
        assert_eq!(status, 200, "after {expected}: {head}");
    }
}

#[tokio::test]
async fn a_large_rejected_body_is_answered_with_connection_close() {
    let app = spawn_app(|c| c.max_run_bytes = 70_000).await;
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Larger than what is read ahead (max_beacon_bytes) and refused unread.
    conn.write_all(
        b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: 69000\r\n\r\n{",
    )
    .await
    .unwrap();
    let (status, head) = read_response(&mut conn).await;
    assert_eq!(status, 401, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let app = spawn_app(|c| c.connections.body_read_timeout_secs = 1).await;
    for length in [500, 200_000] {
        let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AGENT}\r\nContent-Length: {length}\r\n\r\n{{\"schema"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let (status, head) =
            tokio::time::timeout(std::time::Duration::from_secs(5), read_response(&mut conn))
                .await
                .expect("no answer within 5 s to a body that stopped");
        assert_eq!(status, 408, "{length}: {head}");
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        assert!(
            head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app(|c| {
        c.connections.idle_timeout_secs = 1;
        c.connections.header_read_timeout_secs = 30;
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _) = read_response(&mut conn).await;
    assert_eq!(status, 200);
    let answered = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_end(&mut rest),
    )
    .await
    .expect("an idle connection was kept open past its idle timeout")
    .unwrap();
    let idle = answered.elapsed();
    assert!(
        idle >= std::time::Duration::from_millis(900) && idle < std::time::Duration::from_secs(3),
        "closed after {idle:?}"
    );
}
