//! Log files hold no terminal escape codes: both binaries, with their output
//! redirected to a file as `./demo.sh` and service managers do, and *without*
//! `NO_COLOR` (the binaries must decide by themselves that a file is not a
//! terminal). With `log_format = "json"` every line is one JSON object.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vitalsign_tests::{binary, free_port};

const TOKEN: &str = "clean-logs-token";

/// A child whose stdout and stderr both go to `log`, killed on drop.
struct Logged(Child);

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Logged {
    /// SIGTERM, so the binary logs its shutdown too, then wait (bounded).
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn_logged(mut command: Command, log: &Path) -> Logged {
    let file = File::create(log).unwrap();
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        // What a user's shell or a CI runner may have set must not decide the test.
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG");
    Logged(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}")),
    )
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(log: &Path) -> String {
    String::from_utf8(std::fs::read(log).unwrap()).expect("log is UTF-8")
}

fn assert_no_escapes(log: &Path) {
    let text = read(log);
    assert!(!text.is_empty(), "{} is empty", log.display());
    if let Some(line) = text.lines().find(|l| l.contains('\u{1b}')) {
        panic!(
            "{} holds an escape character (0x1b) in:\n{line:?}",
            log.display()
        );
    }
}

fn start_collector(dir: &Path, name: &str, log_format: &str) -> (Logged, String) {
    let port = free_port();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "agent_tokens = [\"{TOKEN}\"]\nquery_tokens = [\"{TOKEN}\"]\nlog_format = \"{log_format}\"\n"
        ),
    )
    .unwrap();
    let log = dir.join(format!("{name}.log"));
    let mut command = Command::new(binary("vitalsign-collector"));
    command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(dir.join(format!("{name}.db")));
    let child = spawn_logged(command, &log);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(
        "the collector logs its address",
        Duration::from_secs(30),
        || read(&log).contains("listening on"),
    );
    (child, base)
}

/// One HTTP/1.1 request over a fresh loopback connection: (status, body).
fn http(base: &str, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn stored_runs(base: &str) -> usize {
    let (status, body) = http(base, "GET", "/api/v1/runs", "", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    // Not chunked: the collector sends a content-length for JSON bodies.
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["runs"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn collector_and_agent_write_no_escape_codes_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, base) = start_collector(dir.path(), "collector", "text");
    // Warnings and errors are where colour would show first: a refused beacon
    // and an unauthorised query.
    assert_eq!(http(&base, "POST", "/v1/rum", "{not json", None).0, 400);
    assert_eq!(http(&base, "GET", "/api/v1/runs", "", None).0, 401);

    // The agent runs an HTTP check against the collector's own health
    // endpoint, so it logs a schedule, a finished run and a delivery.
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("health.toml"),
        format!(
            "name = \"health\"\nbase_url = \"{base}\"\nschedule = \"1s\"\n\
             [[steps]]\nrequest = {{ url = \"/healthz\", expect_status = 200, expect_body_contains = \"ok\" }}\n"
        ),
    )
    .unwrap();
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "collector_url = \"{base}\"\ntoken = \"{TOKEN}\"\nlocation = \"logs\"\n\
             flows_dir = \"{}\"\nspool_dir = \"{}\"\nmax_jitter_secs = 0\n",
            flows.display(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let agent_log = dir.path().join("agent.log");
    let mut command = Command::new(binary("vitalsign-agent"));
    command.arg("run").arg("--config").arg(&agent_config);
    let agent = spawn_logged(command, &agent_log);
    wait_until("the agent delivers a run", Duration::from_secs(30), || {
        stored_runs(&base) > 0
    });
    agent.stop();
    collector.stop();

    let agent_text = read(&agent_log);
    assert!(
        agent_text.contains("flow finished") && agent_text.contains("INFO"),
        "the agent logged its run in text form:\n{agent_text}"
    );
    assert_no_escapes(&agent_log);
    let collector_text = read(&dir.path().join("collector.log"));
    assert!(
        collector_text.contains("listening on") && collector_text.contains("INFO"),
        "{collector_text}"
    );
    assert_no_escapes(&dir.path().join("collector.log"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, base) = start_collector(dir.path(), "collector", "json");
    assert_eq!(http(&base, "POST", "/v1/rum", "{not json", None).0, 400);
    collector.stop();

    let log = dir.path().join("collector.log");
    assert_no_escapes(&log);
    let text = read(&log);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "startup and shutdown are logged:\n{text}");
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
        assert!(
            value.is_object() && value["level"].is_string() && value["fields"].is_object(),
            "a tracing JSON event: {line}"
        );
    }
}
