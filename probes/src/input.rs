//! Real keyboard input over CDP (`Input.dispatchKeyEvent`), so key presses
//! produce the same event-timing entries (and INP) a person's would.

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::{DispatchKeyEventParams, DispatchKeyEventType};

/// (key, code, windows virtual key code, text) for a key name from a flow file.
pub fn key_definition(name: &str) -> Option<(String, String, i64, Option<String>)> {
    let named = |key: &str, code: &str, vk: i64, text: Option<&str>| {
        Some((
            key.to_string(),
            code.to_string(),
            vk,
            text.map(str::to_string),
        ))
    };
    match name {
        "Enter" => named("Enter", "Enter", 13, Some("\r")),
        "Tab" => named("Tab", "Tab", 9, None),
        "Escape" => named("Escape", "Escape", 27, None),
        "Backspace" => named("Backspace", "Backspace", 8, None),
        "Space" | " " => named(" ", "Space", 32, Some(" ")),
        "ArrowUp" => named("ArrowUp", "ArrowUp", 38, None),
        "ArrowDown" => named("ArrowDown", "ArrowDown", 40, None),
        "ArrowLeft" => named("ArrowLeft", "ArrowLeft", 37, None),
        "ArrowRight" => named("ArrowRight", "ArrowRight", 39, None),
        _ => {
            let mut chars = name.chars();
            let c = chars.next()?;
            if chars.next().is_some() || c.is_control() {
                return None;
            }
            let upper = c.to_ascii_uppercase();
            let code = if c.is_ascii_alphabetic() {
                format!("Key{upper}")
            } else if c.is_ascii_digit() {
                format!("Digit{c}")
            } else {
                String::new()
            };
            let vk = if c.is_ascii_alphanumeric() {
                upper as i64
            } else {
                0
            };
            Some((c.to_string(), code, vk, Some(c.to_string())))
        }
    }
}

/// Press and release one key on the focused element.
pub async fn press(page: &Page, name: &str) -> Result<(), chromiumoxide::error::CdpError> {
    let (key, code, vk, text) = key_definition(name)
        .ok_or_else(|| chromiumoxide::error::CdpError::msg(format!("unknown key {name:?}")))?;
    let mut down = DispatchKeyEventParams::builder()
        .r#type(if text.is_some() {
            DispatchKeyEventType::KeyDown
        } else {
            DispatchKeyEventType::RawKeyDown
        })
        .key(key.clone())
        .code(code.clone())
        .windows_virtual_key_code(vk)
        .native_virtual_key_code(vk);
    if let Some(t) = &text {
        down = down.text(t.clone()).unmodified_text(t.clone());
    }
    page.execute(down.build().map_err(chromiumoxide::error::CdpError::msg)?)
        .await?;
    let up = DispatchKeyEventParams::builder()
        .r#type(DispatchKeyEventType::KeyUp)
        .key(key)
        .code(code)
        .windows_virtual_key_code(vk)
        .native_virtual_key_code(vk)
        .build()
        .map_err(chromiumoxide::error::CdpError::msg)?;
    page.execute(up).await?;
    Ok(())
}
