//! Device profiles: viewport, touch, CPU slowdown and network shape, applied
//! with CDP emulation so a `mobile` run feels like a mid-range phone on 4G.

use chromiumoxide::cdp::browser_protocol::emulation::{
    SetCpuThrottlingRateParams, SetDeviceMetricsOverrideParams, SetTouchEmulationEnabledParams,
};
use chromiumoxide::cdp::browser_protocol::network::{
    EmulateNetworkConditionsByRuleParams, NetworkConditions,
};
use chromiumoxide::page::Page;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::flow::echo::{bounded, quote};

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub mobile: bool,
    pub touch: bool,
    /// 1 = no slowdown; 4 = four times slower than this machine.
    pub cpu_slowdown: f64,
    /// Added round trip in milliseconds; 0 with no bandwidth limits = no network emulation.
    pub latency_ms: f64,
    /// Bandwidth limits in kbit/s; 0 = unlimited.
    pub download_kbps: f64,
    pub upload_kbps: f64,
}

impl Profile {
    pub fn desktop() -> Profile {
        Profile {
            name: "desktop".into(),
            width: 1350,
            height: 940,
            mobile: false,
            touch: false,
            cpu_slowdown: 1.0,
            latency_ms: 0.0,
            download_kbps: 0.0,
            upload_kbps: 0.0,
        }
    }

    /// Lighthouse's mobile preset: a Moto G Power class phone on slow 4G.
    pub fn mobile() -> Profile {
        Profile {
            name: "mobile".into(),
            width: 412,
            height: 823,
            mobile: true,
            touch: true,
            cpu_slowdown: 4.0,
            latency_ms: 150.0,
            download_kbps: 1600.0,
            upload_kbps: 750.0,
        }
    }

    pub fn throttles_network(&self) -> bool {
        self.latency_ms > 0.0 || self.download_kbps > 0.0 || self.upload_kbps > 0.0
    }

    /// Emulate this device on `page`: viewport, touch, CPU and network.
    pub async fn apply(&self, page: &Page) -> Result<(), String> {
        fn err(what: &'static str) -> impl Fn(chromiumoxide::error::CdpError) -> String {
            move |e| format!("{what}: {e}")
        }
        // The screen as large as the viewport: headless Chromium's own screen
        // is 800×600, and a page that asks `screen.width` (the snippet does, to
        // tell a desktop from a tablet) must see the device's.
        let mut metrics = SetDeviceMetricsOverrideParams::new(
            i64::from(self.width),
            i64::from(self.height),
            1.0,
            self.mobile,
        );
        metrics.screen_width = Some(i64::from(self.width));
        metrics.screen_height = Some(i64::from(self.height));
        page.execute(metrics)
            .await
            .map_err(err("Emulation.setDeviceMetricsOverride"))?;
        // chromiumoxide turns touch emulation on for every page; a desktop has none.
        page.execute(SetTouchEmulationEnabledParams::new(self.touch))
            .await
            .map_err(err("Emulation.setTouchEmulationEnabled"))?;
        if self.cpu_slowdown > 1.0 {
            page.execute(SetCpuThrottlingRateParams::new(self.cpu_slowdown))
                .await
                .map_err(err("Emulation.setCPUThrottlingRate"))?;
        }
        if self.throttles_network() {
            let bytes = |kbps: f64| {
                if kbps > 0.0 {
                    kbps * 1000.0 / 8.0
                } else {
                    -1.0
                }
            };
            // An empty URL pattern applies the conditions to every request.
            let everything = NetworkConditions {
                url_pattern: String::new(),
                latency: self.latency_ms,
                download_throughput: bytes(self.download_kbps),
                upload_throughput: bytes(self.upload_kbps),
                connection_type: None,
                packet_loss: None,
                packet_queue_length: None,
                packet_reordering: None,
            };
            page.execute(EmulateNetworkConditionsByRuleParams::new(
                false,
                vec![everything],
            ))
            .await
            .map_err(err("Network.emulateNetworkConditions"))?;
        }
        Ok(())
    }

    pub fn from_toml(value: &toml::Value) -> Result<Profile, String> {
        match value {
            toml::Value::String(name) => match name.as_str() {
                "desktop" => Ok(Profile::desktop()),
                "mobile" => Ok(Profile::mobile()),
                other => Err(format!(
                    "{} is not a profile; use \"desktop\", \"mobile\" or a table of custom values",
                    quote(other)
                )),
            },
            toml::Value::Table(_) => {
                let custom: Custom = value
                    .clone()
                    .try_into()
                    .map_err(|e: toml::de::Error| bounded(e.message()))?;
                let base = match custom.base.as_deref() {
                    None | Some("desktop") => Profile::desktop(),
                    Some("mobile") => Profile::mobile(),
                    Some(other) => {
                        return Err(format!("`base`: {} is not desktop or mobile", quote(other)));
                    }
                };
                let p = Profile {
                    name: custom.name.unwrap_or_else(|| "custom".into()),
                    width: custom.width.unwrap_or(base.width),
                    height: custom.height.unwrap_or(base.height),
                    mobile: custom.mobile.unwrap_or(base.mobile),
                    touch: custom.touch.unwrap_or(base.touch),
                    cpu_slowdown: custom.cpu_slowdown.unwrap_or(base.cpu_slowdown),
                    latency_ms: custom.latency_ms.unwrap_or(base.latency_ms),
                    download_kbps: custom.download_kbps.unwrap_or(base.download_kbps),
                    upload_kbps: custom.upload_kbps.unwrap_or(base.upload_kbps),
                };
                if !(200..=4000).contains(&p.width) || !(200..=4000).contains(&p.height) {
                    return Err("`width` and `height` must be 200 to 4000".into());
                }
                // `contains` is false for NaN, so these refuse NaN and infinities too.
                if !(1.0..=20.0).contains(&p.cpu_slowdown) {
                    return Err(format!(
                        "`cpu_slowdown` must be a number from 1 to 20, not {}",
                        p.cpu_slowdown
                    ));
                }
                for (key, value, max) in [
                    ("latency_ms", p.latency_ms, MAX_LATENCY_MS),
                    ("download_kbps", p.download_kbps, MAX_KBPS),
                    ("upload_kbps", p.upload_kbps, MAX_KBPS),
                ] {
                    if !(0.0..=max).contains(&value) {
                        return Err(format!(
                            "`{key}` must be a number from 0 to {max}, not {value}"
                        ));
                    }
                }
                Ok(p)
            }
            other => Err(format!(
                "must be a name or a table, not {}",
                other.type_str()
            )),
        }
    }
}

/// Ten seconds of added round trip is already an outage, not a network.
pub const MAX_LATENCY_MS: f64 = 10_000.0;
/// 10 Gbit/s: more is no limit at all.
pub const MAX_KBPS: f64 = 10_000_000.0;

/// `profile` in a flow file, for the schema: a preset's name or a custom table.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used; the parser reads a `toml::Value`
pub(crate) enum ProfileDoc {
    Preset(Preset),
    Custom(Custom),
}

/// A preset: `desktop` is 1350×940 with no throttling; `mobile` is
/// Lighthouse's Moto G Power class phone, 412×823, 4× CPU slowdown, 150 ms
/// round trip, 1.6 Mbit/s down and 750 kbit/s up.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used
pub(crate) enum Preset {
    Desktop,
    Mobile,
}

/// A custom device: any value not given is the base preset's.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Custom {
    /// Shown in results; default `custom`.
    name: Option<String>,
    /// The preset the other values start from: `desktop` (default) or `mobile`.
    #[schemars(with = "Option<Preset>")]
    base: Option<String>,
    /// Viewport width in CSS pixels, 200 to 4000.
    #[schemars(range(min = 200, max = 4000))]
    width: Option<u32>,
    /// Viewport height in CSS pixels, 200 to 4000.
    #[schemars(range(min = 200, max = 4000))]
    height: Option<u32>,
    /// Emulate a mobile device (meta viewport, mobile user agent metrics).
    mobile: Option<bool>,
    /// Emulate a touch screen.
    touch: Option<bool>,
    /// CPU slowdown factor, 1 (none) to 20.
    #[schemars(range(min = 1.0, max = 20.0))]
    cpu_slowdown: Option<f64>,
    /// Added round trip in milliseconds, 0 to 10000.
    #[schemars(range(min = 0.0, max = 10000.0))]
    latency_ms: Option<f64>,
    /// Download limit in kbit/s, 0 (unlimited) to 10000000.
    #[schemars(range(min = 0.0, max = 10000000.0))]
    download_kbps: Option<f64>,
    /// Upload limit in kbit/s, 0 (unlimited) to 10000000.
    #[schemars(range(min = 0.0, max = 10000000.0))]
    upload_kbps: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_custom() {
        let m = Profile::from_toml(&toml::Value::String("mobile".into())).unwrap();
        assert_eq!(
            (m.width, m.height, m.cpu_slowdown, m.latency_ms),
            (412, 823, 4.0, 150.0)
        );
        let custom: toml::Value = toml::from_str::<toml::Table>(
            "p = { base = \"mobile\", name = \"slow-phone\", cpu_slowdown = 6.0 }",
        )
        .unwrap()["p"]
            .clone();
        let c = Profile::from_toml(&custom).unwrap();
        assert_eq!(
            (c.name.as_str(), c.cpu_slowdown, c.width),
            ("slow-phone", 6.0, 412)
        );
        let bad: toml::Value =
            toml::from_str::<toml::Table>("p = { cpu_slowdown = 0.5 }").unwrap()["p"].clone();
        assert!(
            Profile::from_toml(&bad)
                .unwrap_err()
                .contains("cpu_slowdown")
        );
    }

    #[test]
    fn nan_and_infinite_values_are_refused() {
        for (text, key) in [
            ("p = { cpu_slowdown = nan }", "`cpu_slowdown`"),
            ("p = { cpu_slowdown = inf }", "`cpu_slowdown`"),
            ("p = { latency_ms = nan }", "`latency_ms`"),
            ("p = { latency_ms = inf }", "`latency_ms`"),
            ("p = { download_kbps = -inf }", "`download_kbps`"),
            ("p = { upload_kbps = nan }", "`upload_kbps`"),
            ("p = { upload_kbps = 1e300 }", "`upload_kbps`"),
        ] {
            let value = toml::from_str::<toml::Table>(text).unwrap()["p"].clone();
            let err = Profile::from_toml(&value).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
