//! `vitalsign-agent demo-visitor` (hidden): a pretend visitor for `./demo.sh`,
//! so the demo has field (RUM) numbers beside the agent's lab numbers.
//!
//! It browses the demo site the collector serves at `/demo/` the way a person
//! would: opens the home page, scrolls, follows a link or searches, clicks, goes
//! back home and finally leaves. The pages embed the real snippet as served at
//! `/v1/snippet.js`; nothing is injected (that would be the probes' lab mode,
//! which never sends). The snippet flushes a beacon on `pagehide` and when the
//! page turns hidden, so every navigation away (the last one to `about:blank`)
//! sends the page view's numbers, with `navigator.sendBeacon` as in any browser.
//!
//! Visits alternate between a desktop and a mobile device (viewport, touch, CPU
//! and network of the probes' profiles, plus a matching user agent), so the
//! device split has both. Each visit gets a fresh browser context: a new
//! visitor, no cache. The browser is the probes' [`LiveBrowser`], launched the
//! same way as for flows; SIGTERM or Ctrl-C closes it, never leaving an orphan.
//!
//! A demo tool, not a measurement: it reads nothing back from the page.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetUserAgentOverrideParams, UserAgentBrandVersion, UserAgentMetadata,
};
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchMouseEventParams, DispatchMouseEventType,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use rand::Rng;
use tracing::{info, warn};
use vitalsign_probes::RunnerConfig;
use vitalsign_probes::profile::Profile;
use vitalsign_probes::runner::LiveBrowser;

/// A visit that takes longer than this is abandoned and its browser replaced.
const VISIT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a page may take to load.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct VisitorOptions {
    /// The demo site, ending in `/`: `http://127.0.0.1:8080/demo/`.
    pub base: String,
    /// A visit starts this often (or as soon as the previous one ended, if it took longer).
    pub every: Duration,
    pub browser: RunnerConfig,
}

impl VisitorOptions {
    pub fn new(base: &str, every: Duration) -> anyhow::Result<VisitorOptions> {
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        if !(base.starts_with("http://") || base.starts_with("https://"))
            || base.len() == scheme_end
        {
            bail!(
                "--base {base:?} is not an http(s) URL; use for example http://127.0.0.1:8080/demo/"
            );
        }
        if base.contains(['?', '#']) {
            bail!("--base {base:?} must not have a query or fragment");
        }
        if every.is_zero() {
            bail!("--every must be longer than 0 s");
        }
        // Pages are addressed relative to the base, so it must name a directory.
        let base = if base.ends_with('/') {
            base.to_string()
        } else {
            format!("{base}/")
        };
        Ok(VisitorOptions {
            base,
            every,
            browser: RunnerConfig::default(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Desktop,
    Mobile,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
        }
    }

    fn profile(self) -> Profile {
        match self {
            Device::Desktop => Profile::desktop(),
            Device::Mobile => Profile::mobile(),
        }
    }

    /// A user agent that matches the viewport, in Chrome's reduced format, with
    /// client hints, so `navigator.userAgentData.mobile` agrees with it.
    fn user_agent(self, browser_version: &str) -> SetUserAgentOverrideParams {
        let major = browser_version
            .split('/')
            .nth(1)
            .and_then(|v| v.split('.').next())
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or("140");
        let (os, suffix, platform, nav_platform, mobile) = match self {
            Device::Desktop => ("X11; Linux x86_64", "", "Linux", "Linux x86_64", false),
            Device::Mobile => (
                "Linux; Android 10; K",
                "Mobile ",
                "Android",
                "Linux armv81",
                true,
            ),
        };
        let brands = vec![
            UserAgentBrandVersion::new("Chromium", major),
            UserAgentBrandVersion::new("Not_A Brand", "24"),
        ];
        SetUserAgentOverrideParams {
            user_agent: format!(
                "Mozilla/5.0 ({os}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 {suffix}Safari/537.36"
            ),
            accept_language: Some("en-US".into()),
            platform: Some(nav_platform.into()),
            user_agent_metadata: Some(UserAgentMetadata {
                brands: Some(brands.clone()),
                full_version_list: Some(brands),
                platform: platform.into(),
                platform_version: String::new(),
                architecture: String::new(),
                model: String::new(),
                mobile,
                bitness: None,
                wow64: None,
                form_factors: None,
            }),
        }
    }
}

/// What a visitor does on the site after the home page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journey {
    /// Follow the product link, add to cart once or more, back home.
    Product,
    /// Type a word into the search box, press Enter, back home.
    Search,
}

impl Journey {
    pub fn as_str(self) -> &'static str {
        match self {
            Journey::Product => "product",
            Journey::Search => "search",
        }
    }
}

/// Visit `n` (from 1): devices alternate, journeys change every second visit,
/// so the first four visits cover every device × journey.
pub fn plan(n: u64) -> (Device, Journey) {
    let device = if n.is_multiple_of(2) {
        Device::Mobile
    } else {
        Device::Desktop
    };
    let journey = if (n / 2).is_multiple_of(2) {
        Journey::Product
    } else {
        Journey::Search
    };
    (device, journey)
}

/// What one visit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitReport {
    /// Documents loaded (each is a page view for the snippet, and a beacon
    /// when it is left).
    pub pages: u32,
    /// Pages on which the snippet ran in RUM mode (its tag has `data-site`).
    /// Whether a beacon arrived is the collector's to say: beacons sent while
    /// a page unloads do not show in the tab's CDP network events.
    pub pages_with_snippet: u32,
}

/// Visit the site every `options.every` until `shutdown` completes, then
/// close the browser. Fails only when the browser cannot be launched at all.
pub async fn run(
    options: VisitorOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let mut browser = Some(
        LiveBrowser::launch(&options.browser)
            .await
            .context("while launching the demo visitor's browser")?,
    );
    info!(base = %options.base, every = ?options.every, "demo visitor started");
    let mut ticker = tokio::time::interval(options.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut number = 0u64;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        number += 1;
        let live = match browser.take() {
            Some(live) if live.alive() => live,
            dead => {
                if let Some(dead) = dead {
                    warn!("the visitor's browser is gone; relaunching");
                    dead.kill().await;
                }
                match LiveBrowser::launch(&options.browser).await {
                    Ok(live) => live,
                    Err(e) => {
                        warn!(error = %e, "could not launch the visitor's browser; trying again at the next visit");
                        continue;
                    }
                }
            }
        };
        let (device, journey) = plan(number);
        let started = Instant::now();
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(VISIT_TIMEOUT, visit(&live, &options.base, device, journey)) => outcome,
            _ = &mut shutdown => {
                browser = Some(live);
                break;
            }
        };
        let took_ms = started.elapsed().as_millis() as u64;
        let ok = match outcome {
            Ok(Ok(report)) => {
                log_visit(number, device, journey, took_ms, &report);
                true
            }
            Ok(Err(e)) => {
                warn!(visit = number, device = device.as_str(), journey = journey.as_str(), error = %format!("{e:#}"), "visit failed");
                false
            }
            Err(_) => {
                warn!(
                    visit = number,
                    device = device.as_str(),
                    journey = journey.as_str(),
                    "visit did not finish within {VISIT_TIMEOUT:?}"
                );
                false
            }
        };
        if ok {
            browser = Some(live);
        } else {
            // A page that hangs may be a browser that hangs: start the next visit afresh.
            live.kill().await;
        }
    }
    info!("demo visitor stopping; closing its browser");
    if let Some(live) = browser {
        live.close().await;
    }
    Ok(())
}

fn log_visit(number: u64, device: Device, journey: Journey, took_ms: u64, report: &VisitReport) {
    let (device, journey) = (device.as_str(), journey.as_str());
    let VisitReport {
        pages,
        pages_with_snippet,
    } = *report;
    if pages_with_snippet < pages {
        warn!(
            visit = number,
            device,
            journey,
            pages,
            pages_with_snippet,
            "the snippet did not run on every page: does each embed /v1/snippet.js with data-site?"
        );
    } else {
        info!(
            visit = number,
            device, journey, pages, took_ms, "visit finished"
        );
    }
}

/// One visitor: a fresh browser context, one tab, one journey through the
/// site, then away. The context is disposed whatever happened.
pub async fn visit(
    live: &LiveBrowser,
    base: &str,
    device: Device,
    journey: Journey,
) -> anyhow::Result<VisitReport> {
    let browser = live.browser();
    let ctx = browser
        .create_browser_context(CreateBrowserContextParams::default())
        .await
        .context("Target.createBrowserContext")?;
    let target = CreateTargetParams::builder()
        .url("about:blank")
        .browser_context_id(ctx.clone())
        .build()
        .map_err(anyhow::Error::msg)?;
    let result = match browser.new_page(target).await {
        Ok(page) => {
            let result = walk(&page, live.version(), base, device, journey).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), page.close()).await;
            result
        }
        Err(e) => Err(anyhow::Error::new(e).context("Target.createTarget")),
    };
    let disposed =
        tokio::time::timeout(Duration::from_secs(5), browser.dispose_browser_context(ctx)).await;
    match (result, disposed) {
        (Ok(report), Ok(Ok(()))) => Ok(report),
        (Ok(_), _) => bail!("the browser did not dispose the visit's context"),
        (Err(e), _) => Err(e),
    }
}

async fn walk(
    page: &Page,
    browser_version: &str,
    base: &str,
    device: Device,
    journey: Journey,
) -> anyhow::Result<VisitReport> {
    let profile = device.profile();
    profile.apply(page).await.map_err(anyhow::Error::msg)?;
    page.execute(device.user_agent(browser_version))
        .await
        .context("Emulation.setUserAgentOverride")?;
    let mut report = VisitReport::default();
    let home = base.to_string();

    page.goto(home.as_str())
        .await
        .with_context(|| format!("opening {home}"))?;
    report.arrived(arrived(page, &home).await?);
    think(400..1200).await;
    scroll(page, &profile, 500.0).await?;
    think(300..900).await;
    scroll(page, &profile, -500.0).await?;
    think(200..600).await;

    match journey {
        Journey::Product => {
            click(page, "#product-link").await?;
            report.arrived(arrived(page, &format!("{base}product.html")).await?);
            think(500..1500).await;
            let times = rand::rng().random_range(1..=3);
            for _ in 0..times {
                click(page, "#add-to-cart").await?;
                think(300..900).await;
            }
            scroll(page, &profile, 300.0).await?;
            think(300..800).await;
        }
        Journey::Search => {
            let word =
                ["lantern", "tent", "rope", "stove", "boots"][rand::rng().random_range(0..5)];
            click(page, "#q").await?;
            let field = page.find_element("#q").await.context("the search box #q")?;
            field
                .type_str(word)
                .await
                .context("typing into the search box")?;
            think(200..600).await;
            vitalsign_probes::input::press(page, "Enter")
                .await
                .context("pressing Enter in the search box")?;
            report.arrived(arrived(page, &format!("{base}search.html")).await?);
            think(500..1500).await;
            scroll(page, &profile, 300.0).await?;
            think(300..800).await;
        }
    }
    click(page, "a.brand").await?;
    report.arrived(arrived(page, &home).await?);
    think(400..1200).await;

    // Leaving the site: the last page's pagehide sends its beacon.
    page.goto("about:blank")
        .await
        .context("leaving the site for about:blank")?;
    Ok(report)
}

impl VisitReport {
    fn arrived(&mut self, snippet_ran: bool) {
        self.pages += 1;
        self.pages_with_snippet += u32::from(snippet_ran);
    }
}

/// A person's pause between two actions.
async fn think(millis: std::ops::Range<u64>) {
    let pause = Duration::from_millis(rand::rng().random_range(millis));
    tokio::time::sleep(pause).await;
}

/// A real click (mouse press and release at the element), as a person's.
async fn click(page: &Page, selector: &str) -> anyhow::Result<()> {
    let element = page
        .find_element(selector)
        .await
        .with_context(|| format!("no element matches {selector}"))?;
    element
        .scroll_into_view()
        .await
        .with_context(|| format!("scrolling to {selector}"))?;
    element
        .click()
        .await
        .with_context(|| format!("clicking {selector}"))?;
    Ok(())
}

/// Mouse-wheel scroll in the middle of the viewport.
async fn scroll(page: &Page, profile: &Profile, delta_y: f64) -> anyhow::Result<()> {
    let wheel = DispatchMouseEventParams::builder()
        .r#type(DispatchMouseEventType::MouseWheel)
        .x(f64::from(profile.width) / 2.0)
        .y(f64::from(profile.height) / 2.0)
        .delta_x(0.0)
        .delta_y(delta_y)
        .build()
        .map_err(anyhow::Error::msg)?;
    page.execute(wheel)
        .await
        .context("Input.dispatchMouseEvent")?;
    Ok(())
}

/// Wait until the tab shows `url` (origin and path) and has finished loading,
/// so the snippet (an async script, which the load event waits for) has run
/// before the visitor moves on. Returns whether it runs in RUM mode on the page.
async fn arrived(page: &Page, url: &str) -> anyhow::Result<bool> {
    let check = format!(
        "location.origin + location.pathname === {} && document.readyState === 'complete'",
        serde_json::to_string(url).expect("strings serialise")
    );
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        // Errors are expected while the old document is swapped for the new one.
        if let Ok(result) = page.evaluate(check.as_str()).await
            && result.into_value::<bool>().unwrap_or(false)
        {
            break;
        }
        if Instant::now() >= deadline {
            let at = page.url().await.ok().flatten().unwrap_or_default();
            bail!("{url} did not load within {PAGE_TIMEOUT:?} (the tab is at {at})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snippet = page
        .evaluate(SNIPPET_IN_RUM_MODE)
        .await
        .context("looking for the snippet")?;
    Ok(snippet.into_value::<bool>().unwrap_or(false))
}

/// The snippet ran (it defines `__vitalsign`) from a tag that names the site,
/// which is what makes it send beacons rather than measure silently.
const SNIPPET_IN_RUM_MODE: &str = "!!(window.__vitalsign && document.querySelector('script[data-site][src*=\"/v1/snippet.js\"]'))";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_four_visits_cover_every_device_and_journey() {
        let plans: Vec<_> = (1..=4).map(plan).collect();
        for device in [Device::Desktop, Device::Mobile] {
            for journey in [Journey::Product, Journey::Search] {
                assert!(plans.contains(&(device, journey)), "{device:?} {journey:?}");
            }
        }
        assert_eq!(plan(1).0, Device::Desktop);
        assert_eq!(
            plan(2).0,
            Device::Mobile,
            "the second visit is already mobile"
        );
    }

    #[test]
    fn base_must_be_a_directory_url() {
        let every = Duration::from_secs(5);
        let ok = |b: &str| VisitorOptions::new(b, every).unwrap().base;
        assert_eq!(
            ok("http://127.0.0.1:8080/demo/"),
            "http://127.0.0.1:8080/demo/"
        );
        assert_eq!(
            ok("http://127.0.0.1:8080/demo"),
            "http://127.0.0.1:8080/demo/"
        );
        assert_eq!(ok("http://127.0.0.1:8080"), "http://127.0.0.1:8080/");
        for bad in [
            "127.0.0.1:8080/demo/",
            "ftp://x/",
            "http://",
            "http://x/demo/?a=1",
        ] {
            let err = VisitorOptions::new(bad, every).unwrap_err().to_string();
            assert!(err.contains("--base"), "{bad}: {err}");
        }
        assert!(VisitorOptions::new("http://x/demo/", Duration::ZERO).is_err());
    }

    #[test]
    fn user_agents_match_the_device() {
        let desktop = Device::Desktop.user_agent("Chromium/156.0.8078.73");
        assert_eq!(
            desktop.user_agent,
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
        );
        assert!(!desktop.user_agent_metadata.unwrap().mobile);
        let mobile = Device::Mobile.user_agent("Chromium/156.0.8078.73");
        assert!(
            mobile.user_agent.contains("Android") && mobile.user_agent.contains("Mobile Safari")
        );
        assert!(mobile.user_agent_metadata.unwrap().mobile);
    }
}
