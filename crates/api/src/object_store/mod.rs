//! The object-store API: Swift v1 (what the `swift` CLI and SDKs speak) with Synnefo's
//! Pithos extensions, over [`nefos_storage::Storage`]. Accounts are `AUTH_<project id>`.

mod account;
mod auth_v1;
mod bulk;
mod container;
mod error;
mod headers;
mod info;
mod listing;
mod manifest;
mod object;
mod pithos;
mod public;
mod range;
mod tempurl;

use axum::Router;
use axum::routing::{any, get};
use http::HeaderMap;
use nefos_identity::AuthContext;
use nefos_storage::Accessor;

pub use error::SwiftError;

use crate::ApiState;

/// The routes of a storage URL's `v1` (served under `/object/v1`, the catalog's endpoint,
/// and `/v1`, where Swift's v1 authentication puts it).
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        // Pithos: with a token, the accounts that share objects with the caller.
        .route("/", any(pithos::sharing_accounts))
        .route("/{account}", any(account::handle))
        .route("/{account}/", any(account::handle))
        .route("/{account}/{container}", any(container::handle))
        .route("/{account}/{container}/", any(container::handle))
        .route("/{account}/{container}/{*object}", any(object::handle))
}

/// Routes Swift clients expect at the root of the server.
pub(crate) fn root_router() -> Router<ApiState> {
    Router::new()
        .route("/info", get(info::handle))
        // Clients find the capabilities next to the `v1` of their storage URL.
        .route("/object/info", get(info::handle))
        .route("/auth/v1.0", get(auth_v1::handle))
        // Swift's healthcheck, at the server's root and beside the catalog's `v1`.
        .route("/healthcheck", get(healthcheck).head(healthcheck))
        .route("/object/healthcheck", get(healthcheck).head(healthcheck))
        .route("/public/{token}", get(public::handle).head(public::handle))
}

/// Swift types and sizes every answer, even those without a body (204s, and the 201s and
/// 202s of writes): `Content-Type: text/html; charset=UTF-8` (its WSGI framework's default)
/// and `Content-Length: 0` where a handler set neither. Some clients and Swift's own tests
/// read them. An error answer to a HEAD has no body and says so. Browsers are told not
/// to guess types (objects are served as typed by whoever wrote them).
pub(crate) async fn reply_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use http::header::{CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
    use http_body::Body as _;

    let head = request.method() == http::Method::HEAD;
    let mut response = next.run(request).await;
    if head && (response.status().is_client_error() || response.status().is_server_error()) {
        *response.body_mut() = axum::body::Body::empty();
        response.headers_mut().remove(CONTENT_LENGTH);
    }
    let empty = response.body().size_hint().exact() == Some(0);
    let headers = response.headers_mut();
    headers.insert(
        X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=UTF-8"),
        );
    }
    if empty && !headers.contains_key(CONTENT_LENGTH) {
        headers.insert(CONTENT_LENGTH, http::HeaderValue::from_static("0"));
    }
    response
}

/// Swift's `/healthcheck`: `OK` while the database answers, 503 otherwise.
async fn healthcheck(
    axum::extract::State(state): axum::extract::State<ApiState>,
) -> Result<&'static str, SwiftError> {
    crate::sqlx_ping(&state).await?;
    Ok("OK")
}

/// The caller of a Swift request: its token's context, or none for an anonymous request.
/// A token that does not validate is a 401, not an anonymous request.
pub(crate) async fn caller(
    state: &ApiState,
    headers: &HeaderMap,
) -> Result<Option<AuthContext>, SwiftError> {
    let Some(token) =
        headers::text(headers, "x-auth-token")?.or(headers::text(headers, "x-storage-token")?)
    else {
        return Ok(None);
    };
    match state.identity.validate(token).await {
        Ok(context) => Ok(Some(context)),
        Err(nefos_identity::IdentityError::Unauthorized { .. }) => Err(SwiftError::unauthorized()),
        Err(other) => Err(crate::ApiError::from(other).into()),
    }
}

/// Who a request is: its token's context or, without one, an anonymous caller with the
/// `Referer` it came with (which container ACLs may let read).
pub(crate) fn accessor<'a>(
    context: Option<&'a AuthContext>,
    request: &'a HeaderMap,
) -> Accessor<'a> {
    match context {
        Some(ctx) => Accessor::Token(ctx),
        None => Accessor::Anonymous {
            referrer: request.get(http::header::REFERER).and_then(headers::utf8),
        },
    }
}

/// The project of an `AUTH_<project>` account name.
pub(crate) fn project_of(account: &str) -> Result<&str, SwiftError> {
    account
        .strip_prefix("AUTH_")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            SwiftError::new(http::StatusCode::NOT_FOUND, format!("no account {account}"))
        })
}

/// Takes what only the account's owners may see out of an account's or container's
/// headers (`kind`), as Swift does for everyone else: the keys that sign URLs (they would
/// let them sign URLs of their own) and the container's ACLs.
pub(crate) fn hide_owner_headers(out: &mut HeaderMap, kind: &str) {
    for name in nefos_storage::SIGNING_KEY_NAMES {
        out.remove(format!("x-{kind}-meta-{name}"));
    }
    out.remove("x-container-read");
    out.remove("x-container-write");
}

/// An anonymous caller is told to authenticate rather than that it is forbidden.
pub(crate) fn deny(context: Option<&AuthContext>, error: SwiftError) -> SwiftError {
    if context.is_none() && error.status == http::StatusCode::FORBIDDEN {
        SwiftError::unauthorized()
    } else {
        error
    }
}

/// Synnefo's clients (kamaki) name an account by its user's id, where nefos names it
/// `AUTH_<project>`: a path whose account is a user's id is rewritten to that user's
/// personal project's account before routing, so every handler sees one naming.
pub(crate) async fn synnefo_account_names(
    axum::extract::State(state): axum::extract::State<ApiState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path();
    let Some(rest) = path.strip_prefix('/') else {
        return next.run(request).await;
    };
    let (account, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    if account.is_empty() || account.starts_with("AUTH_") {
        return next.run(request).await;
    }
    let decoded = percent_encoding::percent_decode_str(account).decode_utf8_lossy();
    let project = match state.storage.resolve_account(&decoded).await {
        Ok(Some(project)) => project,
        Ok(None) => return next.run(request).await,
        Err(error) => return axum::response::IntoResponse::into_response(SwiftError::from(error)),
    };
    let separator = if tail.is_empty() && !rest.contains('/') {
        ""
    } else {
        "/"
    };
    let mut rewritten = format!("/AUTH_{project}{separator}{tail}");
    if let Some(query) = request.uri().query() {
        rewritten.push('?');
        rewritten.push_str(query);
    }
    if let Ok(uri) = rewritten.parse() {
        *request.uri_mut() = uri;
    }
    next.run(request).await
}
