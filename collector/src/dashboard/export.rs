//! The same query a view shows, as CSV (one table) or JSON (everything the
//! page was drawn from): `format=csv` / `format=json` on any view's URL.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Rows of a view's main table.
pub struct Table {
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

pub fn csv(name: &str, table: &Table) -> Response {
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for cell in cells {
            if !first {
                out.push(',');
            }
            first = false;
            // Quote what needs it; a leading = + - @ is quoted too, so a
            // spreadsheet never runs a selector or URL as a formula.
            if cell.contains([',', '"', '\n', '\r']) || cell.starts_with(['=', '+', '-', '@']) {
                out.push('"');
                out.push_str(&cell.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(cell);
            }
        }
        out.push_str("\r\n");
    };
    line(&mut out, &mut table.header.iter().copied());
    for row in &table.rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    let mut r = out.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"vitalsign-{name}.csv\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    r
}

pub fn json(value: serde_json::Value) -> Response {
    let mut r = axum::Json(value).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    r
}

pub fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    })
}
