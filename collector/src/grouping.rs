//! URL → page group, done once at ingest so queries group by a short, bounded
//! set of routes (`/product/123` and `/product/456` are both `/product/:id`).
//! A hash router's route (`/app/#/product/123`) is grouped by the fragment's
//! path after the document's: `/app/#/product/:id`.

use std::borrow::Cow;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

/// A configured rule as the file writes it: `pattern` is a path glob where
/// `*` matches one segment and a final `**` matches the rest (the segment
/// before it included: `/blog/**` matches `/blog` too); `{a,b}`, `?` and
/// `[…]` are globset's. A matching path becomes `group`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRuleSpec {
    pub pattern: String,
    pub group: String,
}

/// A [`GroupRuleSpec`] checked and compiled once, when the configuration is
/// read; ingest matches every beacon's path against it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "GroupRuleSpec", into = "GroupRuleSpec")]
pub struct GroupRule {
    spec: GroupRuleSpec,
    matcher: GlobMatcher,
}

impl GroupRule {
    pub fn new(pattern: &str, group: &str) -> Result<GroupRule, String> {
        GroupRule::try_from(GroupRuleSpec {
            pattern: pattern.into(),
            group: group.into(),
        })
    }

    pub fn group(&self) -> &str {
        &self.spec.group
    }

    /// `path` as [`split`] normalises it (no empty segments, no trailing slash).
    fn matches(&self, segments: &[&str]) -> bool {
        self.matcher.is_match(format!("/{}", segments.join("/")))
    }
}

impl TryFrom<GroupRuleSpec> for GroupRule {
    type Error = String;

    fn try_from(spec: GroupRuleSpec) -> Result<Self, String> {
        let pattern = &spec.pattern;
        if !pattern.starts_with('/') {
            return Err(format!("pattern {pattern:?} must start with '/'"));
        }
        if let Some(pos) = pattern.find("**")
            && pos + 2 != pattern.len()
        {
            return Err(format!("pattern {pattern:?}: `**` may only end a pattern"));
        }
        if spec.group.is_empty() || spec.group.len() > 200 {
            return Err("group must be 1 to 200 characters".into());
        }
        // Paths are matched normalised, so `/blog/**` must also take `/blog`.
        let glob = match pattern.strip_suffix("/**") {
            Some("") => "/**".to_string(),
            Some(prefix) => format!("{{{prefix},{pattern}}}"),
            None => pattern.clone(),
        };
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("pattern {pattern:?} is not a glob: {e}"))?
            .compile_matcher();
        Ok(GroupRule { spec, matcher })
    }
}

impl From<GroupRule> for GroupRuleSpec {
    fn from(rule: GroupRule) -> GroupRuleSpec {
        rule.spec
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
        return rule.group().to_string();
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
        let rules = vec![GroupRule::new("/#/product/*", "/#/product/:sku").unwrap()];
        assert_eq!(
            page_group("https://x.example/#/product/ab-12?x=1", &rules),
            "/#/product/:sku"
        );
        assert_eq!(route_path("https://x.example/a/b?q=1"), "/a/b");
    }

    #[test]
    fn configured_rules_win() {
        let rules = vec![
            GroupRule::new("/blog/**", "/blog/:post").unwrap(),
            GroupRule::new("/u/*/settings", "/u/:user/settings").unwrap(),
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
        assert_eq!(
            page_group("https://x.example/blog", &rules),
            "/blog/:post",
            "a final ** takes the segment before it alone too"
        );
        assert_eq!(page_group("https://x.example/blog/", &rules), "/blog/:post");
        assert_eq!(
            page_group("https://x.example/blogs/1", &rules),
            "/blogs/:id"
        );
        assert_eq!(
            page_group("https://x.example/u/alice/bob/settings", &rules),
            "/u/alice/bob/settings",
            "* is one segment"
        );
        let all = vec![GroupRule::new("/**", "everything").unwrap()];
        assert_eq!(page_group("https://x.example/", &all), "everything");
        assert_eq!(page_group("https://x.example/a/b", &all), "everything");
        assert!(GroupRule::new("/a/**/b", "x").is_err());
        assert!(GroupRule::new("a/*", "x").is_err());
        assert!(GroupRule::new("/a/[", "x").is_err());
    }
}
