//! Log files hold no terminal escape codes: both binaries, with their output
//! redirected to a file as `./demo.sh` and service managers do, and *without*
//! `NO_COLOR` (the binaries must decide by themselves that a file is not a
//! terminal). With `log_format = "json"` every line is one JSON object.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vitalsign_test_support::http::request as http;
use vitalsign_test_support::process::listening_addr;
use vitalsign_test_support::wait::wait_until;
use vitalsign_test_support::{Process, binary};

const TOKEN: &str = "clean-logs-token";

/// `command` with stdout and stderr both going to the file `log`; nothing a
/// user's shell or a CI runner may have set (`NO_COLOR`, `RUST_LOG`) decides it.
fn spawn_logged(name: &str, mut command: Command, log: &Path) -> Process {
    command.env_remove("NO_COLOR").env_remove("RUST_LOG");
    Process::spawn_to_file(name, command, log)
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

fn start_collector(dir: &Path, name: &str, log_format: &str) -> (Process, String) {
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
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(dir.join(format!("{name}.db")));
    let mut child = spawn_logged("vitalsign-collector", command, &log);
    let line = child.wait_for_line("listening on http://", Duration::from_secs(30));
    (child, format!("http://{}", listening_addr(&line)))
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
    let (mut collector, base) = start_collector(dir.path(), "collector", "text");
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
    let mut agent = spawn_logged("vitalsign-agent", command, &agent_log);
    wait_until("the agent delivers a run", Duration::from_secs(30), || {
        stored_runs(&base) > 0
    });
    agent.terminate(Duration::from_secs(10));
    collector.terminate(Duration::from_secs(10));

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
    let (mut collector, base) = start_collector(dir.path(), "collector", "json");
    assert_eq!(http(&base, "POST", "/v1/rum", "{not json", None).0, 400);
    collector.terminate(Duration::from_secs(10));

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
