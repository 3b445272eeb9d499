//! The optional `/healthz` and `/metrics` listener.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::sync::watch;
use tracing::info;

use crate::metrics::AgentMetrics;

pub async fn serve(
    listen: &std::net::SocketAddr,
    metrics: Arc<AgentMetrics>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("binding the metrics listener to {listen} (config key `listen`)")
        })?;
    info!("metrics listening on http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(|State(m): State<Arc<AgentMetrics>>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        crate::metrics::CONTENT_TYPE,
                    )],
                    m.render(),
                )
            }),
        )
        .with_state(metrics);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    });
    Ok(())
}
