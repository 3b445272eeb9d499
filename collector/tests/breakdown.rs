//! `query::breakdown` (one read for a dashboard view) gives the same numbers
//! as the separate queries it replaces: `summary` of the range and of the
//! period before it, `series`, and `summary` per device, from raw samples
//! (short ranges) and from the hourly rollups (long ones).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vitalsign_collector::histogram::Accumulator;
use vitalsign_collector::store::query::Filter;
use vitalsign_collector::store::{NewPageView, Store};
use vitalsign_core::metric::{Metric, Rating};
use vitalsign_core::wire::beacon::{Beacon, DeviceClass, NavigationType, Report};

const HOUR: i64 = 3_600_000;

fn beacon(i: usize, device: DeviceClass, lcp: f64) -> Beacon {
    Beacon {
        schema_version: 1,
        site: "shop".into(),
        page_view_id: format!("pv-{i}"),
        url: "https://shop.example/checkout".into(),
        navigation_type: NavigationType::Navigate,
        device: Some(device),
        effective_type: None,
        snippet_version: "0.1.0".into(),
        reports: vec![Report {
            metric: Metric::Lcp,
            value: lcp,
            rating: Rating::Good,
            attribution: Default::default(),
        }],
    }
}

#[tokio::test]
async fn one_read_gives_what_the_separate_queries_give() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("b.db")).unwrap();
    let now = 1_795_500_000_000i64 / HOUR * HOUR + 17 * 60_000;
    let mut rng = StdRng::seed_from_u64(7);
    // Two days of page views, three device classes, slower in the last 4 hours.
    for i in 0..3000 {
        let ts = now - rng.random_range(0..48 * HOUR);
        let device = [
            DeviceClass::Mobile,
            DeviceClass::Desktop,
            DeviceClass::Tablet,
        ][i % 3];
        let slow = if ts > now - 4 * HOUR { 1.6 } else { 1.0 };
        let lcp = rng.random_range(400.0..3000.0) * slow;
        store
            .append_page_views(vec![NewPageView {
                beacon: beacon(i, device, lcp),
                page_group: "/checkout".into(),
                received_ms: ts,
            }])
            .await
            .unwrap();
    }
    // A second site, for the read of every site at once.
    for i in 0..400 {
        let mut b = beacon(
            10_000 + i,
            DeviceClass::Desktop,
            rng.random_range(300.0..2000.0),
        );
        b.site = "blog".into();
        let ts = now - rng.random_range(0..48 * HOUR);
        store
            .append_page_views(vec![NewPageView {
                beacon: b,
                page_group: "/post/:id".into(),
                received_ms: ts,
            }])
            .await
            .unwrap();
    }
    for (span, bucket) in [(3 * HOUR, 10 * 60_000), (30 * HOUR, 24 * HOUR)] {
        let (from, to) = (now - span, now);
        let rum = Filter {
            source: Some("rum".into()),
            ..Filter::default()
        };
        let one = async |site: &str| {
            let f = Filter {
                site: Some(site.into()),
                ..rum.clone()
            };
            store
                .breakdown(Metric::Lcp, from, to, bucket, true, &f)
                .await
                .unwrap()
        };
        let (all, shop, blog) = (
            store
                .breakdowns(Metric::Lcp, from, to, bucket, true, &rum, true)
                .await
                .unwrap(),
            one("shop").await,
            one("blog").await,
        );
        assert_eq!(
            all,
            vec![("blog".to_string(), blog), ("shop".to_string(), shop)],
            "every site at once over {span} ms"
        );
    }

    let filter = Filter {
        site: Some("shop".into()),
        source: Some("rum".into()),
        ..Filter::default()
    };
    // (range, bucket): raw (≤ 6 h) and rollups, with `from` off the hour.
    for (span, bucket) in [
        (3 * HOUR, 10 * 60_000),
        (20 * HOUR, HOUR),
        (24 * HOUR, 2 * HOUR),
    ] {
        let (from, to) = (now - span, now);
        let f = &filter;
        let lcp = Metric::Lcp;
        let b = store
            .breakdown(lcp, from, to, bucket, true, f)
            .await
            .unwrap();
        let summary = store.summary(lcp, from, to, f).await.unwrap();
        let previous = store.summary(lcp, from - span, from, f).await.unwrap();
        let series = store.series(lcp, from, to, bucket, f).await.unwrap();
        let mut devices = Vec::new();
        for d in ["desktop", "mobile", "tablet"] {
            let mut fd = f.clone();
            fd.device = Some(d.into());
            let by_device = store.summary(lcp, from, to, &fd).await.unwrap();
            devices.push((d.to_string(), by_device));
        }
        assert!(summary.count > 100, "{span}: {summary:?}");
        assert_eq!(b.current, summary, "summary over {span} ms");
        assert_eq!(b.previous, Some(previous), "previous period of {span} ms");
        assert_eq!(b.points, series, "series over {span} ms");
        assert_eq!(b.devices, devices, "devices over {span} ms");
        let in_histogram: u64 = b.distribution.iter().map(|d| d.2).sum();
        assert_eq!(in_histogram, summary.count);
    }

    // Long ranges read whole UTC days from the daily rollups: the same
    // numbers as the hourly rows they were summed from, merged here by hand.
    let db = dir.path().join("b.db");
    let (from, to) = (now - 40 * HOUR, now);
    let f = filter.clone();
    let b = store
        .breakdown(Metric::Lcp, from, to, 24 * HOUR, true, &f)
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let daily: i64 = conn
        .query_row("SELECT count(*) FROM rollups_daily", [], |r| r.get(0))
        .unwrap();
    assert!(daily > 0, "the writer keeps daily rollups");
    let mut stmt = conn
        .prepare(
            "SELECT hour, histogram FROM rollups WHERE metric = 'LCP' AND site = 'shop'
             AND source = 'rum' AND hour >= ?1 AND hour < ?2",
        )
        .unwrap();
    let mut total = Accumulator::default();
    let mut days: std::collections::BTreeMap<i64, Accumulator> = Default::default();
    let hours = stmt
        .query_map(
            [from.div_euclid(HOUR), (to + HOUR - 1).div_euclid(HOUR)],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )
        .unwrap();
    for row in hours {
        let (hour, blob) = row.unwrap();
        total.add_encoded(&blob);
        days.entry(hour.div_euclid(24) * 24 * HOUR)
            .or_default()
            .add_encoded(&blob);
    }
    assert_eq!(b.current.count, total.count());
    assert_eq!(b.current.p75, total.quantile(0.75));
    assert_eq!(b.current.p50, total.quantile(0.5));
    let by_day: Vec<(i64, u64, Option<f64>)> = days
        .iter()
        .map(|(start, a)| (*start, a.count(), a.quantile(0.75)))
        .collect();
    let points: Vec<(i64, u64, Option<f64>)> = b
        .points
        .iter()
        .map(|p| (p.start_ms, p.summary.count, p.summary.p75))
        .collect();
    assert_eq!(points, by_day, "daily buckets start at UTC midnight");
}
