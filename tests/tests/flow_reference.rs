//! The flow format as a user meets it: `vitalsign-agent validate` on the
//! reference's examples and on flows that cannot work (the real binary, the
//! real files), and the collector serving the flow schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use vitalsign_test_support::{CollectorProcess, binary, workspace_root};

/// Run `validate` on `files`; (exit success, stdout + stderr).
fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(binary("vitalsign-agent"))
        .arg("validate")
        .args(files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_shipped_flows_and_the_reference_examples_validate() {
    let root = workspace_root();
    let mut files = toml_files(&root.join("deploy/flows"));
    files.extend(toml_files(&root.join("deploy/flows/examples")));
    assert!(files.len() >= 12, "{files:?}");
    let (ok, text) = validate(&files);
    assert!(ok, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok    ")).count(),
        files.len(),
        "{text}"
    );
}

const HEAD: &str = "name = \"shop\"\nbase_url = \"http://127.0.0.1:9\"\n";

/// (file, body after the name and base URL, what the error line must hold).
const BAD: &[(&str, &str, &str)] = &[
    (
        "blank-selector.toml",
        "[[steps]]\ngoto = \"/\"\n[[steps]]\nclick = \"   \"\n",
        "blank-selector.toml: step 2: `click` needs a CSS selector",
    ),
    (
        "empty-goto.toml",
        "[[steps]]\ngoto = \"\"\n",
        "empty-goto.toml: step 1: `goto` needs a URL",
    ),
    (
        "blank-wait.toml",
        "[[steps]]\nwait_for = { selector = \"\" }\n",
        "blank-wait.toml: step 1: `wait_for.selector` needs",
    ),
    (
        "zero-step-timeout.toml",
        "[timeouts]\nstep = \"0s\"\n[[steps]]\ngoto = \"/\"\n",
        "zero-step-timeout.toml: key `timeouts.step`: \"0s\" is outside",
    ),
    (
        "zero-delay.toml",
        "[[steps]]\nwait_for = { delay = \"0ms\" }\n",
        "zero-delay.toml: step 1: `wait_for.delay`",
    ),
    (
        "ages.toml",
        "schedule = \"18446744073709551615s\"\n[[steps]]\ngoto = \"/\"\n",
        "ages.toml: key `schedule`: \"18446744073709551615s\" is outside 1s … 31days",
    ),
    (
        "never.toml",
        "schedule = \"0 0 31 2 *\"\n[[steps]]\ngoto = \"/\"\n",
        "never.toml: key `schedule`: \"0 0 31 2 *\" never fires",
    ),
    (
        "bad-field.toml",
        "schedule = \"*/5 * * 13 *\"\n[[steps]]\ngoto = \"/\"\n",
        "bad-field.toml: key `schedule`: \"*/5 * * 13 *\": the month field \"13\" is wrong",
    ),
    (
        "nan.toml",
        "profile = { base = \"mobile\", latency_ms = nan }\n[[steps]]\ngoto = \"/\"\n",
        "nan.toml: key `profile`: `latency_ms` must be a number from 0 to 10000, not NaN",
    ),
    (
        "inf.toml",
        "profile = { cpu_slowdown = inf }\n[[steps]]\ngoto = \"/\"\n",
        "inf.toml: key `profile`: `cpu_slowdown` must be a number from 1 to 20, not inf",
    ),
    ("syntax.toml", "[[steps]]\ngoto = /\n", "syntax.toml:4:8: "),
];

#[test]
fn validate_refuses_flows_that_cannot_work_naming_file_step_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, format!("{HEAD}[[steps]]\ngoto = \"/\"\n")).unwrap();
    for (file, body, expected) in BAD {
        let path = dir.path().join(file);
        std::fs::write(&path, format!("{HEAD}{body}")).unwrap();
        let (ok, text) = validate(&[good.clone(), path.clone()]);
        assert!(!ok, "{file} accepted: {text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("error "))
            .unwrap_or_else(|| panic!("{file}: no error line in {text}"));
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(
            line.contains(expected),
            "{file}: expected {expected:?} in {line:?}"
        );
        assert!(
            text.contains("ok    "),
            "the good file is still reported: {text}"
        );
    }
}

#[test]
fn an_error_repeats_at_most_200_bytes_of_the_input_and_no_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    // 1 MB of escape codes, written as TOML escapes (raw ones are a syntax error).
    let huge = "\\u001b[2m".repeat(100_000);
    std::fs::write(&path, format!("{HEAD}[[steps]]\npress = \"{huge}\"\n")).unwrap();
    let (ok, text) = validate(std::slice::from_ref(&path));
    assert!(!ok);
    let line = text.lines().find(|l| l.starts_with("error ")).unwrap();
    let without_path = line.replace(&path.display().to_string(), "");
    assert!(without_path.len() < 420, "{} bytes: {line}", line.len());
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(line.contains("step 1: `press`: unknown key"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_collector_serves_the_flow_schema() {
    let dir = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(
        dir.path(),
        "agent_tokens = [\"t\"]\nquery_tokens = [\"q\"]\n",
    );
    let response = reqwest::get(format!("{}/v1/flow.schema.json", collector.base_url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/schema+json"
    );
    let served = response.text().await.unwrap();
    let shipped =
        std::fs::read_to_string(workspace_root().join("deploy/flow.schema.json")).unwrap();
    assert_eq!(served, shipped);
    let schema: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(schema["title"], "vitalsign flow");
}
