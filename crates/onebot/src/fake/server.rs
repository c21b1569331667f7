//! The fake's HTTP side. Connections are served one by one with hyper (not `axum::serve`), so a
//! handler can close its own connection without answering: each connection carries a
//! [`Conn`] whose `kill` the `Drop` fault fires.

use super::{Call, FaultKind, Shared};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// The connection a request came on: who is at the other end, and how to close it.
#[derive(Clone)]
struct Conn {
    peer: SocketAddr,
    kill: Arc<Notify>,
}

/// Accept and serve connections until the task is aborted (which drops every connection).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let router = Router::new()
        .route("/{action}", any(handle))
        .route("/{action}/", any(handle))
        .with_state(shared);
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let kill = Arc::new(Notify::new());
        let conn = Conn {
            peer,
            kill: kill.clone(),
        };
        let service = TowerToHyperService::new(router.clone().layer(Extension(conn)));
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                // Dropping the connection future closes the socket, mid-request.
                _ = kill.notified() => {}
            }
        });
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<Conn>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Some(Value::Object(Default::default()))
    } else {
        serde_json::from_slice(&body).ok()
    };
    let (auth, fault) = {
        let mut state = shared.lock();
        let auth = check_auth(state.token.as_deref(), &headers);
        state.calls.push(Call {
            action: action.clone(),
            params: params.clone().unwrap_or(Value::Null),
            at: Instant::now(),
            time: SystemTime::now(),
            authorized: auth.is_none(),
            peer: conn.peer,
        });
        let count = state.calls.len();
        shared.calls.send_replace(count);
        let fault = if auth.is_none() {
            state.take_fault(&action)
        } else {
            None
        };
        (auth, fault)
    };
    if let Some(status) = auth {
        return status.into_response();
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("application/json"));
    if !json {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    let Some(params) = params else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if let Some(fault) = fault {
        if !fault.delay.is_zero() {
            tokio::time::sleep(fault.delay).await;
        }
        match fault.kind {
            FaultKind::Normal => {}
            FaultKind::Reply(body) => return reply(body),
            FaultKind::Http(status) => {
                return StatusCode::from_u16(status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                    .into_response()
            }
            FaultKind::Drop => {
                conn.kill.notify_one();
                return std::future::pending().await;
            }
        }
    }
    let answer = shared.lock().answer(&action, &params);
    match answer {
        Some(body) => reply(body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `None` when authorized; otherwise 401 (no token given) or 403 (wrong token).
fn check_auth(token: Option<&str>, headers: &HeaderMap) -> Option<StatusCode> {
    let expected = token?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split_once(' ').map_or(v, |(_, t)| t).trim());
    match given {
        None | Some("") => Some(StatusCode::UNAUTHORIZED),
        Some(t) if t == expected => None,
        Some(_) => Some(StatusCode::FORBIDDEN),
    }
}

fn reply(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}
