//! One HTTP/1.1 request over a fresh blocking loopback connection, for tests
//! that run without an async runtime or want the bytes on the wire exactly
//! as written (no client library in between).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `method path` to `addr` (`host:port`, or a base URL `http://host:port`)
/// with `body` as `text/plain` and an optional bearer `token`; returns
/// (status, body). The server must not answer chunked (the collector sends a
/// content-length for its JSON and error bodies).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let addr = addr.trim_start_matches("http://");
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: text/plain\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}
