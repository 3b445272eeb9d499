//! The dashboard's stylesheet and script, embedded in the binary (no CDN, no
//! build step) and compressed once at start. URLs carry a content hash, so
//! browsers may cache them for a year and a new binary is fetched at once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::ops::Compressed;

const FILES: [(&str, &str, &[u8]); 2] = [
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/style.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/live.js"),
    ),
];

fn all() -> &'static [(&'static str, &'static str, Compressed)] {
    static ASSETS: OnceLock<Vec<(&str, &str, Compressed)>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        FILES
            .iter()
            .map(|(name, content_type, bytes)| (*name, *content_type, Compressed::new(bytes)))
            .collect()
    })
}

/// `/assets/style.css?v=<hash>`.
pub fn href(name: &str) -> String {
    let (_, _, asset) = all()
        .iter()
        .find(|(n, _, _)| *n == name)
        .expect("an embedded asset");
    format!("/assets/{name}?v={}", &asset.etag.trim_matches('"')[..12])
}

pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match all().iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, asset)) => asset.respond(
            &headers,
            content_type,
            "public, max-age=31536000, immutable",
        ),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
