//! Flow::parse on good and bad files: what it accepts and how its errors
//! name the file, the step, the key and what would be valid.

use super::*;

const GOOD: &str = r##"
name = "checkout"
base_url = "http://127.0.0.1:9/shop"
profile = "mobile"
schedule = "5m"
iterations = 3
[timeouts]
step = "10s"

[[steps]]
name = "open home"
goto = "/"
[[steps]]
type = "#search"
text = "${env:SEARCH_SECRET}"
[[steps]]
press = "Enter"
[[steps]]
wait_for = { selector = "#results" }
[[steps]]
assert = { text_contains = "1 item", selector = "#cart" }
[[steps]]
request = { url = "/healthz", expect_status = 200, max_latency = "500ms" }
"##;

#[test]
fn parses_a_full_flow() {
    let flow = Flow::parse(GOOD, "checkout.toml").unwrap();
    assert_eq!(flow.name, "checkout");
    assert_eq!(flow.iterations, 3);
    assert_eq!(flow.step_timeout, Duration::from_secs(10));
    assert_eq!(flow.steps.len(), 6);
    assert_eq!(flow.steps[1].name, "type into #search");
    assert_eq!(flow.url("/"), "http://127.0.0.1:9/shop/");
    assert_eq!(flow.url("/cart"), "http://127.0.0.1:9/shop/cart");
    assert_eq!(flow.profile.name, "mobile");
    assert!(!flow.is_http_only());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    // SAFETY-free: only this test reads the variable.
    let flow = Flow::parse(GOOD, "checkout.toml").unwrap();
    let printed = format!("{flow:?}");
    assert!(printed.contains("${env:SEARCH_SECRET}"), "{printed}");
    let Action::Type { text, .. } = &flow.steps[1].action else {
        panic!()
    };
    assert!(text.is_secret());
    assert_eq!(
        text.resolve().unwrap_err(),
        "environment variable SEARCH_SECRET is not set"
    );
}

#[test]
fn errors_name_file_step_and_what_is_valid() {
    let cases = [
        (
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\ngoto = \"/\"\n[[steps]]\n[[steps]]\nclik = \"#b\"\n",
            "f.toml: step 2: no action",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nclik = \"#b\"\n",
            "f.toml: step 1: unknown action \"clik\"; expected one of goto, click",
        ),
        (
            "name = \"x\"\n[[steps]]\ngoto = \"/\"\n",
            "f.toml: step 1: relative URL but the flow has no `base_url`",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\ngoto = \"/\"\nclick = \"#a\"\n",
            "step 1: has several actions",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nwait_for = { delay = \"soon\" }\n",
            "step 1: `wait_for.delay`: \"soon\" is not a duration",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nassert = { status = 99 }\n",
            "step 1: `assert.status` must be an HTTP status",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\npress = \"Hyper\"\n",
            "step 1: `press`: unknown key \"Hyper\"",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\nprofile = \"fridge\"\n[[steps]]\ngoto = \"/\"\n",
            "key `profile`: \"fridge\"",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nrequest = { url = \"/\", method = \"FETCH\" }\n",
            "`request.method`",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\ncolour = 1\n[[steps]]\ngoto = \"/\"\n",
            "unknown field `colour`",
        ),
        (
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nclick = \"#a\"\ntext = \"b\"\n",
            "step 1: unknown key `text` for a `click` step",
        ),
    ];
    for (text, expected) in cases {
        let err = Flow::parse(text, "f.toml").unwrap_err().to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

/// Flows that parse but cannot work (issue 18, finding 6), each with what
/// its error must say: the file, the step, the key.
pub const CANNOT_WORK: &[(&str, &str, &str)] = &[
    (
        "blank-click",
        "[[steps]]\nclick = \"  \"\n",
        "f.toml: step 1: `click` needs a CSS selector",
    ),
    (
        "empty-type",
        "[[steps]]\ntype = \"\"\ntext = \"a\"\n",
        "f.toml: step 1: `type` needs a CSS selector",
    ),
    (
        "blank-hover",
        "[[steps]]\nhover = \"\\t\"\n",
        "f.toml: step 1: `hover` needs",
    ),
    (
        "blank-select",
        "[[steps]]\nselect = \"\"\nvalue = \"a\"\n",
        "f.toml: step 1: `select` needs",
    ),
    (
        "blank-scroll",
        "[[steps]]\nscroll = \" \"\n",
        "f.toml: step 1: `scroll` needs",
    ),
    (
        "empty-goto",
        "[[steps]]\ngoto = \"\"\n",
        "f.toml: step 1: `goto` needs a URL",
    ),
    (
        "blank-wait-selector",
        "[[steps]]\ngoto = \"/\"\n[[steps]]\nwait_for = { selector = \"\" }\n",
        "f.toml: step 2: `wait_for.selector` needs",
    ),
    (
        "blank-wait-text",
        "[[steps]]\nwait_for = { text = \" \" }\n",
        "f.toml: step 1: `wait_for.text` needs",
    ),
    (
        "blank-assert-visible",
        "[[steps]]\nassert = { visible = \"\" }\n",
        "f.toml: step 1: `assert.visible` needs",
    ),
    (
        "blank-assert-hidden",
        "[[steps]]\nassert = { hidden = \"\" }\n",
        "f.toml: step 1: `assert.hidden` needs",
    ),
    (
        "blank-text-contains",
        "[[steps]]\nassert = { text_contains = \"\" }\n",
        "f.toml: step 1: `assert.text_contains` needs",
    ),
    (
        "blank-assert-selector",
        "[[steps]]\nassert = { text_contains = \"a\", selector = \"\" }\n",
        "f.toml: step 1: `assert.selector` needs",
    ),
    (
        "empty-request-url",
        "[[steps]]\nrequest = { url = \"\" }\n",
        "f.toml: step 1: `request.url` needs a URL",
    ),
    (
        "zero-step-timeout",
        "[timeouts]\nstep = \"0s\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `timeouts.step`: \"0s\" is outside",
    ),
    (
        "zero-flow-timeout",
        "[timeouts]\nflow = \"0ms\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `timeouts.flow`: \"0ms\" is outside",
    ),
    (
        "endless-step-timeout",
        "[timeouts]\nstep = \"584542046090years\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `timeouts.step`",
    ),
    (
        "flow-shorter-than-step",
        "[timeouts]\nstep = \"30s\"\nflow = \"10s\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `timeouts.flow`: 10s is shorter",
    ),
    (
        "zero-delay",
        "[[steps]]\nwait_for = { delay = \"0s\" }\n",
        "f.toml: step 1: `wait_for.delay`: \"0s\" is outside",
    ),
    (
        "zero-network-idle",
        "[[steps]]\nwait_for = { network_idle = \"0s\" }\n",
        "f.toml: step 1: `wait_for.network_idle`",
    ),
    (
        "delay-past-step-timeout",
        "[[steps]]\nwait_for = { delay = \"20s\" }\n",
        "f.toml: step 1: `wait_for`: 20s is longer than the step timeout",
    ),
    (
        "zero-max-latency",
        "[[steps]]\nrequest = { url = \"/\", max_latency = \"0s\" }\n",
        "f.toml: step 1: `request.max_latency`",
    ),
    (
        "status-out-of-range",
        "[[steps]]\nrequest = { url = \"/\", expect_status = 600 }\n",
        "f.toml: step 1: `request.expect_status`",
    ),
    (
        "bad-secret-ref",
        "[[steps]]\ntype = \"#q\"\ntext = \"${env:}\"\n",
        "f.toml: step 1: `text`: \"${env:}\" is not a secret reference",
    ),
    (
        "bad-header-secret",
        "[[steps]]\nrequest = { url = \"/\", headers = { Authorization = \"${env:A B}\" } }\n",
        "f.toml: step 1: `request.headers.Authorization`",
    ),
    (
        "schedule-ages",
        "schedule = \"584542046090years\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `schedule`: \"584542046090years\"",
    ),
    (
        "schedule-u64-seconds",
        "schedule = \"18446744073709551615s\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `schedule`: \"18446744073709551615s\" is outside 1s … 31days",
    ),
    (
        "schedule-too-often",
        "schedule = \"10ms\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `schedule`: \"10ms\" is outside",
    ),
    (
        "schedule-blank",
        "schedule = \" \"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `schedule`: is empty",
    ),
    (
        "cron-never",
        "schedule = \"0 0 31 2 *\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `schedule`: \"0 0 31 2 *\" never fires",
    ),
    (
        "cron-bad-field",
        "schedule = \"0 24 * * *\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `schedule`: \"0 24 * * *\": the hour field \"24\" is wrong",
    ),
    (
        "profile-nan",
        "profile = { latency_ms = nan }\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `profile`: `latency_ms` must be a number from 0 to 10000, not NaN",
    ),
    (
        "profile-inf",
        "profile = { download_kbps = inf }\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `profile`: `download_kbps`",
    ),
    (
        "profile-cpu-nan",
        "profile = { cpu_slowdown = nan }\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `profile`: `cpu_slowdown`",
    ),
    (
        "base-url-no-host",
        "base_url = \"https:// /\"\n[[steps]]\ngoto = \"/\"\n",
        "f.toml: key `base_url`",
    ),
];

#[test]
fn flows_that_cannot_work_are_refused_naming_file_step_and_key() {
    for (label, body, expected) in CANNOT_WORK {
        let text = format!("name = \"x\"\nbase_url = \"http://a\"\n{body}");
        let text = text.replacen("base_url = \"http://a\"\nbase_url", "base_url", 1);
        let err = match Flow::parse(&text, "f.toml") {
            Ok(_) => panic!("{label}: accepted\n{text}"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(expected),
            "{label}: expected {expected:?} in {err:?}"
        );
    }
}

#[test]
fn toml_syntax_errors_say_file_line_and_column() {
    let err = Flow::parse("name = \"x\"\n[[steps]]\ngoto = /\n", "f.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("f.toml:3:8: "), "{err}");
    let err = Flow::parse("name = \"x\"\niterations = \"many\"\n", "f.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("f.toml:2:14: "), "{err}");
    // Deep nesting: still a position, never a bare "recursion limit".
    let deep = format!(
        "name = \"x\"\nv = {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let err = Flow::parse(&deep, "f.toml").unwrap_err().to_string();
    assert!(err.starts_with("f.toml:2:"), "{err}");
}

#[test]
fn errors_repeat_at_most_a_short_excerpt_of_the_input() {
    let huge = "\u{1b}[2m".repeat(200_000);
    let cases = [
        format!("name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\n\"{huge}\" = 1\n"),
        format!(
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nclick = \"a\"\n\"{huge}\" = 1\n"
        ),
        format!("name = \"x\"\nbase_url = \"{huge}\"\n[[steps]]\ngoto = \"/\"\n"),
        format!("name = \"x\"\niterations = \"{huge}\"\n[[steps]]\ngoto = \"/\"\n"),
        format!("name = \"x\"\nschedule = \"{huge}\"\n[[steps]]\ngoto = \"/\"\n"),
        format!("name = \"x\"\nschedule = \"{huge} * * * *\"\n[[steps]]\ngoto = \"/\"\n"),
        format!("name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\npress = \"{huge}\"\n"),
        format!(
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nrequest = {{ url = \"/\", method = \"{huge}\" }}\n"
        ),
        format!(
            "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nrequest = {{ url = \"/\", \"{huge}\" = 1 }}\n"
        ),
        format!("name = \"x\"\nprofile = \"{huge}\"\n[[steps]]\ngoto = \"/\"\n"),
        format!("name = \"x\"\n{huge}\n"),
    ];
    for text in cases {
        let err = Flow::parse(&text, "f.toml").unwrap_err().to_string();
        assert!(err.len() < 600, "{} bytes: {}", err.len(), &err[..600]);
        assert!(!err.chars().any(char::is_control), "{err:?}");
    }
}
