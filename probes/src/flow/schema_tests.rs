//! The JSON Schema against the parser: the shipped file is the generated one,
//! every example flow passes both, both know the same step kinds and keys, and
//! what the parser refuses the schema refuses too wherever a schema can say it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Flow;
use super::doc::{self, ASSERT_KEYS, STEP_KINDS, WAIT_KEYS};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shipped_path() -> PathBuf {
    repo().join("deploy/flow.schema.json")
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&doc::json_schema()).expect("the generated schema compiles")
}

/// A TOML document as the JSON an editor's schema check sees.
fn as_json(text: &str) -> Value {
    let table: toml::Table = toml::from_str(text).expect("TOML");
    serde_json::to_value(table).expect("TOML converts to JSON")
}

fn schema_errors(v: &jsonschema::Validator, text: &str) -> Vec<String> {
    v.iter_errors(&as_json(text))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_shipped_schema_is_the_generated_one() {
    let generated = doc::json_schema_text();
    if std::env::var_os("VITALSIGN_BLESS").is_some() {
        std::fs::write(shipped_path(), &generated).unwrap();
    }
    let shipped = std::fs::read_to_string(shipped_path()).unwrap_or_default();
    assert!(
        shipped == generated,
        "deploy/flow.schema.json is not what the flow types generate; regenerate it with \
         `VITALSIGN_BLESS=1 cargo test -p vitalsign-probes --lib flow::schema_tests`"
    );
}

/// Every flow we ship: the deploy flows and the reference's examples.
fn shipped_flows() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["deploy/flows", "deploy/flows/examples"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_shipped_flow_passes_the_schema_and_the_parser() {
    let v = validator();
    let files = shipped_flows();
    let examples = files
        .iter()
        .filter(|p| p.starts_with(repo().join("deploy/flows/examples")))
        .count();
    assert!(
        examples >= 10,
        "only {examples} examples in deploy/flows/examples"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = Flow::load(&path) {
            panic!("the parser refuses {}: {e}", path.display());
        }
        let errors = schema_errors(&v, &text);
        assert!(
            errors.is_empty(),
            "the schema refuses {}: {errors:#?}",
            path.display()
        );
        // The first line points editors at the schema.
        assert!(
            text.starts_with("#:schema "),
            "{} does not start with a `#:schema` comment",
            path.display()
        );
    }
}

/// `#/$defs/NAME` of a `$ref`.
fn def<'a>(schema: &'a Value, reference: &Value) -> &'a Value {
    let name = reference.as_str().unwrap().trim_start_matches("#/$defs/");
    &schema["$defs"][name]
}

fn properties(object: &Value) -> BTreeSet<String> {
    object["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The variants of a `oneOf`/`anyOf` (following `$ref`s).
fn variants<'a>(schema: &'a Value, of: &'a Value) -> Vec<&'a Value> {
    let list = of
        .get("anyOf")
        .or_else(|| of.get("oneOf"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no variants in {of}"));
    list.iter()
        .map(|v| match v.get("$ref") {
            Some(r) => def(schema, r),
            None => v,
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A value the parser accepts for a step's key.
fn sample(key: &str) -> &'static str {
    match key {
        "goto" => "\"/\"",
        "press" => "\"Enter\"",
        "screenshot" => "\"shot\"",
        "wait_for" => "{ selector = \"#a\" }",
        "assert" => "{ visible = \"#a\" }",
        "request" => "{ url = \"/\" }",
        _ => "\"#a\"",
    }
}

fn parses(body: &str) -> Result<Flow, String> {
    let text = format!("name = \"x\"\nbase_url = \"http://127.0.0.1:9\"\n{body}");
    Flow::parse(&text, "f.toml").map_err(|e| e.to_string())
}

#[test]
fn the_schema_and_the_parser_know_the_same_step_kinds_and_keys() {
    let schema = doc::json_schema();
    let step = def(&schema, &schema["properties"]["steps"]["items"]["$ref"]);
    // Per kind: the keys the schema allows besides `name`.
    let from_schema: BTreeSet<BTreeSet<String>> = variants(&schema, step)
        .into_iter()
        .map(|v| {
            let mut keys = properties(v);
            assert!(keys.remove("name"), "a step without `name`: {v}");
            assert_eq!(v["additionalProperties"], false, "{v}");
            keys
        })
        .collect();
    let from_parser: BTreeSet<BTreeSet<String>> = STEP_KINDS
        .iter()
        .map(|(kind, extra)| {
            let mut keys = set(extra);
            keys.insert(kind.to_string());
            keys
        })
        .collect();
    assert_eq!(from_schema, from_parser);
    assert_eq!(
        super::ACTIONS,
        STEP_KINDS
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The parser takes every key the schema offers, and refuses one it does not.
    for keys in &from_schema {
        let body: String = keys
            .iter()
            .map(|k| format!("{k} = {}\n", sample(k)))
            .collect();
        parses(&format!("[[steps]]\nname = \"n\"\n{body}"))
            .unwrap_or_else(|e| panic!("schema keys {keys:?}: {e}"));
        let err = parses(&format!("[[steps]]\n{body}bogus = 1\n")).unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    // wait_for: one key of the schema's variants.
    let wait = def(
        &schema,
        &def(&schema, &step["anyOf"][7]["$ref"])["properties"]["wait_for"]["$ref"],
    );
    let wait_keys: BTreeSet<String> = variants(&schema, wait)
        .into_iter()
        .flat_map(|v| {
            v["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(wait_keys, set(WAIT_KEYS));
    for k in &wait_keys {
        let value = if k == "delay" || k == "network_idle" {
            "\"1s\""
        } else {
            "\"#a\""
        };
        parses(&format!("[[steps]]\nwait_for = {{ {k} = {value} }}\n"))
            .unwrap_or_else(|e| panic!("wait_for.{k}: {e}"));
    }

    // assert: text_contains (+ selector) or one of the others.
    let assert_def = def(
        &schema,
        &def(&schema, &step["anyOf"][8]["$ref"])["properties"]["assert"]["$ref"],
    );
    let mut assert_keys = BTreeSet::new();
    for v in variants(&schema, assert_def) {
        if v.get("properties").is_some() && v.get("anyOf").is_none() && v.get("oneOf").is_none() {
            assert_keys.extend(properties(v));
        } else {
            for one in variants(&schema, v) {
                assert_keys.extend(properties(one));
            }
        }
    }
    assert_eq!(assert_keys, set(ASSERT_KEYS));
    for body in [
        "{ text_contains = \"a\", selector = \"#a\" }",
        "{ visible = \"#a\" }",
        "{ hidden = \"#a\" }",
        "{ url_contains = \"a\" }",
        "{ status = 200 }",
    ] {
        parses(&format!("[[steps]]\nassert = {body}\n")).unwrap_or_else(|e| panic!("{body}: {e}"));
    }

    // request, timeouts, profile and the top level: the parser takes each key.
    let request = def(
        &schema,
        &def(&schema, &step["anyOf"][10]["$ref"])["properties"]["request"]["$ref"],
    );
    for k in properties(request) {
        let value = match k.as_str() {
            "method" => "\"post\"",
            "url" => "\"/\"",
            "headers" | "expect_headers" => "{ a = \"b\" }",
            "expect_status" => "200",
            "max_latency" => "\"1s\"",
            _ => "\"a\"",
        };
        let table = if k == "url" {
            format!("{{ url = {value} }}")
        } else {
            format!("{{ url = \"/\", {k} = {value} }}")
        };
        parses(&format!("[[steps]]\nrequest = {table}\n"))
            .unwrap_or_else(|e| panic!("request.{k}: {e}"));
    }
    let timeouts = def(&schema, &schema["properties"]["timeouts"]["$ref"]);
    assert_eq!(properties(timeouts), set(&["step", "flow"]));
    for k in properties(timeouts) {
        parses(&format!(
            "[timeouts]\n{k} = \"20s\"\n[[steps]]\ngoto = \"/\"\n"
        ))
        .unwrap_or_else(|e| panic!("timeouts.{k}: {e}"));
    }
    let profile = def(&schema, &schema["properties"]["profile"]["$ref"]);
    let custom = variants(&schema, profile)
        .into_iter()
        .find(|v| v.get("properties").is_some())
        .unwrap();
    for k in properties(custom) {
        let value = match k.as_str() {
            "name" => "\"n\"",
            "base" => "\"mobile\"",
            "mobile" | "touch" => "true",
            "cpu_slowdown" => "2.0",
            _ => "300",
        };
        parses(&format!(
            "profile = {{ {k} = {value} }}\n[[steps]]\ngoto = \"/\"\n"
        ))
        .unwrap_or_else(|e| panic!("profile.{k}: {e}"));
    }
    assert_eq!(
        properties(&schema),
        set(&[
            "name",
            "base_url",
            "profile",
            "timeouts",
            "iterations",
            "schedule",
            "steps"
        ])
    );
}

/// Refused by the parser for reasons a JSON Schema cannot state (it sees one
/// value at a time as text: no durations, no cron, no cross-key rules).
const BEYOND_A_SCHEMA: &[&str] = &[
    "zero-step-timeout",
    "zero-flow-timeout",
    "endless-step-timeout",
    "flow-shorter-than-step",
    "zero-delay",
    "zero-network-idle",
    "delay-past-step-timeout",
    "zero-max-latency",
    "bad-secret-ref",
    "bad-header-secret",
    "schedule-ages",
    "schedule-u64-seconds",
    "schedule-too-often",
    "cron-never",
    "cron-bad-field",
    // JSON has no NaN or infinity: converted, they arrive as null, which an
    // optional number accepts.
    "profile-nan",
    "profile-inf",
    "profile-cpu-nan",
];

#[test]
fn what_validate_refuses_the_schema_refuses_where_it_can_say_it() {
    let v = validator();
    let mut checked = 0;
    for (label, body, _) in super::tests::CANNOT_WORK {
        let text = format!("name = \"x\"\nbase_url = \"http://a\"\n{body}").replacen(
            "base_url = \"http://a\"\nbase_url",
            "base_url",
            1,
        );
        assert!(parses(body).is_err() || Flow::parse(&text, "f.toml").is_err());
        let errors = schema_errors(&v, &text);
        if BEYOND_A_SCHEMA.contains(label) {
            continue;
        }
        checked += 1;
        assert!(
            !errors.is_empty(),
            "{label}: the schema accepts what validate refuses:\n{text}"
        );
    }
    // The parser's older refusals, from `errors_name_file_step_and_what_is_valid`.
    for text in [
        "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\ngoto = \"/\"\n[[steps]]\n[[steps]]\nclik = \"#b\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nclik = \"#b\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\ngoto = \"/\"\nclick = \"#a\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nwait_for = { delay = \"soon\" }\n",
        "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nassert = { status = 99 }\n",
        "name = \"x\"\nbase_url = \"http://a\"\nprofile = \"fridge\"\n[[steps]]\ngoto = \"/\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nrequest = { url = \"/\", method = \"FETCH\" }\n",
        "name = \"x\"\nbase_url = \"http://a\"\ncolour = 1\n[[steps]]\ngoto = \"/\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nclick = \"#a\"\ntext = \"b\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\niterations = 21\n[[steps]]\ngoto = \"/\"\n",
        "name = \" \"\nbase_url = \"http://a\"\n[[steps]]\ngoto = \"/\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\n[[steps]]\nscreenshot = \"a b\"\n",
        "name = \"x\"\nbase_url = \"http://a\"\nprofile = { width = 100 }\n[[steps]]\ngoto = \"/\"\n",
    ] {
        assert!(Flow::parse(text, "f.toml").is_err(), "{text}");
        assert!(
            !schema_errors(&v, text).is_empty(),
            "the schema accepts:\n{text}"
        );
        checked += 1;
    }
    assert!(checked >= 30, "{checked}");
}

/// The fenced blocks of `lang` in a Markdown text.
fn fenced<'a>(markdown: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    let mut blocks = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let end = body.find("```\n").expect("a closed fence");
        blocks.push(&body[..end]);
        rest = &body[end + 4..];
    }
    blocks
}

#[test]
fn every_example_in_the_reference_is_a_shipped_file() {
    let reference = std::fs::read_to_string(repo().join("docs/flows.md")).unwrap();
    let examples: Vec<(PathBuf, String)> = toml_examples();
    let blocks = fenced(&reference, "toml");
    assert!(
        blocks.len() >= examples.len(),
        "{} toml blocks",
        blocks.len()
    );
    for block in &blocks {
        assert!(
            examples.iter().any(|(_, text)| text == block),
            "docs/flows.md shows a flow that is not a file in deploy/flows/examples:\n{block}"
        );
    }
    for (path, text) in &examples {
        assert!(
            blocks.contains(&text.as_str()),
            "{} is not shown in docs/flows.md",
            path.display()
        );
    }
    // The result shown is a run document the collector's fixtures validate.
    let runs: Vec<Value> = std::fs::read_dir(repo().join("tests/fixtures/run/valid"))
        .unwrap()
        .map(|e| {
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
        })
        .collect();
    let json = fenced(&reference, "json");
    assert!(!json.is_empty());
    for block in json {
        let value: Value = serde_json::from_str(block).expect("the JSON in docs/flows.md parses");
        assert!(
            runs.contains(&value),
            "not a fixture in tests/fixtures/run/valid:\n{block}"
        );
    }
}

fn toml_examples() -> Vec<(PathBuf, String)> {
    shipped_flows()
        .into_iter()
        .filter(|p| p.starts_with(repo().join("deploy/flows/examples")))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}
