//! Signing in and out. A wrong token gets 401 and nothing more; attempts are limited per
//! address (`review.login_per_minute`); a session cookie is `HttpOnly` and `SameSite=Strict`.
//! The name given is recorded with every decision and bundle of the session.

use super::layout;
use super::web::{self, Fail, Signed};
use super::Dashboard;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{self, HeaderMap};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::html;
use std::net::SocketAddr;
use std::sync::Arc;

/// Longest reviewer name, in characters.
const NAME_MAX: usize = 60;

#[derive(serde::Deserialize, Default)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path of this dashboard, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn login_page(next: &str, problem: Option<&str>, name: &str) -> maud::Markup {
    layout::bare(
        "Sign in",
        html! {
            section.card.login {
                h1 { "Sign in to the dashboard" }
                @if let Some(p) = problem { p.error role="alert" { (p) } }
                form #login method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="name" { "Your name" }
                    input type="text" id="name" name="name" required maxlength="60" autocomplete="name" value=(name)
                        placeholder="Recorded with your decisions";
                    label for="token" { "Admin token" }
                    input type="password" id="token" name="token" required autocomplete="current-password";
                    button type="submit" { "Sign in" }
                }
                p.hint {
                    "The admin token was printed once when faceprobe first started. Lost it? Set "
                    code { "FACEPROBE_ADMIN_TOKEN" } ", or delete " code { "admin-token.sha256" }
                    " in the data directory and restart for a new one."
                }
            }
        },
    )
}

pub async fn form(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if web::cookie(&headers)
        .and_then(|id| d.access.session(&id))
        .is_some()
    {
        return web::see(&next);
    }
    web::html(login_page(&next, None, ""))
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    token: String,
    next: Option<String>,
}

pub async fn submit(
    State(d): State<Arc<Dashboard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let name: String = f.name.trim().chars().take(NAME_MAX).collect();
    if !d.access.may_try(peer) {
        tracing::warn!(peer = %peer.ip(), "dashboard sign-in attempts over the limit");
        let page = login_page(
            &next,
            Some("Too many sign-in attempts from your address. Wait a minute, then try again."),
            &name,
        );
        return (StatusCode::TOO_MANY_REQUESTS, web::html(page)).into_response();
    }
    if name.is_empty() {
        let page = login_page(
            &next,
            Some("Give your name: it is recorded with your decisions."),
            "",
        );
        return (StatusCode::BAD_REQUEST, web::html(page)).into_response();
    }
    let Some(id) = d.access.login(&f.token, &name) else {
        tracing::info!(peer = %peer.ip(), "dashboard sign-in refused");
        let page = login_page(&next, Some("Wrong token."), &name);
        return (StatusCode::UNAUTHORIZED, web::html(page)).into_response();
    };
    tracing::info!(peer = %peer.ip(), reviewer = %layout::shown(&name, NAME_MAX), "dashboard sign-in");
    let mut r = web::see(&next);
    r.headers_mut().insert(
        header::SET_COOKIE,
        web::session_cookie(Some(&id), d.access.ttl_secs(), &headers),
    );
    r
}

#[derive(serde::Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Result<Response, Fail> {
    me.check(&f.csrf)?;
    if let Some(id) = web::cookie(&headers) {
        d.access.logout(&id);
    }
    let mut r = web::see("/login");
    r.headers_mut()
        .insert(header::SET_COOKIE, web::session_cookie(None, 0, &headers));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(safe_next(Some("/flags?level=watch")), "/flags?level=watch");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
