//! The agent's HTTP server: `/healthz`, `/metrics` (Prometheus text) and the net/http/pprof
//! protocol for any process of the host, so that
//! `go tool pprof 'http://127.0.0.1:7476/debug/pprof/profile?pid=1234&seconds=10'` works on
//! an unmodified, stripped program. A profile request is a tap on the running pipeline:
//! concurrent requests share the one sampler (and its rate).
//!
//! Clients not on loopback must send the configured token (`Authorization: Bearer TOKEN`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::config::AgentConfig;
use super::metrics::{self, Sources};
use super::series::SeriesNamer;
use crate::pipeline::Splitter as _;
use crate::pipeline::tap::{TapFilter, TapRequest, Taps};
use crate::sink::http::Secret;

#[derive(Clone)]
pub struct State {
    pub sources: Sources,
    pub taps: Taps,
    pub config: Arc<AgentConfig>,
    pub token: Option<Secret>,
}

/// The longest profile a request may ask for.
const MAX_SECONDS: u64 = 600;

fn refuse(status: StatusCode, why: String) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// Loopback clients need nothing; others need the token.
fn allowed(state: &State, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if peer.ip().is_loopback() {
        return Ok(());
    }
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&state.token, sent) {
        (Some(t), Some(s)) if constant_time_eq(t.0.as_bytes(), s.as_bytes()) => Ok(()),
        _ => Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            format!("{peer}: not loopback and no valid token"),
        ))),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn profile(
    state: State,
    peer: SocketAddr,
    headers: HeaderMap,
    q: HashMap<String, String>,
) -> Response {
    if let Err(r) = allowed(&state, peer, &headers) {
        return *r;
    }
    let seconds = match q.get("seconds").map(|s| s.parse::<u64>()) {
        None => 30,
        Some(Ok(s)) if (1..=MAX_SECONDS).contains(&s) => s,
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("seconds: expected 1..={MAX_SECONDS}"),
            );
        }
    };
    let filter: TapFilter = if let Some(p) = q.get("pid") {
        let Ok(pid) = p.parse::<u32>() else {
            return refuse(StatusCode::BAD_REQUEST, format!("pid {p:?}: not a number"));
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return refuse(StatusCode::NOT_FOUND, format!("no process {pid}"));
        }
        Box::new(move |m| m.pid == pid)
    } else if let Some(s) = q.get("service") {
        let mut namer = SeriesNamer::new(&state.config);
        let s = s.clone();
        Box::new(move |m| namer.series(m).is_some_and(|x| x.service == s))
    } else if let Some(c) = q.get("container") {
        let c = c.clone();
        Box::new(move |m| {
            super::cgroup::parse(&m.cgroup)
                .container_id
                .is_some_and(|id| id.starts_with(&c))
        })
    } else {
        Box::new(|_| true)
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.taps.request(TapRequest {
        filter,
        duration: Duration::from_secs(seconds),
        reply: tx,
    });
    let Ok(p) = rx.await else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is stopping".into(),
        );
    };
    match crate::report::encode_pprof(&p) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profile\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: State) {
    let mut app = axum::Router::new().route("/healthz", get(|| async { "ok\n" }));
    if state.config.http.metrics {
        let s = state.clone();
        app = app.route(
            "/metrics",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap| async move {
                    if let Err(r) = allowed(&s, peer, &headers) {
                        return *r;
                    }
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics::render(&s.sources),
                    )
                        .into_response()
                },
            ),
        );
    }
    if state.config.http.pprof {
        let s = state.clone();
        app = app.route(
            "/debug/pprof/profile",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                      headers: HeaderMap,
                      Query(q): Query<HashMap<String, String>>| {
                    profile(s.clone(), peer, headers, q)
                },
            ),
        );
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        log::error!("http server: {e}");
    }
}
