//! How much of a user's input an error may repeat: a flow file can hold a
//! 1 MB key or a string of escape codes, and an error line is read in a
//! terminal or a log, so quoted input is short and its control characters escaped.

/// At most this many bytes of input (after escaping) appear in one error.
pub const MAX_ECHO: usize = 200;

/// `s` in double quotes with control characters escaped, cut to [`MAX_ECHO`]
/// bytes with the full length said after the cut.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_ECHO) + 2);
    out.push('"');
    for c in s.chars() {
        let escaped: String = c.escape_debug().collect();
        if out.len() + escaped.len() > MAX_ECHO {
            out.push_str(&format!("\"… ({} bytes)", s.len()));
            return out;
        }
        out.push_str(&escaped);
    }
    out.push('"');
    out
}

/// A key name for an error: in backticks when it is short and plain,
/// otherwise quoted and cut like any other input.
pub fn key(k: &str) -> String {
    if k.len() <= 64 && !k.chars().any(char::is_control) {
        format!("`{k}`")
    } else {
        quote(k)
    }
}

/// A message from a library (TOML, serde, cron) that may embed input: control
/// characters escaped, cut to [`MAX_ECHO`] bytes.
pub fn bounded(message: &str) -> String {
    let mut out = String::new();
    for c in message.chars() {
        let piece: String = if c.is_control() {
            c.escape_debug().collect()
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > MAX_ECHO {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_and_control_characters_are_bounded() {
        assert_eq!(quote("#buy"), "\"#buy\"");
        assert_eq!(quote("a\u{1b}[2m\n"), "\"a\\u{1b}[2m\\n\"");
        let long = "x".repeat(1 << 20);
        let q = quote(&long);
        assert!(q.len() < MAX_ECHO + 30, "{}", q.len());
        assert!(q.ends_with("… (1048576 bytes)"), "{q}");
        let escapes = "\u{7}".repeat(10_000);
        assert!(quote(&escapes).len() < MAX_ECHO + 30);
        let b = bounded(&format!("invalid type: string \"{long}\""));
        assert!(b.len() <= MAX_ECHO + '…'.len_utf8());
        assert_eq!(bounded("a\tb"), "a\\tb");
        assert_eq!(key("goto"), "`goto`");
        assert!(key(&long).len() < MAX_ECHO + 30);
    }
}
