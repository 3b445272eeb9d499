//! Who the client is, for the rate limiter and the per-address connection cap:
//! the peer address, or behind trusted proxies the rightmost `X-Forwarded-For`
//! entry that is not one of them (what nginx's `real_ip_recursive on` does).
//!
//! The leftmost entry is whatever the client wrote; only entries appended by
//! proxies we trust can be believed, and the first untrusted one from the
//! right is the address that connected to our outermost proxy.

use std::fmt;
use std::net::IpAddr;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a
/// network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a network like \"10.0.0.0/8\" or \"fd00::/8\""))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a prefix length that is not 0 to {max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<IpNet> for String {
    fn from(net: IpNet) -> String {
        net.to_string()
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The client's address. Without trusted proxies, or when the peer is not
/// one, the peer itself: a header from an untrusted peer says nothing.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    // Every header line, in order, forms one list (RFC 7230 §3.2.2); walk it
    // from the right while the hops are proxies we trust.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for entry in entries.iter().rev() {
        match parse_entry(entry) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            // Garbage where an address should be: the hop that wrote it is
            // the last one we can vouch for; stop at what we have.
            None => break,
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn rightmost_untrusted_entry_is_the_client() {
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        let spoofed = headers(&["203.0.113.9, 198.51.100.7, 10.50.0.2"]);
        assert_eq!(
            client_ip(peer, &spoofed, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // Two header lines are one list.
        let split = headers(&["203.0.113.9", "198.51.100.7:4431, 10.50.0.2"]);
        assert_eq!(
            client_ip(peer, &split, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // All hops trusted: the leftmost one is the client.
        let internal = headers(&["10.9.9.9, 10.50.0.2"]);
        assert_eq!(
            client_ip(peer, &internal, &trusted),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
        // Garbage stops the walk at the last trusted hop.
        let garbage = headers(&["203.0.113.9, nonsense, 10.50.0.2"]);
        assert_eq!(
            client_ip(peer, &garbage, &trusted),
            "10.50.0.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn without_a_trusted_peer_the_header_is_ignored() {
        let peer: IpAddr = "198.51.100.1".parse().unwrap();
        let h = headers(&["203.0.113.9"]);
        assert_eq!(client_ip(peer, &h, &[]), peer);
        assert_eq!(client_ip(peer, &h, &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn networks_parse_and_match() {
        let v4: IpNet = "192.168.0.0/16".parse().unwrap();
        assert!(v4.contains("192.168.7.1".parse().unwrap()));
        assert!(v4.contains("::ffff:192.168.7.1".parse().unwrap()));
        assert!(!v4.contains("192.169.0.1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: IpNet = "2001:db8::1".parse().unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("example.com/8".parse::<IpNet>().is_err());
    }
}
