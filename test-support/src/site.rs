//! A tiny HTTP/1.1 site on loopback, served by plain threads (so it works in
//! tests with and without an async runtime): one answer per request, chosen
//! by the caller from the request's first line.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

/// An answer: status line text (`"200 OK"`), content type, body.
pub type Answer = (&'static str, &'static str, String);

/// Serve on `127.0.0.1:0` for the rest of the test binary's life, answering
/// each request with `answer(first line)`; returns the base URL.
pub fn serve(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, content_type, body) = answer(request.lines().next().unwrap_or(""));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}
