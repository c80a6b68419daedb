//! The node's admin and health routes.
//!
//! - `GET /healthz` (liveness) and `GET /readyz` (readiness): the health report of
//!   `dawn-resilience`, open to anyone who may reach the API.
//! - The admin API: `GET /api/trust`, `GET|PUT /api/trust/{node_id}`, `GET|PUT /api/policy`,
//!   `GET /api/audit?after=SEQ&limit=N`. Served only to callers that pass the admin check:
//!   with an admin token configured, `Authorization: Bearer <token>` on every request (on any
//!   address); without one, only while the HTTP server is bound to loopback. The whole API
//!   also answers only to loopback `Host` names when bound to loopback (the DNS-rebinding
//!   guard in [`crate::http`]), and `PUT` requires `Content-Type: application/json`, which a
//!   web page cannot send cross-origin without a CORS preflight that is never granted.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dawn_identity::NodeId;
use dawn_resilience::{ErrorCode, HasErrorCode};
use dawn_trust::{Policy, PolicyConfig};
use serde::Serialize;

use crate::api::ApiError;
use crate::http::AppState;
use crate::security::{AuditPage, MAX_AUDIT_PAGE, SecurityError, TrustUpdate};

/// Entries `GET /api/audit` returns without a `limit`.
const DEFAULT_AUDIT_PAGE: usize = 100;

/// The health, readiness and admin routes, merged into the node's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/trust", get(trust_list))
        .route("/api/trust/{node_id}", get(trust_one).put(set_trust))
        .route("/api/policy", get(policy).put(set_policy))
        .route("/api/audit", get(audit))
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json(status, &ApiError::new(code, message))
}

/// `/healthz`: 200 unless a required component is unhealthy (503).
async fn healthz(State(state): State<AppState>) -> Response {
    let report = state.shared.security.health();
    let status =
        StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    json(status, &report)
}

/// `/readyz`: 200 when ready, else 503 with the reasons.
async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.shared.security.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &readiness)
}

/// The admin check: `Some` is the refusal to send.
fn refuse(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    match state.shared.security.admin_token() {
        Some(token) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
            if presented.is_some_and(|p| token.matches(p)) {
                return None;
            }
            tracing::debug!("admin request without the admin token refused");
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the admin API requires Authorization: Bearer <admin token>",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(response)
        }
        None if state.loopback_hosts_only => None,
        None => Some(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin API is off: the HTTP server is not bound to a loopback address and no \
             admin token is configured (set admin.token_file)",
        )),
    }
}

/// A `PUT` body must be JSON, so that a web page cannot send it without a preflight: `Some`
/// is the refusal.
fn refuse_non_json(headers: &HeaderMap) -> Option<Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    (!is_json).then(|| {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        )
    })
}

fn parse_peer(text: &str) -> Result<NodeId, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not a node id: {e}"))
}

fn security_error(failure: &SecurityError) -> Response {
    let (status, code) = match failure.code() {
        ErrorCode::RequestInvalid => (StatusCode::BAD_REQUEST, "bad_request"),
        ErrorCode::RequestConflict => (StatusCode::CONFLICT, "conflict"),
        ErrorCode::StorageUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    error(status, code, failure.to_string())
}

async fn trust_list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    let known: Vec<NodeId> = state.shared.peers().iter().map(|p| p.node_id).collect();
    json(StatusCode::OK, &state.shared.security.trust_list(known))
}

async fn trust_one(
    State(state): State<AppState>,
    Path(node_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    match parse_peer(&node_id) {
        Ok(peer) => json(StatusCode::OK, &state.shared.security.peer_trust(&peer)),
        Err(message) => error(StatusCode::BAD_REQUEST, "bad_request", message),
    }
}

async fn set_trust(
    State(state): State<AppState>,
    Path(node_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = refuse(&state, &headers).or_else(|| refuse_non_json(&headers)) {
        return response;
    }
    let peer = match parse_peer(&node_id) {
        Ok(peer) => peer,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    if peer == state.shared.node_id {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "a node does not assign a trust level to itself",
        );
    }
    let update: TrustUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("expected {{\"level\": \"trusted\"}}: {e}"),
            );
        }
    };
    match state.shared.security.set_trust(peer, &update).await {
        Ok(trust) => json(StatusCode::OK, &trust),
        Err(failure) => security_error(&failure),
    }
}

async fn policy(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    json(StatusCode::OK, &state.shared.security.policy_view())
}

async fn set_policy(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = refuse(&state, &headers).or_else(|| refuse_non_json(&headers)) {
        return response;
    }
    let config: PolicyConfig = match serde_json::from_slice(&body) {
        Ok(config) => config,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("not a policy: {e}"),
            );
        }
    };
    let policy = match Policy::from_config(config) {
        Ok(policy) => policy,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    match state.shared.security.set_policy(policy).await {
        Ok(view) => json(StatusCode::OK, &view),
        Err(failure) => security_error(&failure),
    }
}

/// `after` and `limit` from a query string; every other parameter is an error.
fn audit_query(query: Option<&str>) -> Result<(Option<u64>, usize), String> {
    let mut after = None;
    let mut limit = DEFAULT_AUDIT_PAGE;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "after" => {
                after = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("after={value:?} is not a sequence number"))?,
                );
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_AUDIT_PAGE).contains(n))
                    .ok_or_else(|| {
                        format!("limit={value:?} is not a number from 1 to {MAX_AUDIT_PAGE}")
                    })?;
            }
            other => return Err(format!("unknown parameter {other:?}; use after and limit")),
        }
    }
    Ok((after, limit))
}

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    let (after, limit) = match audit_query(query.as_deref()) {
        Ok(parsed) => parsed,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    let security = &state.shared.security;
    // Everything decided before this request is readable in it.
    if let Err(failure) = security.sync().await {
        return security_error(&failure);
    }
    let (entries, next_seq) = match security.audit_entries(after, limit).await {
        Ok(page) => page,
        Err(failure) => return security_error(&failure),
    };
    let mut values = Vec::with_capacity(entries.len());
    for entry in &entries {
        let value = entry
            .to_json_line()
            .ok()
            .and_then(|line| serde_json::from_str(&line).ok());
        match value {
            Some(value) => values.push(value),
            None => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("audit entry {} cannot be shown as JSON", entry.seq()),
                );
            }
        }
    }
    json(
        StatusCode::OK,
        &AuditPage {
            entries: values,
            next_seq,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_queries_are_checked() {
        assert_eq!(audit_query(None), Ok((None, DEFAULT_AUDIT_PAGE)));
        assert_eq!(audit_query(Some("after=5&limit=2")), Ok((Some(5), 2)));
        assert_eq!(audit_query(Some("limit=1000")), Ok((None, 1000)));
        for bad in [
            "after=-1",
            "after=x",
            "limit=0",
            "limit=1001",
            "limit=",
            "seq=3",
        ] {
            assert!(audit_query(Some(bad)).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn valid_queries_parse_to_their_values(
            after in proptest::prelude::any::<u64>(),
            limit in 1..=MAX_AUDIT_PAGE,
        ) {
            let query = format!("limit={limit}&after={after}");
            proptest::prop_assert_eq!(audit_query(Some(&query)), Ok((Some(after), limit)));
        }

        #[test]
        fn any_query_is_parsed_or_refused_within_bounds(query in "\\PC{0,80}") {
            if let Ok((_, limit)) = audit_query(Some(&query)) {
                proptest::prop_assert!((1..=MAX_AUDIT_PAGE).contains(&limit));
            }
        }
    }

    #[test]
    fn security_errors_map_to_statuses() {
        let response = security_error(&SecurityError::NotAssignable(
            dawn_trust::TrustLevel::Verified,
        ));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = security_error(&SecurityError::NotRecorded {
            reason: "slow disk".into(),
        });
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
