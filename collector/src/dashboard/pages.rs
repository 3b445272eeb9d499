//! `/pages`: the page groups of a site (or of all sites) ranked by one
//! metric's p75, with samples and poor share, sortable, paginated on the
//! server; the other vitals are read only for the page shown.

use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde::Serialize;
use serde_json::json;
use vitalsign_core::metric::Metric;

use super::export::{self, Table, num};
use super::layout::{self, FilterSet, Nav, percent, rated};
use super::overview::site_list;
use super::params::{Format, ParamError};
use super::{Viewer, error_page, html_response, store_failed};
use crate::http::AppState;
use crate::store::query::PageRank;

pub const PAGE_SIZE: usize = 50;
/// The metrics shown beside the ranking metric for each row.
const COLUMNS: [Metric; 3] = [Metric::Lcp, Metric::Inp, Metric::Cls];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    P75,
    Samples,
    Poor,
    Name,
}

impl SortKey {
    fn parse(s: Option<&str>) -> Result<SortKey, ParamError> {
        match s {
            None | Some("p75") => Ok(SortKey::P75),
            Some("samples") => Ok(SortKey::Samples),
            Some("poor") => Ok(SortKey::Poor),
            Some("page_group") => Ok(SortKey::Name),
            Some(other) => Err(ParamError(format!(
                "parameter `sort`: {other:?} is not p75, samples, poor or page_group"
            ))),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            SortKey::P75 => "p75",
            SortKey::Samples => "samples",
            SortKey::Poor => "poor",
            SortKey::Name => "page_group",
        }
    }
}

#[derive(Serialize)]
struct PageRow {
    #[serde(flatten)]
    rank: PageRank,
    /// p75 of the other vitals for this page group.
    others: Vec<(Metric, Option<f64>)>,
}

#[derive(Serialize)]
struct PagesData {
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    total: usize,
    page: usize,
    rows: Vec<PageRow>,
}

pub async fn view(State(state): State<AppState>, v: Viewer) -> Response {
    let p = v.params.clone();
    let parsed = (|| {
        let sort = SortKey::parse(p.get("sort"))?;
        let ascending = match p.get("dir") {
            None => sort == SortKey::Name,
            Some("asc") => true,
            Some("desc") => false,
            Some(other) => {
                return Err(ParamError(format!(
                    "parameter `dir`: {other:?} is not asc or desc"
                )));
            }
        };
        Ok((sort, ascending, p.page()?))
    })();
    let (sort, ascending, page) = match parsed {
        Ok(x) => x,
        Err(e) => {
            return error_page(
                axum::http::StatusCode::BAD_REQUEST,
                v.session.is_some(),
                v.now_ms,
                &e.0,
            );
        }
    };
    let all_rows = v.params.format != Format::Html;
    let read = async {
        let store = &state.store;
        let dims = store.dimensions().await?;
        let mut filter = p.field_filter();
        filter.page_group = None;
        let mut ranks = store
            .top_pages(p.metric, p.from_ms, p.to_ms, &filter, usize::MAX)
            .await?;
        if let Some(g) = &p.page_group {
            ranks.retain(|r| r.page_group.contains(g.as_str()));
        }
        let key = |r: &PageRank| match sort {
            SortKey::P75 => r.p75.unwrap_or(0.0),
            SortKey::Samples => r.count as f64,
            SortKey::Poor => r.poor,
            SortKey::Name => 0.0,
        };
        ranks.sort_by(|a, b| {
            let order = if sort == SortKey::Name {
                (a.site.as_str(), a.page_group.as_str())
                    .cmp(&(b.site.as_str(), b.page_group.as_str()))
            } else {
                key(a)
                    .total_cmp(&key(b))
                    .then_with(|| b.page_group.cmp(&a.page_group))
            };
            if ascending { order } else { order.reverse() }
        });
        let total = ranks.len();
        let shown: Vec<PageRank> = if all_rows {
            ranks
        } else {
            ranks
                .into_iter()
                .skip((page - 1) * PAGE_SIZE)
                .take(PAGE_SIZE)
                .collect()
        };
        let mut rows = Vec::with_capacity(shown.len());
        for rank in shown {
            let mut f = filter.clone();
            f.site = Some(rank.site.clone());
            f.page_group = Some(rank.page_group.clone());
            let mut others = Vec::new();
            for m in COLUMNS.iter().filter(|m| **m != p.metric) {
                others.push((*m, store.summary(*m, p.from_ms, p.to_ms, &f).await?.p75));
            }
            rows.push(PageRow { rank, others });
        }
        Ok((
            dims,
            PagesData {
                metric: p.metric,
                from_ms: p.from_ms,
                to_ms: p.to_ms,
                total,
                page,
                rows,
            },
        ))
    }
    .await;
    let (dims, data) = match read {
        Ok(x) => x,
        Err(e) => return store_failed(e, v.now_ms),
    };
    let p = &v.params;
    match p.format {
        Format::Json => return export::json(json!(data)),
        Format::Csv => {
            // `metric` says whose p75, samples and shares the row has; the
            // other vitals' columns are their p75 (`INP_p75`).
            let mut header = vec![
                "site",
                "page_group",
                "metric",
                "samples",
                "p75",
                "good",
                "poor",
            ];
            header.extend(
                COLUMNS
                    .iter()
                    .filter(|m| **m != data.metric)
                    .map(|m| match m {
                        Metric::Lcp => "LCP_p75",
                        Metric::Inp => "INP_p75",
                        _ => "CLS_p75",
                    }),
            );
            let rows = data
                .rows
                .iter()
                .map(|r| {
                    let mut row = vec![
                        r.rank.site.clone(),
                        r.rank.page_group.clone(),
                        data.metric.as_str().to_string(),
                        r.rank.count.to_string(),
                        num(r.rank.p75),
                        num(Some(r.rank.good)),
                        num(Some(r.rank.poor)),
                    ];
                    row.extend(r.others.iter().map(|(_, v)| num(*v)));
                    row
                })
                .collect();
            return export::csv("pages", &Table { header, rows });
        }
        Format::Html => {}
    }
    let sites = site_list(&state, &dims);
    let set = FilterSet {
        sites: &sites,
        metric: true,
        page_group: true,
        device: true,
        keep: &["sort", "dir"],
        ..FilterSet::default()
    };
    let mut chrome = v.chrome("Pages", Nav::Pages);
    chrome.exports = Some((
        p.href("/pages", &[("format", "csv"), ("page", "")]),
        p.href("/pages", &[("format", "json"), ("page", "")]),
    ));
    let pages = data.total.div_ceil(PAGE_SIZE).max(1);
    let sort_link = |key: SortKey, label: &str| {
        let (dir, mark, aria) = if sort == key {
            if ascending {
                ("desc", " ▲", "ascending")
            } else {
                ("asc", " ▼", "descending")
            }
        } else {
            (
                if key == SortKey::Name { "asc" } else { "desc" },
                "",
                "none",
            )
        };
        html! {
            th scope="col" aria-sort=(aria) {
                a href=(p.href("/pages", &[("sort", key.as_str()), ("dir", dir), ("page", "")])) { (label) (mark) }
            }
        }
    };
    let metric = data.metric;
    let body = html! {
        p { (data.total) " page groups with " (metric.as_str()) " samples in this range." }
        @if data.total == 0 {
            (layout::empty("No field data here yet.", "Page groups appear when the snippet sends beacons from the site's pages."))
        } @else {
            table.pages {
                caption { "Page groups by " (metric.as_str()) " — page " (data.page) " of " (pages) }
                thead { tr {
                    (sort_link(SortKey::Name, "Page group"))
                    th scope="col" { "Site" }
                    (sort_link(SortKey::P75, &format!("{} p75", metric.as_str())))
                    (sort_link(SortKey::Samples, "Samples"))
                    (sort_link(SortKey::Poor, "Poor share"))
                    @for m in COLUMNS.iter().filter(|m| **m != metric) { th scope="col" { (m.as_str()) " p75" } }
                } }
                tbody {
                    @for r in &data.rows {
                        tr {
                            th scope="row" {
                                a href=(p.href_only("/series", &["range", "from", "to", "device"], &[("metric", metric.as_str()), ("site", &r.rank.site), ("page_group", &r.rank.page_group)])) { (r.rank.page_group) }
                            }
                            td { (r.rank.site) }
                            td { (rated(metric, r.rank.p75)) }
                            td.num { (r.rank.count) }
                            td.num { (percent(r.rank.poor)) }
                            @for (m, v) in &r.others { td { (rated(*m, *v)) } }
                        }
                    }
                }
            }
            nav aria-label="Pagination" .pager {
                @if data.page > 1 { a rel="prev" href=(p.href("/pages", &[("page", &(data.page - 1).to_string())])) { "← Previous" } }
                " Page " (data.page) " of " (pages) " "
                @if data.page < pages { a rel="next" href=(p.href("/pages", &[("page", &(data.page + 1).to_string())])) { "Next →" } }
            }
        }
    };
    html_response(layout::page(
        &chrome,
        Some(layout::filters("/pages", p, &set)),
        body,
    ))
}
