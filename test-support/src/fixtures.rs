//! Payloads the end-to-end tests send: a RUM beacon and a probe run built
//! from the fixtures under `tests/fixtures/`.

use serde_json::{Value, json};

use crate::workspace_root;

/// A beacon of site `demo` for page view `id` with all five vitals, good.
pub fn demo_beacon(id: &str) -> String {
    json!({"schema_version": 1, "site": "demo", "page_view_id": id, "url": "https://shop.example/p/1",
           "navigation_type": "navigate", "snippet_version": "0.1.0",
           "reports": [{"metric": "LCP", "value": 1200, "rating": "good"},
                       {"metric": "FCP", "value": 800, "rating": "good"},
                       {"metric": "TTFB", "value": 90, "rating": "good"},
                       {"metric": "CLS", "value": 0.01, "rating": "good"},
                       {"metric": "INP", "value": 80, "rating": "good"}]})
    .to_string()
}

/// `tests/fixtures/run/valid/checkout-pass.json` as run `id`, started at
/// `started_ms` and lasting 4.2 s.
pub fn checkout_run(id: &str, started_ms: u64) -> Value {
    let path = workspace_root().join("tests/fixtures/run/valid/checkout-pass.json");
    let mut run: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
    )
    .unwrap();
    run["run_id"] = json!(id);
    run["started_at_ms"] = json!(started_ms);
    run["finished_at_ms"] = json!(started_ms + 4200);
    run
}

/// Now, in Unix milliseconds (for runs the collector takes as recent).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
