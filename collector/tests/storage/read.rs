//! Queries and the dashboard's reads.

use vitalsign_collector::store::attribution::AttributionKind;
use vitalsign_collector::store::query::{Filter, RAW_RANGE_MS, Summary};
use vitalsign_collector::store::{NewPageView, NewRun, Store};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::Beacon;

use crate::*;

contract!(
    the_site_choices_come_from_field_data_with_lcp_or_fcp,
    summaries_are_exact_on_raw_rows_and_hourly_beyond_with_filters,
    series_buckets_hold_their_samples_raw_and_rolled_up,
    a_breakdown_is_the_summary_series_and_devices_of_its_range,
    top_pages_rank_page_views_by_p75_worst_first,
    attribution_ranks_items_by_count_with_shares_and_means,
);

pub async fn the_site_choices_come_from_field_data_with_lcp_or_fcp(store: &Store) {
    assert_eq!(store.readiness(0), Ok(()));
    store.ping().await.unwrap();
    store.maintain().await.unwrap();
    assert!(store.dimensions().await.unwrap().sites.is_empty());
    store
        .append_page_views(vec![page_view("pv-cls", Metric::Cls, 0.1, T0)])
        .await
        .unwrap();
    assert!(
        store.dimensions().await.unwrap().sites.is_empty(),
        "a CLS alone makes no site choice"
    );
    store
        .append_page_views(vec![page_view(
            "pv-lcp",
            Metric::Lcp,
            1800.0,
            T0 + 2 * DAY_MS,
        )])
        .await
        .unwrap();
    assert_eq!(store.dimensions().await.unwrap().sites, ["shop"]);
}

/// The start of the hour holding `T0`: samples are placed from here.
const H0: i64 = T0 / HOUR_MS * HOUR_MS;

/// A page view of `site` on `page_group` from a `device`, reporting each of
/// `reports` (metric, value) with `attribution` (a JSON object) on each.
fn view(
    id: &str,
    site: &str,
    page_group: &str,
    device: &str,
    reports: &[(Metric, f64)],
    attribution: serde_json::Value,
    at_ms: i64,
) -> NewPageView {
    let reports: Vec<serde_json::Value> = reports
        .iter()
        .map(|(m, v)| {
            serde_json::json!({"metric": m.as_str(), "value": v, "rating": m.rate(*v).as_str(),
                               "attribution": attribution})
        })
        .collect();
    let beacon: Beacon = serde_json::from_value(serde_json::json!({
        "schema_version": 1, "site": site, "page_view_id": id,
        "url": format!("https://{site}.example{page_group}"), "navigation_type": "navigate",
        "device": device, "snippet_version": "0.1.0", "reports": reports
    }))
    .unwrap();
    NewPageView {
        beacon,
        page_group: page_group.into(),
        received_ms: at_ms,
    }
}

fn lcp(id: &str, site: &str, device: &str, value: f64, at_ms: i64) -> NewPageView {
    view(
        id,
        site,
        "/",
        device,
        &[(Metric::Lcp, value)],
        serde_json::json!({}),
        at_ms,
    )
}

fn site(name: &str) -> Filter {
    Filter {
        site: Some(name.into()),
        ..Filter::default()
    }
}

/// `approx` is within the histograms' 1 % of `exact`.
fn close(approx: Option<f64>, exact: f64) -> bool {
    approx.is_some_and(|a| (a - exact).abs() <= exact * 0.01)
}

pub async fn summaries_are_exact_on_raw_rows_and_hourly_beyond_with_filters(store: &Store) {
    // Ten LCPs of "shop" in the first hour (1000, 1500, … 5500 ms), half
    // mobile, half desktop, and one of
    // "blog" ten minutes into the third hour. LCP is good up to 2500 ms and
    // poor past 4000 ms: 4 good, 3 needing improvement, 3 poor.
    let mut views: Vec<NewPageView> = (0..10)
        .map(|i| {
            let device = if i % 2 == 0 { "mobile" } else { "desktop" };
            let value = 1000.0 + 500.0 * f64::from(i);
            lcp(
                &format!("pv-{i}"),
                "shop",
                device,
                value,
                H0 + i64::from(i) * 60_000,
            )
        })
        .collect();
    views.push(lcp(
        "pv-blog",
        "blog",
        "mobile",
        900.0,
        H0 + 2 * HOUR_MS + 600_000,
    ));
    store.append_page_views(views).await.unwrap();

    let all = Filter::default();
    let raw = store
        .summary(Metric::Lcp, H0, H0 + HOUR_MS, &all)
        .await
        .unwrap();
    assert_eq!(
        raw,
        Summary {
            count: 10,
            p50: Some(3000.0),
            p75: Some(4500.0),
            p90: Some(5000.0),
            p99: Some(5500.0),
            good: 0.4,
            needs_improvement: 0.3,
            poor: 0.3,
            resolution: "raw",
        }
    );
    // The longest raw range is still raw; one millisecond more reads rollups.
    let edge = store
        .summary(Metric::Lcp, H0, H0 + RAW_RANGE_MS, &all)
        .await
        .unwrap();
    assert_eq!((edge.resolution, edge.count), ("raw", 11));
    let rolled = store
        .summary(Metric::Lcp, H0, H0 + RAW_RANGE_MS + 1, &all)
        .await
        .unwrap();
    assert_eq!((rolled.resolution, rolled.count), ("rollup", 11));
    assert!(close(rolled.p50, 3000.0), "{rolled:?}");
    assert!(close(rolled.p75, 4500.0), "{rolled:?}");
    assert!(close(rolled.p99, 5500.0), "{rolled:?}");
    assert_eq!(
        (rolled.good, rolled.needs_improvement, rolled.poor),
        (5.0 / 11.0, 3.0 / 11.0, 3.0 / 11.0)
    );

    // Rollups count every hour the range overlaps: a range starting 30
    // minutes into the first hour still counts its samples; raw rows do not.
    let from = H0 + 30 * 60_000;
    let late = store
        .summary(Metric::Lcp, from, from + 7 * HOUR_MS, &all)
        .await
        .unwrap();
    assert_eq!((late.resolution, late.count), ("rollup", 11));
    let late_raw = store
        .summary(Metric::Lcp, from, from + HOUR_MS, &all)
        .await
        .unwrap();
    assert_eq!((late_raw.resolution, late_raw.count), ("raw", 0));
    // The hour holding the end counts too; the hour after it does not.
    let before_blog = store
        .summary(Metric::Lcp, H0 - DAY_MS, H0 + 2 * HOUR_MS + 1, &all)
        .await
        .unwrap();
    assert_eq!(before_blog.count, 11);
    let without_blog = store
        .summary(Metric::Lcp, H0 - DAY_MS, H0 + 2 * HOUR_MS, &all)
        .await
        .unwrap();
    assert_eq!(without_blog.count, 10);

    // Filters, on raw rows and on rollups alike.
    for to in [H0 + 3 * HOUR_MS, H0 + DAY_MS] {
        let blog = store
            .summary(Metric::Lcp, H0, to, &site("blog"))
            .await
            .unwrap();
        assert_eq!((blog.count, blog.good), (1, 1.0), "to {to}");
        assert!(close(blog.p75, 900.0), "{blog:?}");
        let shop_desktop = Filter {
            site: Some("shop".into()),
            device: Some("desktop".into()),
            ..Filter::default()
        };
        let desktop = store
            .summary(Metric::Lcp, H0, to, &shop_desktop)
            .await
            .unwrap();
        assert_eq!(desktop.count, 5, "to {to}");
        assert!(close(desktop.p50, 3500.0), "{desktop:?}");
        let nothing = store
            .summary(Metric::Lcp, H0, to, &site("nowhere"))
            .await
            .unwrap();
        assert_eq!((nothing.count, nothing.p75, nothing.good), (0, None, 0.0));
        let synthetic = Filter {
            source: Some("synthetic".into()),
            ..Filter::default()
        };
        assert_eq!(
            store
                .summary(Metric::Lcp, H0, to, &synthetic)
                .await
                .unwrap()
                .count,
            0
        );
        let values = store
            .raw_values(Metric::Lcp, H0, to, &site("blog"))
            .await
            .unwrap();
        assert_eq!(values, [900.0]);
    }
    // Another metric has its own samples (none here).
    let cls = store
        .summary(Metric::Cls, H0, H0 + DAY_MS, &all)
        .await
        .unwrap();
    assert_eq!((cls.count, cls.resolution), (0, "rollup"));
}

pub async fn series_buckets_hold_their_samples_raw_and_rolled_up(store: &Store) {
    let day0 = T0 / DAY_MS * DAY_MS;
    // Day 0: 3 samples in its 5th hour; day 1: 2 in its 1st, 1 in its 23rd.
    let at = [
        day0 + 4 * HOUR_MS + 1_000,
        day0 + 4 * HOUR_MS + 2_000,
        day0 + 4 * HOUR_MS + 3_000,
        day0 + DAY_MS + 10,
        day0 + DAY_MS + 20,
        day0 + DAY_MS + 22 * HOUR_MS,
    ];
    let views = at
        .iter()
        .enumerate()
        .map(|(i, t)| {
            lcp(
                &format!("pv-{i}"),
                "shop",
                "mobile",
                1000.0 * (i as f64 + 1.0),
                *t,
            )
        })
        .collect();
    store.append_page_views(views).await.unwrap();
    let all = Filter::default();
    let counts = |points: &[vitalsign_collector::store::query::SeriesPoint]| {
        points
            .iter()
            .map(|p| (p.start_ms, p.summary.count, p.summary.resolution))
            .collect::<Vec<_>>()
    };

    // Daily buckets over three days: from the rollups.
    let daily = store
        .series(Metric::Lcp, day0, day0 + 3 * DAY_MS, DAY_MS, &all)
        .await
        .unwrap();
    assert_eq!(
        counts(&daily),
        [(day0, 3, "rollup"), (day0 + DAY_MS, 3, "rollup")]
    );
    assert!(close(daily[0].summary.p50, 2000.0), "{daily:?}");
    // From a range that starts inside a day, daily buckets still start at
    // UTC midnight (as the dashboard's breakdown places them): the first
    // holds the range's first hours, from the hourly rows; the whole days
    // come from the daily rows.
    // The same with the filter pinned to one page group, which reads the
    // edge hours series by series, and with one that matches none of them.
    let page_group = |device: Option<&str>| Filter {
        site: Some("shop".into()),
        page_group: Some("/".into()),
        device: device.map(Into::into),
        ..Filter::default()
    };
    for (from, first_day) in [(day0 + 3 * HOUR_MS, 3), (day0 + 5 * HOUR_MS, 0)] {
        let expected = [(day0, first_day, "rollup"), (day0 + DAY_MS, 3, "rollup")];
        for (filter, expected) in [
            (&all, &expected[usize::from(first_day == 0)..]),
            (&page_group(None), &expected[usize::from(first_day == 0)..]),
            (
                &page_group(Some("mobile")),
                &expected[usize::from(first_day == 0)..],
            ),
            (&page_group(Some("desktop")), &[][..]),
        ] {
            let daily = store
                .series(Metric::Lcp, from, day0 + 2 * DAY_MS + 7, DAY_MS, filter)
                .await
                .unwrap();
            assert_eq!(
                counts(&daily),
                expected,
                "from day0 + {} h, {filter:?}",
                (from - day0) / HOUR_MS
            );
        }
    }
    // Six-hour buckets over two days.
    let quarter = store
        .series(Metric::Lcp, day0, day0 + 2 * DAY_MS, 6 * HOUR_MS, &all)
        .await
        .unwrap();
    assert_eq!(
        counts(&quarter),
        [
            (day0, 3, "rollup"),
            (day0 + DAY_MS, 2, "rollup"),
            (day0 + DAY_MS + 18 * HOUR_MS, 1, "rollup")
        ]
    );
    // Hourly buckets from a range that starts mid-hour: the hour holding the
    // start counts whole, in the bucket one width before the start.
    let from = day0 + 4 * HOUR_MS + 1_500;
    let hourly = store
        .series(Metric::Lcp, from, from + 7 * HOUR_MS, HOUR_MS, &all)
        .await
        .unwrap();
    assert_eq!(counts(&hourly), [(from - HOUR_MS, 3, "rollup")]);
    // Raw rows for short ranges: exact and split at the bucket edges.
    let raw = store
        .series(Metric::Lcp, from, from + HOUR_MS, 1_000, &all)
        .await
        .unwrap();
    assert_eq!(counts(&raw), [(from, 1, "raw"), (from + 1_000, 1, "raw")]);
    assert_eq!(raw[1].summary.p50, Some(3000.0));
    // A filter that matches nothing: no points either way.
    for to in [from + HOUR_MS, from + 2 * DAY_MS] {
        assert!(
            store
                .series(Metric::Lcp, from, to, HOUR_MS, &site("blog"))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

pub async fn a_breakdown_is_the_summary_series_and_devices_of_its_range(store: &Store) {
    let mut views = Vec::new();
    for i in 0..12i64 {
        let (name, device) = match i % 3 {
            0 => ("shop", "mobile"),
            1 => ("shop", "desktop"),
            _ => ("blog", "tablet"),
        };
        // Two days before H0 (the previous period) and the day after it.
        for (at, tag) in [
            (H0 - 2 * DAY_MS + i * HOUR_MS, "old"),
            (H0 + i * 1_800_000, "new"),
        ] {
            let value = 800.0 + 300.0 * i as f64 + if tag == "old" { 0.0 } else { 50.0 };
            views.push(lcp(&format!("pv-{tag}-{i}"), name, device, value, at));
        }
    }
    store.append_page_views(views).await.unwrap();
    for (from, to, bucket) in [
        (H0, H0 + 6 * HOUR_MS, HOUR_MS),
        (H0, H0 + 2 * DAY_MS, 3 * HOUR_MS),
        (H0 - H0 % DAY_MS, H0 - H0 % DAY_MS + 2 * DAY_MS, DAY_MS),
    ] {
        let all = Filter::default();
        let b = store
            .breakdown(Metric::Lcp, from, to, bucket, true, &all)
            .await
            .unwrap();
        let summary = store.summary(Metric::Lcp, from, to, &all).await.unwrap();
        assert_eq!(b.current, summary, "{from}..{to}");
        let span = to - from;
        let previous = store
            .summary(Metric::Lcp, from - span, from, &all)
            .await
            .unwrap();
        assert_eq!(b.previous.as_ref(), Some(&previous));
        assert_eq!(
            b.points,
            store
                .series(Metric::Lcp, from, to, bucket, &all)
                .await
                .unwrap()
        );
        let devices: Vec<(String, u64)> = b
            .devices
            .iter()
            .map(|(d, s)| (d.clone(), s.count))
            .collect();
        assert_eq!(
            devices,
            [
                ("desktop".to_string(), 4),
                ("mobile".to_string(), 4),
                ("tablet".to_string(), 4)
            ]
        );
        for (device, s) in &b.devices {
            let only = Filter {
                device: Some(device.clone()),
                ..Filter::default()
            };
            assert_eq!(
                s,
                &store.summary(Metric::Lcp, from, to, &only).await.unwrap()
            );
        }
        assert_eq!(b.distribution.iter().map(|d| d.2).sum::<u64>(), 12);
        // Per site: each the breakdown of that site alone.
        let per_site = store
            .breakdowns(Metric::Lcp, from, to, bucket, true, &all, true)
            .await
            .unwrap();
        let names: Vec<&str> = per_site.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["blog", "shop"]);
        for (name, b) in &per_site {
            let alone = store
                .breakdown(Metric::Lcp, from, to, bucket, true, &site(name))
                .await
                .unwrap();
            assert_eq!(b, &alone, "{name}");
        }
    }
    // Nothing stored for a metric: empty summaries, no points.
    let none = store
        .breakdown(
            Metric::Inp,
            H0,
            H0 + DAY_MS,
            HOUR_MS,
            true,
            &Filter::default(),
        )
        .await
        .unwrap();
    assert_eq!((none.current.count, none.current.resolution), (0, "rollup"));
    assert_eq!(none.previous.map(|p| p.count), Some(0));
    assert!(none.points.is_empty() && none.devices.is_empty());
}

pub async fn top_pages_rank_page_views_by_p75_worst_first(store: &Store) {
    // Four page groups of two sites: /slow, /medium, /fast of shop and / of
    // blog; a synthetic run's LCP (1650 ms at T0) is no page view.
    let mut views = Vec::new();
    for (group, site, base) in [
        ("/slow", "shop", 5000.0),
        ("/medium", "shop", 3000.0),
        ("/fast", "shop", 1000.0),
        ("/", "blog", 2000.0),
    ] {
        for i in 0..4 {
            views.push(view(
                &format!("pv-{site}{group}-{i}"),
                site,
                group,
                "mobile",
                &[(Metric::Lcp, base + 100.0 * f64::from(i))],
                serde_json::json!({}),
                H0 + i64::from(i) * 60_000,
            ));
        }
    }
    store.append_page_views(views).await.unwrap();
    store
        .record_run(NewRun {
            run: fixture_run(),
            page_view_groups: Vec::new(),
            received_ms: T0 + 5_000,
        })
        .await
        .unwrap();
    let all = Filter::default();
    for to in [H0 + HOUR_MS, H0 + 2 * DAY_MS] {
        let ranks = store
            .top_pages(Metric::Lcp, H0, to, &all, 10)
            .await
            .unwrap();
        let order: Vec<(&str, &str, u64)> = ranks
            .iter()
            .map(|r| (r.site.as_str(), r.page_group.as_str(), r.count))
            .collect();
        assert_eq!(
            order,
            [
                ("shop", "/slow", 4),
                ("shop", "/medium", 4),
                ("blog", "/", 4),
                ("shop", "/fast", 4)
            ],
            "to {to}"
        );
        assert!(close(ranks[0].p75, 5200.0), "{ranks:?}");
        assert_eq!((ranks[0].good, ranks[0].poor), (0.0, 1.0));
        assert_eq!((ranks[3].good, ranks[3].poor), (1.0, 0.0));
        let two = store.top_pages(Metric::Lcp, H0, to, &all, 2).await.unwrap();
        assert_eq!(two, ranks[..2]);
        let blog = store
            .top_pages(Metric::Lcp, H0, to, &site("blog"), 10)
            .await
            .unwrap();
        assert_eq!(blog, ranks[2..3]);
    }
}

pub async fn attribution_ranks_items_by_count_with_shares_and_means(store: &Store) {
    // Six LCPs: three of #hero with the hero image, two of h1 (text, no
    // URL), one without a selector; two INPs with their split.
    let lcps = [
        ("#hero", Some("https://shop.example/hero.jpg?w=800"), 3000.0),
        ("#hero", Some("https://shop.example/hero.jpg"), 3200.0),
        ("#hero", Some("https://shop.example/hero.jpg#x"), 3400.0),
        ("h1", None, 1000.0),
        ("h1", None, 1200.0),
    ];
    let mut views = Vec::new();
    for (i, (target, url, value)) in lcps.iter().enumerate() {
        let mut a = serde_json::json!({"target": target});
        if let Some(url) = url {
            a["url"] = serde_json::json!(url);
        }
        views.push(view(
            &format!("pv-{i}"),
            "shop",
            "/",
            "mobile",
            &[(Metric::Lcp, *value)],
            a,
            H0 + i as i64 * 1_000,
        ));
    }
    views.push(view(
        "pv-none",
        "shop",
        "/",
        "desktop",
        &[(Metric::Lcp, 2000.0)],
        serde_json::json!({}),
        H0 + 30_000,
    ));
    // Another site, two hours earlier: only ranges and filters that take it in see it.
    views.push(view(
        "pv-blog",
        "blog",
        "/",
        "mobile",
        &[(Metric::Lcp, 900.0)],
        serde_json::json!({"target": "#blog-hero"}),
        H0 - 2 * HOUR_MS + 5,
    ));
    for (i, split) in [(10.0, 100.0, 40.0), (30.0, 200.0, 60.0)]
        .iter()
        .enumerate()
    {
        views.push(view(
            &format!("pv-inp-{i}"),
            "shop",
            "/",
            "mobile",
            &[(Metric::Inp, split.0 + split.1 + split.2)],
            serde_json::json!({"target": "button.buy", "input_delay": split.0,
                               "processing": split.1, "presentation": split.2}),
            H0 + 40_000,
        ));
    }
    store.append_page_views(views).await.unwrap();
    let all = Filter::default();
    let (from, to) = (H0 + 1, H0 + 2);
    let elements = store
        .top_attribution(Metric::Lcp, AttributionKind::LcpElement, from, to, &all, 10)
        .await
        .unwrap();
    let ranked: Vec<(&str, u64)> = elements
        .iter()
        .map(|r| (r.item.as_str(), r.count))
        .collect();
    assert_eq!(ranked, [("#hero", 3), ("h1", 2), ("", 1)]);
    assert_eq!(elements[0].share, 0.5);
    assert_eq!(elements[0].mean_value, Some(3200.0));
    assert_eq!(elements[1].mean_value, Some(1100.0));
    assert_eq!(elements[0].mean_input_delay, None);
    // URLs lose query and fragment, so the hero image is one item.
    let resources = store
        .top_attribution(Metric::Lcp, AttributionKind::LcpResource, from, to, &all, 1)
        .await
        .unwrap();
    assert_eq!(resources.len(), 1, "{resources:?}");
    assert_eq!(
        (
            resources[0].item.as_str(),
            resources[0].count,
            resources[0].share
        ),
        ("", 3, 0.5),
        "ties go to the item first in byte order"
    );
    let navigation = store
        .top_attribution(
            Metric::Lcp,
            AttributionKind::NavigationType,
            from,
            to,
            &all,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        navigation
            .iter()
            .map(|r| (r.item.as_str(), r.count, r.share))
            .collect::<Vec<_>>(),
        [("navigate", 6, 1.0)]
    );
    let inp = store
        .top_attribution(Metric::Inp, AttributionKind::InpTarget, from, to, &all, 10)
        .await
        .unwrap();
    assert_eq!(inp.len(), 1);
    assert_eq!(
        (
            inp[0].item.as_str(),
            inp[0].count,
            inp[0].mean_value,
            inp[0].mean_input_delay,
            inp[0].mean_processing,
            inp[0].mean_presentation
        ),
        (
            "button.buy",
            2,
            Some(220.0),
            Some(20.0),
            Some(150.0),
            Some(50.0)
        )
    );
    // Filters: a device, a site with nothing, a synthetic-only dimension, a
    // kind the metric does not have.
    let desktop = Filter {
        device: Some("desktop".into()),
        ..Filter::default()
    };
    let d = store
        .top_attribution(
            Metric::Lcp,
            AttributionKind::LcpElement,
            from,
            to,
            &desktop,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        d.iter()
            .map(|r| (r.item.as_str(), r.count))
            .collect::<Vec<_>>(),
        [("", 1)]
    );
    let flow = Filter {
        flow: Some("checkout".into()),
        ..Filter::default()
    };
    for (metric, kind, filter) in [
        (Metric::Lcp, AttributionKind::LcpElement, site("blog")),
        (Metric::Lcp, AttributionKind::LcpElement, flow),
        (Metric::Lcp, AttributionKind::InpTarget, all.clone()),
    ] {
        assert!(
            store
                .top_attribution(metric, kind, from, to, &filter, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
    // A site over several hours (each hour read on its own): the range's
    // first hour holds the blog's view, its last one the shop's.
    for (filter, expected) in [
        (site("shop"), &[("#hero", 3), ("h1", 2), ("", 1)][..]),
        (site("blog"), &[("#blog-hero", 1)][..]),
        (
            all.clone(),
            &[("#hero", 3), ("h1", 2), ("", 1), ("#blog-hero", 1)][..],
        ),
    ] {
        let ranks = store
            .top_attribution(
                Metric::Lcp,
                AttributionKind::LcpElement,
                H0 - 2 * HOUR_MS + 10,
                H0 + 1,
                &filter,
                10,
            )
            .await
            .unwrap();
        let ranked: Vec<(&str, u64)> = ranks.iter().map(|r| (r.item.as_str(), r.count)).collect();
        assert_eq!(ranked, expected, "{filter:?}");
    }
    // Hours that hold none of them.
    assert!(
        store
            .top_attribution(
                Metric::Lcp,
                AttributionKind::LcpElement,
                H0 + HOUR_MS,
                H0 + DAY_MS,
                &all,
                10
            )
            .await
            .unwrap()
            .is_empty()
    );
}
