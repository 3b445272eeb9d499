//! The real agent binary against the real collector binary on loopback:
//! schedules fire, spooled results survive a collector outage and a SIGKILL of
//! the agent and arrive exactly once, and a broken flow file does not stop the
//! others. Flows here are HTTP checks against a tiny loopback site, so the
//! delivery path is tested without waiting for a browser.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vitalsign_test_support::agent::{AgentProcess, agent_config};
use vitalsign_test_support::site;
use vitalsign_test_support::wait::wait_until;
use vitalsign_test_support::{CollectorProcess, Process, binary};

const COLLECTOR: &str = r#"
agent_tokens = ["agent-secret-token"]
query_tokens = ["query-token"]
"#;

/// A loopback site that answers 503 "down for maintenance" on `/down` and
/// 200 "shop is open" on every other path.
fn tiny_site() -> String {
    site::serve(|request| {
        if request.starts_with("GET /down ") {
            (
                "503 Service Unavailable",
                "text/plain",
                "down for maintenance".into(),
            )
        } else {
            ("200 OK", "text/plain", "shop is open".into())
        }
    })
}

fn write_flow(dir: &Path, file: &str, name: &str, site: &str, schedule: &str) {
    write_flow_to(dir, file, name, site, schedule, "/");
}

fn write_flow_to(dir: &Path, file: &str, name: &str, site: &str, schedule: &str, path: &str) {
    std::fs::write(
        dir.join(file),
        format!(
            "name = \"{name}\"\nbase_url = \"{site}\"\nschedule = \"{schedule}\"\n\
             [[steps]]\nrequest = {{ url = \"{path}\", expect_status = 200, expect_body_contains = \"open\" }}\n"
        ),
    )
    .unwrap();
}

fn start_agent(dir: &Path, collector_url: &str) -> Process {
    let config = agent_config(dir, collector_url, "agent-secret-token", "test-lab");
    AgentProcess::start(dir, &config).process
}

/// Run ids in the agent's spool, waiting to be delivered.
fn spooled(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir.join("spool/runs"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".json")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every run the collector has stored: (run_id, flow, location, started_at_ms).
fn stored_runs(collector: &CollectorProcess) -> Vec<(String, String, String, u64)> {
    let conn = rusqlite::Connection::open(&collector.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT run_id, flow, location, started_at_ms FROM runs ORDER BY started_at_ms")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Ids the agent logged as finished (its own record of every run it made).
fn finished_ids(agent: &Process) -> Vec<String> {
    agent
        .log()
        .iter()
        .filter(|l| l.contains("flow finished"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["run_id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn schedules_fire_and_results_arrive_once_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    let site = tiny_site();
    write_flow(&dir.path().join("flows"), "home.toml", "home", &site, "1s");
    // A cron schedule (every second, 6 fields) beside the interval one.
    write_flow(
        &dir.path().join("flows"),
        "cron.toml",
        "cron",
        &site,
        "* * * * * *",
    );
    let collector = CollectorProcess::start(dir.path(), COLLECTOR);
    let agent = start_agent(dir.path(), &collector.base_url);

    wait_until("five runs of each flow", Duration::from_secs(30), || {
        let runs = stored_runs(&collector);
        runs.iter().filter(|r| r.1 == "home").count() >= 5
            && runs.iter().filter(|r| r.1 == "cron").count() >= 5
    });
    let runs = stored_runs(&collector);
    assert!(
        runs.iter().all(|r| r.2 == "test-lab"),
        "results carry the location"
    );
    // On time: consecutive runs of the 1 s interval flow start about 1 s apart.
    let starts: Vec<u64> = runs.iter().filter(|r| r.1 == "home").map(|r| r.3).collect();
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (500..=2500).contains(&gap),
            "runs of a 1 s schedule {gap} ms apart: {starts:?}"
        );
    }
    // Once: after a graceful stop (which flushes the spool), the collector holds
    // exactly the runs the agent made.
    let mut agent = agent;
    assert!(
        agent.terminate(Duration::from_secs(30)),
        "the agent did not stop gracefully"
    );
    let finished: HashSet<String> = finished_ids(&agent).into_iter().collect();
    let runs = stored_runs(&collector);
    let stored: HashSet<String> = runs.iter().map(|r| r.0.clone()).collect();
    assert_eq!(stored.len(), runs.len());
    assert_eq!(
        stored, finished,
        "stored runs differ from the runs the agent made"
    );
    assert!(spooled(dir.path()).is_empty(), "results left in the spool");
    let log = agent.log().join("\n");
    assert!(
        !log.contains("agent-secret-token"),
        "the token leaked into the agent's log"
    );
}

#[test]
fn collector_outage_and_agent_sigkill_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    let site = tiny_site();
    write_flow(&dir.path().join("flows"), "home.toml", "home", &site, "1s");

    // Learn a free address for the collector, then take it down.
    let mut collector = CollectorProcess::start(dir.path(), COLLECTOR);
    let addr = collector.addr().to_string();
    let url = collector.base_url.clone();
    assert!(collector.process.terminate(Duration::from_secs(10)));

    // The agent runs with the collector down: results pile up in the spool.
    let mut agent = start_agent(dir.path(), &url);
    wait_until("four spooled results", Duration::from_secs(30), || {
        spooled(dir.path()).len() >= 4
    });
    // SIGKILL: no graceful shutdown, no last delivery attempt.
    agent.kill_hard();
    let before_kill: HashSet<String> = spooled(dir.path());
    let made_by_first: HashSet<String> = finished_ids(&agent).into_iter().collect();
    assert!(
        made_by_first.is_subset(&before_kill),
        "every finished run was spooled before it was logged"
    );

    // The collector comes back on the same address; a new agent delivers the old spool.
    let collector = CollectorProcess::start_on(dir.path(), COLLECTOR, &addr);
    let agent = start_agent(dir.path(), &url);
    wait_until("the old spool delivered", Duration::from_secs(60), || {
        let stored: HashSet<String> = stored_runs(&collector).into_iter().map(|r| r.0).collect();
        before_kill.is_subset(&stored)
    });
    // Exactly once: a resend of an already stored run is acknowledged, not duplicated.
    let runs = stored_runs(&collector);
    let unique: HashSet<&String> = runs.iter().map(|r| &r.0).collect();
    assert_eq!(unique.len(), runs.len());
    let made: HashSet<String> = made_by_first
        .union(&finished_ids(&agent).into_iter().collect())
        .cloned()
        .collect();
    let stored: HashSet<String> = unique.into_iter().cloned().collect();
    assert!(
        stored.is_subset(&made),
        "the collector has runs no agent made"
    );
    let log = agent.log().join("\n");
    assert!(
        !log.contains("agent-secret-token"),
        "the token leaked into the agent's log"
    );
}

#[test]
fn a_broken_flow_file_is_named_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let site = tiny_site();
    write_flow(&flows, "good.toml", "good", &site, "1s");
    std::fs::write(
        flows.join("broken.toml"),
        format!("name = \"broken\"\nbase_url = \"{site}\"\nschedule = \"1s\"\n[[steps]]\ngoto = \"/\"\n[[steps]]\nclik = \"#buy\"\n"),
    )
    .unwrap();
    let collector = CollectorProcess::start(dir.path(), COLLECTOR);
    let mut agent = start_agent(dir.path(), &collector.base_url);
    let line = agent.wait_for_line("broken.toml", Duration::from_secs(20));
    assert!(line.contains("step 2") && line.contains("clik"), "{line}");
    wait_until("runs of the good flow", Duration::from_secs(30), || {
        stored_runs(&collector)
            .iter()
            .filter(|r| r.1 == "good")
            .count()
            >= 2
    });
    assert!(stored_runs(&collector).iter().all(|r| r.1 == "good"));

    // `validate` reports the same problem and exits non-zero.
    let out = Command::new(binary("vitalsign-agent"))
        .arg("validate")
        .arg(flows.join("good.toml"))
        .arg(flows.join("broken.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("broken.toml: step 2"), "{text}");
}

/// (flow, attempt, outcome) of every stored run.
fn stored_attempts(collector: &CollectorProcess) -> Vec<(String, u64, String)> {
    let conn = rusqlite::Connection::open(&collector.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT flow, json_extract(document, '$.attempt'), outcome FROM runs ORDER BY started_at_ms")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_failed_run_is_retried_once_and_sighup_loads_new_flows() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let site = tiny_site();
    write_flow_to(&flows, "down.toml", "down", &site, "3s", "/down");
    let collector = CollectorProcess::start(dir.path(), COLLECTOR);
    let mut agent = start_agent(dir.path(), &collector.base_url);

    // Every scheduled run fails; each is tried again at once, never more, and
    // both attempts reach the collector, so a single blip is visible as such.
    wait_until(
        "both attempts of the failing flow",
        Duration::from_secs(30),
        || {
            stored_attempts(&collector)
                .iter()
                .filter(|r| r.0 == "down")
                .count()
                >= 2
        },
    );
    let down: Vec<_> = stored_attempts(&collector)
        .into_iter()
        .filter(|r| r.0 == "down")
        .collect();
    assert!(down.iter().all(|r| r.2 == "fail"), "{down:?}");
    let attempts: Vec<u64> = down.iter().map(|r| r.1).collect();
    let alternating: Vec<u64> = (0..attempts.len()).map(|i| 1 + (i as u64 % 2)).collect();
    assert_eq!(
        attempts, alternating,
        "one run and exactly one retry per occurrence"
    );

    // A flow file added while the agent runs is picked up on SIGHUP.
    write_flow(&flows, "added.toml", "added", &site, "1s");
    let pid = nix::unistd::Pid::from_raw(agent.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    agent.wait_for_line("reloading flows", Duration::from_secs(10));
    wait_until(
        "runs of the flow added before SIGHUP",
        Duration::from_secs(30),
        || {
            stored_attempts(&collector)
                .iter()
                .filter(|r| r.0 == "added" && r.2 == "pass")
                .count()
                >= 2
        },
    );
    // The reload did not re-run the hourly flow beyond its schedule.
    let down_runs = stored_attempts(&collector)
        .iter()
        .filter(|r| r.0 == "down")
        .count();
    assert!(down_runs <= 4, "{down_runs} runs of an hourly flow");
}
