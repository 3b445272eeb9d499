//! Dashboard sign-in: a query token is exchanged once for a signed cookie that
//! expires; forms that change something carry a CSRF token derived from it.
//!
//! Nothing is kept on the server: the cookie is `v1.<expiry>.<nonce>.<mac>`,
//! signed with a key derived from the configured query tokens. Replicas with
//! the same config accept each other's sessions, and removing a token from the
//! config ends every session signed with the old set. The cookie never holds
//! the token itself.

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::CollectorConfig;

pub const COOKIE: &str = "vs_session";
type HmacSha256 = Hmac<Sha256>;

/// A valid session presented by the browser.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub expires_ms: i64,
    nonce: String,
}

pub struct Sessions {
    key: [u8; 32],
    lifetime_ms: i64,
    /// Any query token configured at all: without one nobody can sign in.
    pub can_sign_in: bool,
    secure: bool,
}

impl Sessions {
    pub fn new(config: &CollectorConfig) -> Sessions {
        let mut key = Sha256::new();
        key.update(b"vitalsign dashboard session v1");
        for token in config.query_tokens.iter().filter(|t| !t.is_empty()) {
            key.update((token.expose().len() as u64).to_le_bytes());
            key.update(token.expose().as_bytes());
        }
        Sessions {
            key: key.finalize().into(),
            lifetime_ms: config.session_hours as i64 * 3_600_000,
            can_sign_in: config.query_tokens.iter().any(|t| !t.is_empty()),
            secure: config.alerts.public_url.starts_with("https://"),
        }
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(b"|");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// A new cookie value for a browser that just presented a valid token.
    pub fn issue(&self, now_ms: i64) -> (String, Session) {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let session = Session {
            expires_ms: now_ms + self.lifetime_ms,
            nonce: hex::encode(nonce),
        };
        let expires = session.expires_ms.to_string();
        let mac = self.mac(&["session", &expires, &session.nonce]);
        (format!("v1.{expires}.{}.{mac}", session.nonce), session)
    }

    /// The session of this request, if its cookie is genuine and unexpired.
    pub fn verify(&self, headers: &HeaderMap, now_ms: i64) -> Option<Session> {
        if !self.can_sign_in {
            return None;
        }
        let value = cookie(headers, COOKIE)?;
        let mut parts = value.split('.');
        let (v, expires, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if v != "v1" || parts.next().is_some() {
            return None;
        }
        let expires_ms: i64 = expires.parse().ok()?;
        if expires_ms <= now_ms || !constant_time_eq(&self.mac(&["session", expires, nonce]), mac) {
            return None;
        }
        Some(Session {
            expires_ms,
            nonce: nonce.to_string(),
        })
    }

    /// The CSRF token that forms of this session carry.
    pub fn csrf(&self, session: &Session) -> String {
        self.mac(&["csrf", &session.nonce])
    }

    pub fn csrf_ok(&self, session: &Session, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| constant_time_eq(&self.csrf(session), p))
    }

    /// `Set-Cookie` for a new session: HttpOnly, SameSite=Strict, Secure over https.
    pub fn set_cookie(&self, value: &str, request: &HeaderMap) -> HeaderValue {
        let secure = if self.secure || forwarded_https(request) {
            "; Secure"
        } else {
            ""
        };
        let max_age = self.lifetime_ms / 1000;
        HeaderValue::from_str(&format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        ))
        .expect("cookie value is ASCII")
    }

    pub fn clear_cookie(&self) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        ))
        .expect("ASCII")
    }
}

fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The value of one cookie of the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Where to go after sign-in: only a path on this collector (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() < 2048 =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalsign_core::secret::Secret;

    fn sessions(tokens: &[&str]) -> Sessions {
        let config = CollectorConfig {
            query_tokens: tokens.iter().map(|t| Secret::new(*t)).collect(),
            ..CollectorConfig::default()
        };
        Sessions::new(&config)
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={value}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_session_verifies_until_it_expires_and_never_holds_the_token() {
        let s = sessions(&["tok-123"]);
        let (value, session) = s.issue(1_000);
        assert!(!value.contains("tok-123"));
        assert_eq!(s.verify(&with_cookie(&value), 2_000), Some(session.clone()));
        assert_eq!(s.verify(&with_cookie(&value), session.expires_ms), None);
    }

    #[test]
    fn forged_or_foreign_cookies_are_refused() {
        let s = sessions(&["tok-123"]);
        let (value, _) = s.issue(1_000);
        let forged = value.replacen("v1.", "v1.9", 1);
        assert_eq!(s.verify(&with_cookie(&forged), 2_000), None);
        // Another token set (a rotated config) signs with another key.
        assert_eq!(
            sessions(&["tok-456"]).verify(&with_cookie(&value), 2_000),
            None
        );
        assert_eq!(sessions(&[]).verify(&with_cookie(&value), 2_000), None);
    }

    #[test]
    fn csrf_is_bound_to_the_session() {
        let s = sessions(&["tok"]);
        let (_, a) = s.issue(0);
        let (_, b) = s.issue(0);
        assert!(s.csrf_ok(&a, Some(&s.csrf(&a))));
        assert!(!s.csrf_ok(&a, Some(&s.csrf(&b))));
        assert!(!s.csrf_ok(&a, None));
    }

    #[test]
    fn next_stays_on_this_collector() {
        assert_eq!(safe_next(Some("/series?metric=LCP")), "/series?metric=LCP");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
