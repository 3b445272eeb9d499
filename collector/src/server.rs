//! The listener: accepting connections with the limits of `[connections]` in
//! the config, serving each with hyper's HTTP/1.1 server and a timer, and
//! draining them on shutdown.
//!
//! `axum::serve` runs hyper without a timer, so its header read timeout never
//! fires, and it caps nothing: a few hundred half-sent requests from one host
//! used every descriptor of the process. Here:
//! - a request's headers must arrive within `header_read_timeout_secs`;
//! - a body within `body_read_timeout_secs` ([`body_hygiene`]);
//! - a connection with no bytes either way for `idle_timeout_secs` is closed
//!   (after the request in flight, if any, is answered);
//! - at most `max_connections` at once (lowered to fit `RLIMIT_NOFILE`) and
//!   `max_connections_per_client` from one peer address; a connection over a
//!   cap is closed as soon as it is accepted, so it holds no descriptor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::config::ConnectionConfig;
use crate::http::AppState;

/// Descriptors kept free for what is not a client connection: the SQLite
/// files (database, WAL, shared memory) of the writer and the readers, the
/// listener, SMTP, logs.
const RESERVED_FDS: u64 = 64;

/// The connection cap that fits this process's descriptor limit.
pub fn effective_max_connections(configured: usize) -> usize {
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => {
            let fits = soft.saturating_sub(RESERVED_FDS).max(1);
            let fits = usize::try_from(fits).unwrap_or(usize::MAX);
            if fits < configured {
                warn!(
                    configured,
                    lowered_to = fits,
                    nofile = soft,
                    "connections.max_connections is above what the descriptor limit (RLIMIT_NOFILE) allows; raise LimitNOFILE / ulimit -n"
                );
                fits
            } else {
                configured
            }
        }
        Err(_) => configured,
    }
}

/// Serve `router` on `listener` until `shutdown` is cancelled; then stop
/// accepting, let every connection finish the request it is serving, and
/// return when all are closed (each connection is a task of one tracker).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let max_total = effective_max_connections(limits.max_connections);
    let counts = Arc::new(Counts::default());
    let connections = TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs))
        .keep_alive(true);
    let builder = Arc::new(builder);
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the caps
                    // make this rare, and existing connections keep being served.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip().to_canonical();
        let Some(slot) = counts.admit(ip, max_total, limits.max_connections_per_client) else {
            debug!(%ip, "connection over a cap; closing it");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone();
        let builder = builder.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let activity = Arc::new(Activity::new());
            let io = TokioIo::new(Tracked {
                inner: stream,
                activity: activity.clone(),
            });
            let service = hyper::service::service_fn(move |mut request: Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                service.clone().oneshot(request.map(Body::new))
            });
            let connection = builder.serve_connection(io, service);
            tokio::pin!(connection);
            let mut closing = false;
            loop {
                let check = activity
                    .idle_for()
                    .map_or(idle, |quiet| idle.saturating_sub(quiet));
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            debug!(error = %e, %peer, "connection ended with an error");
                        }
                        break;
                    }
                    () = stop.cancelled(), if !closing => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    () = tokio::time::sleep(check.max(Duration::from_millis(10))), if !closing => {
                        if activity.idle_for().is_some_and(|quiet| quiet >= idle) {
                            closing = true;
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    connections.close();
    info!(
        open = counts.total.load(Ordering::Relaxed),
        "stopped accepting; finishing open requests"
    );
    // Each in-flight request ends within the header and body timeouts; a
    // connection still open after both (a peer that never lets go) must not
    // keep the process from stopping.
    let drain =
        Duration::from_secs(limits.header_read_timeout_secs + limits.body_read_timeout_secs + 5);
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        warn!(
            open = counts.total.load(Ordering::Relaxed),
            ?drain,
            "connections still open after the drain; stopping without them"
        );
    }
    Ok(())
}

/// Open connections, in total and per peer address.
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

impl Counts {
    fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_client: usize,
    ) -> Option<Slot> {
        let mut per_client = self.per_client.lock().unwrap();
        if self.total.load(Ordering::Relaxed) >= max_total {
            return None;
        }
        let n = per_client.entry(ip).or_insert(0);
        if *n >= max_per_client {
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_client = self.counts.per_client.lock().unwrap();
        if let Some(n) = per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.ip);
            }
        }
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// When bytes last moved on a connection.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Option<Duration> {
        let now = self.start.elapsed();
        Some(now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed))))
    }
}

/// A TCP stream that records activity for the idle timeout.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The body did not arrive within `connections.body_read_timeout_secs`.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// Is `error` (from reading a body) the body timeout?
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body with a deadline, that says whether it was read to the end.
struct TimedBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    finished: Arc<AtomicBool>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finished.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

/// Middleware: every request body is read within the body timeout, and a
/// rejected request leaves the connection usable. A body of at most
/// `max_beacon_bytes` is read before the handler runs, so a 413, 415 or 429
/// answered without looking at it still leaves the connection at the start of
/// the next request (keep-alive survives). A larger body streams to the
/// handler; if the answer is an error and the body was not read to its end,
/// the response says `Connection: close` and hyper closes after sending it.
pub async fn body_hygiene(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || content_length(&request).is_some_and(|n| n > 0);
    if !has_body {
        return next.run(request).await;
    }
    let timeout = Duration::from_secs(state.config.connections.body_read_timeout_secs);
    let (parts, body) = request.into_parts();
    let small =
        content_length_of(&parts.headers).is_some_and(|n| n <= state.config.max_beacon_bytes);
    if small {
        let limit = state.config.max_beacon_bytes;
        return match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => {
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
            Ok(Err(_)) => close(
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({
                        "error": "the request body ended before its Content-Length"
                    })),
                )
                    .into_response(),
            ),
            Err(_) => timed_out(timeout),
        };
    }
    let finished = Arc::new(AtomicBool::new(false));
    let body = Body::new(TimedBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        finished: finished.clone(),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if (response.status().is_client_error() || response.status().is_server_error())
        && !finished.load(Ordering::Relaxed)
    {
        close(response)
    } else {
        response
    }
}

fn timed_out(timeout: Duration) -> Response {
    close(
        (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({
                "error": format!("the request body did not arrive within {} s", timeout.as_secs())
            })),
        )
            .into_response(),
    )
}

fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn content_length(request: &Request) -> Option<usize> {
    content_length_of(request.headers())
}

fn content_length_of(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
