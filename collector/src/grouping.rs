//! URL → page group, done once at ingest so queries group by a short, bounded
//! set of routes (`/product/123` and `/product/456` are both `/product/:id`).
//! A hash router's route (`/app/#/product/123`) is grouped by the fragment's
//! path after the document's: `/app/#/product/:id`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A configured rule: `pattern` is a path where `*` matches one segment and a
/// final `**` matches the rest; a matching path becomes `group`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    pub pattern: String,
    pub group: String,
}

impl GroupRule {
    pub fn check(&self) -> Result<(), String> {
        if !self.pattern.starts_with('/') {
            return Err(format!("{:?} must start with '/'", self.pattern));
        }
        if let Some(pos) = self.pattern.find("**")
            && pos + 2 != self.pattern.len()
        {
            return Err(format!("{:?}: `**` may only end a pattern", self.pattern));
        }
        if self.group.is_empty() || self.group.len() > 200 {
            return Err("group must be 1 to 200 characters".into());
        }
        Ok(())
    }

    fn matches(&self, segments: &[&str]) -> bool {
        let pattern: Vec<&str> = split(&self.pattern);
        let mut i = 0;
        for (j, p) in pattern.iter().enumerate() {
            if *p == "**" {
                return j == pattern.len() - 1;
            }
            match segments.get(i) {
                Some(s) if *p == "*" || p == s => i += 1,
                _ => return false,
            }
        }
        i == segments.len()
    }
}

fn split(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The path of a URL without scheme, host, query or fragment.
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// The path a URL is grouped by: its path, and when the fragment is a hash
/// router's route (`#/cart`, `#!/cart`, as the snippet keeps them) the
/// fragment's path after it, marked by a `#` or `#!` segment so that
/// `/#/cart` is neither `/cart` nor `/` (`/app/#/cart?x=1` → `/app/#/cart`).
/// Other fragments (`#top`) are no route and are dropped.
pub fn route_path(url: &str) -> Cow<'_, str> {
    let path = path_of(url);
    let fragment = url.split_once('#').map_or("", |(_, fragment)| fragment);
    let (marker, route) = if let Some(route) = fragment.strip_prefix('!') {
        ("#!", route)
    } else {
        ("#", fragment)
    };
    if !route.starts_with('/') {
        return Cow::Borrowed(path);
    }
    let route = &route[..route.find('?').unwrap_or(route.len())];
    Cow::Owned(format!("{}/{marker}{route}", path.trim_end_matches('/')))
}

/// Reduce a URL to its page group: configured rules first, then the built-in
/// placeholders for ids and hashes.
pub fn page_group(url: &str, rules: &[GroupRule]) -> String {
    let path = route_path(url);
    let path = path.as_ref();
    let segments = split(path);
    if let Some(rule) = rules.iter().find(|r| r.matches(&segments)) {
        return rule.group.clone();
    }
    if segments.is_empty() {
        return "/".to_string();
    }
    let mut group = String::with_capacity(path.len());
    for segment in segments.iter().take(12) {
        group.push('/');
        group.push_str(placeholder(segment).unwrap_or(segment));
    }
    // Bound the length: a path is user input.
    group.chars().take(200).collect()
}

fn placeholder(segment: &str) -> Option<&'static str> {
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    if !segment.is_empty() && digits == segment.len() {
        return Some(":id");
    }
    let hexlike = segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    // UUIDs, content hashes, long opaque tokens: anything id-shaped with digits in it.
    if hexlike && segment.len() >= 8 && digits > 0 {
        return Some(":hash");
    }
    if segment.len() >= 16
        && digits >= 2
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Some(":hash");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_hashes_become_placeholders() {
        let none: &[GroupRule] = &[];
        assert_eq!(
            page_group("https://shop.example/product/123?color=red#top", none),
            "/product/:id"
        );
        assert_eq!(page_group("https://shop.example/", none), "/");
        assert_eq!(page_group("https://shop.example", none), "/");
        assert_eq!(
            page_group(
                "https://x.example/order/3f2b8c1e-9a7d-4e21-b0c4-1d2e3f4a5b6c/items",
                none
            ),
            "/order/:hash/items"
        );
        assert_eq!(
            page_group("https://x.example/assets/app.8f3a9c21.js", none),
            "/assets/app.8f3a9c21.js"
        );
        assert_eq!(
            page_group("https://x.example/blog/hello-world", none),
            "/blog/hello-world"
        );
        assert_eq!(
            page_group("https://x.example/s/aB3dE5fG7hJ9kL1mN", none),
            "/s/:hash"
        );
        assert_eq!(
            page_group("https://x.example/cafe", none),
            "/cafe",
            "short hex words stay"
        );
    }

    #[test]
    fn hash_routes_group_by_the_fragment_path() {
        let none: &[GroupRule] = &[];
        assert_eq!(page_group("https://x.example/#/cart", none), "/#/cart");
        assert_eq!(
            page_group("https://x.example/app/#/product/123?ref=nav", none),
            "/app/#/product/:id",
            "placeholders and no query in the fragment either"
        );
        assert_eq!(
            page_group("https://x.example/app/?tab=2#!/orders/42", none),
            "/app/#!/orders/:id"
        );
        assert_eq!(page_group("https://x.example/#/", none), "/#");
        // Not routes: anchors, and fragments that do not start with a path.
        assert_eq!(page_group("https://x.example/docs/#install", none), "/docs");
        assert_eq!(page_group("https://x.example/docs#!install", none), "/docs");
        assert_eq!(page_group("https://x.example/#", none), "/");
        // The document path stays apart from the route: `/#/cart` is not `/cart`.
        assert_ne!(
            page_group("https://x.example/#/cart", none),
            page_group("https://x.example/cart", none)
        );
        let rules = vec![GroupRule {
            pattern: "/#/product/*".into(),
            group: "/#/product/:sku".into(),
        }];
        assert_eq!(
            page_group("https://x.example/#/product/ab-12?x=1", &rules),
            "/#/product/:sku"
        );
        assert_eq!(route_path("https://x.example/a/b?q=1"), "/a/b");
    }

    #[test]
    fn configured_rules_win() {
        let rules = vec![
            GroupRule {
                pattern: "/blog/**".into(),
                group: "/blog/:post".into(),
            },
            GroupRule {
                pattern: "/u/*/settings".into(),
                group: "/u/:user/settings".into(),
            },
        ];
        assert_eq!(
            page_group("https://x.example/blog/2024/hello", &rules),
            "/blog/:post"
        );
        assert_eq!(
            page_group("https://x.example/u/alice/settings", &rules),
            "/u/:user/settings"
        );
        assert_eq!(
            page_group("https://x.example/u/alice/profile", &rules),
            "/u/alice/profile"
        );
        assert!(
            GroupRule {
                pattern: "/a/**/b".into(),
                group: "x".into()
            }
            .check()
            .is_err()
        );
    }
}
