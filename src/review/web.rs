//! The dashboard's HTTP plumbing: the headers every answer carries (a strict CSP among them),
//! the guard that lets only signed-in people past (GET goes to the login page, anything else
//! gets 401), the session cookie, the CSRF check every form handler makes, the store work run
//! off the async threads, and the error pages. No handler may answer without passing here.

use super::access;
use super::layout;
use super::Dashboard;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;
use rusqlite::Connection;
use std::sync::Arc;

/// No script, no inline style, no frames, forms only to the dashboard itself; images from
/// the dashboard (thumbnails) or inline SVG. Works because nothing here needs JavaScript.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A signed-in person, as handlers see them.
#[derive(Debug, Clone)]
pub struct Signed {
    pub reviewer: String,
    pub csrf: String,
}

impl Signed {
    /// Refuses a form whose CSRF field is not this session's.
    pub fn check(&self, given: &str) -> Result<(), Fail> {
        match access::csrf_ok(&self.csrf, given) {
            true => Ok(()),
            false => Err(Fail::Forbidden(
                "This form was not sent by this dashboard session (its CSRF token is missing or \
                 out of date). Go back, reload the page and send it again."
                    .into(),
            )),
        }
    }
}

/// Why a request failed; each becomes a page that says what to do.
#[derive(Debug)]
pub enum Fail {
    NotFound(String),
    Bad(String),
    Forbidden(String),
    Internal(String),
}

/// Errors of the store and of the library's parts: shown to the signed-in operator (they
/// say what went wrong) and logged.
macro_rules! internal {
    ($($t:ty),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Fail {
                Fail::Internal(e.to_string())
            }
        }
    )*};
}
internal!(
    crate::store::StoreError,
    rusqlite::Error,
    crate::evidence::EvidenceError,
    std::io::Error
);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            Fail::NotFound(t) => (StatusCode::NOT_FOUND, "Not found", t),
            Fail::Bad(t) => (StatusCode::BAD_REQUEST, "Cannot do that", t),
            Fail::Forbidden(t) => (StatusCode::FORBIDDEN, "Refused", t),
            Fail::Internal(t) => {
                tracing::error!(error = %t, "dashboard request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", t)
            }
        };
        (status, html(layout::message(title, &text))).into_response()
    }
}

/// An HTML page.
pub fn html(page: Markup) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page.into_string(),
    )
        .into_response()
}

/// After a form: back to a page (303, so a reload does not send the form again).
pub fn see(url: &str) -> Response {
    Redirect::to(url).into_response()
}

/// Runs store work on the blocking pool with a pooled connection, so a slow query or a
/// bundle build never holds up the listener's thread (which also accepts the public side's
/// connections).
pub async fn blocking<T, F>(d: &Arc<Dashboard>, f: F) -> Result<T, Fail>
where
    T: Send + 'static,
    F: FnOnce(&Dashboard, &mut Connection) -> Result<T, Fail> + Send + 'static,
{
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = d.db.take()?;
        let out = f(&d, &mut conn);
        d.db.give(conn);
        out
    })
    .await
    .map_err(|e| Fail::Internal(format!("a dashboard task stopped: {e}")))?
}

/// The headers on every answer, pages and errors alike.
pub async fn secure(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

/// Lets a request through only with a live session, which handlers then take as
/// `Extension<Signed>`.
pub async fn guard(State(d): State<Arc<Dashboard>>, mut req: Request, next: Next) -> Response {
    if let Some(s) = cookie(req.headers()).and_then(|id| d.access.session(&id)) {
        req.extensions_mut().insert(Signed {
            reviewer: s.reviewer,
            csrf: s.csrf,
        });
        return next.run(req).await;
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        let here = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let next = percent_encoding::utf8_percent_encode(here, layout::QUERY_SET);
        return see(&format!("/login?next={next}"));
    }
    let mut r = html(layout::message(
        "Sign in first",
        "Your session has ended or you are not signed in. Sign in again, then send the form again.",
    ));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r
}

/// The session id the browser sent, if any.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(access::COOKIE)?.strip_prefix('='))
        .map(str::to_string)
        .find(|v| !v.is_empty())
}

/// The cookie that opens (`Some(id)`) or ends (`None`) a session. `Secure` when the admin
/// listener is reached through TLS (a proxy in front says so with `X-Forwarded-Proto`).
pub fn session_cookie(id: Option<&str>, max_age: u64, headers: &HeaderMap) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let (value, age) = match id {
        Some(id) => (id, max_age),
        None => ("", 0),
    };
    let text = format!(
        "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={age}{}",
        access::COOKIE,
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A response of bytes with a content type, cached privately for an hour (thumbnails, CSS).
pub fn asset(content_type: &'static str, body: impl Into<Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            ),
        ],
        body.into(),
    )
        .into_response()
}

/// The fallback for every path the dashboard does not have.
pub async fn not_found() -> Response {
    Fail::NotFound("The dashboard has no such page.".into()).into_response()
}
