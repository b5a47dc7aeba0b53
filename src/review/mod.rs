//! The review dashboard on the admin listener: operators see what was flagged, confirm or
//! dismiss it, match found images and export cases, in the browser. Server-rendered HTML
//! (maud), usable without JavaScript, behind a token login. It reads the store and writes only
//! reviews, cases (with their holds and history lines), found images and the allow-list; it
//! never touches the request path.
//!
//! One file per part: `access` (token, sessions, login limit), `web` (headers, guard, CSRF,
//! errors), `layout` (the frame and small pieces), `chart`, then one file per page.

pub mod access;
mod activity;
mod chart;
mod client;
mod db;
mod decide;
mod export;
mod flags;
mod fleet;
mod found;
mod layout;
mod login;
mod overview;
mod rollup;
mod thumbs;
mod web;

use crate::canary::matcher::Matcher;
use crate::config::Config;
use crate::metrics::Metrics;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{self, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub use access::Access;
pub use export::BUNDLES_DIR;

/// Canary thumbnails kept in memory (about 5 KB each).
const THUMBS: usize = 512;
/// How long a loaded match index is used before it is loaded again when tokens were added.
const MATCHER_FRESH: Duration = Duration::from_secs(300);

/// Why the dashboard could not start; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(
        "serve.admin_listen = {0} is not a loopback address and no admin token is given: set \
         the environment variable {env}, or [review] token_file = \"PATH\" (the token on its \
         first line), or keep admin_listen on 127.0.0.1",
        env = access::TOKEN_ENV
    )]
    NoToken(SocketAddr),
    #[error("the admin token is too short: use 16 characters or more")]
    ShortToken,
    #[error("admin token file {path}: {message}")]
    TokenFile { path: PathBuf, message: String },
}

/// What every dashboard request shares.
pub struct Dashboard {
    config: Config,
    access: Access,
    db: db::Db,
    metrics: Arc<Metrics>,
    /// Requests per minute over the last week, for the overview.
    rollup: Mutex<rollup::Rollup>,
    started: Instant,
    /// Canary thumbnails by token: re-drawing one costs a few milliseconds.
    thumbs: Mutex<lru::LruCache<Vec<u8>, Bytes>>,
    /// The match index, loaded at the first upload.
    matcher: Mutex<Option<Loaded>>,
    /// One bundle build at a time.
    exports: tokio::sync::Semaphore,
    /// The fleet store's connections, made at the first visit of the fleet page.
    fleet: fleet::Pool,
}

struct Loaded {
    max_token: i64,
    at: Instant,
    index: Arc<Matcher>,
}

impl Dashboard {
    pub fn new(config: Config, access: Access, metrics: Arc<Metrics>) -> Dashboard {
        Dashboard {
            db: db::Db::new(config.store.data_dir.clone()),
            config,
            access,
            metrics,
            rollup: Mutex::new(rollup::Rollup::default()),
            started: Instant::now(),
            thumbs: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(THUMBS).unwrap_or(NonZeroUsize::MIN),
            )),
            matcher: Mutex::new(None),
            exports: tokio::sync::Semaphore::new(1),
            fleet: fleet::Pool::new(),
        }
    }

    /// The match index: loaded at first use, loaded again when tokens were added since and
    /// it is older than `MATCHER_FRESH` (a canary's own marking is matched without it).
    fn matcher(&self, conn: &rusqlite::Connection) -> Result<Arc<Matcher>, web::Fail> {
        let mut loaded = self.matcher.lock().unwrap_or_else(|p| p.into_inner());
        let max_token: i64 =
            conn.query_row("SELECT coalesce(max(id), 0) FROM tokens", [], |r| r.get(0))?;
        if let Some(l) = loaded.as_ref() {
            if l.max_token == max_token || l.at.elapsed() < MATCHER_FRESH {
                return Ok(l.index.clone());
            }
        }
        let started = Instant::now();
        let index = Arc::new(Matcher::load(conn, self.config.matching.clone())?);
        tracing::info!(
            tokens = index.len(),
            ms = started.elapsed().as_millis() as u64,
            "dashboard: match index loaded"
        );
        *loaded = Some(Loaded {
            max_token,
            at: Instant::now(),
            index: index.clone(),
        });
        Ok(index)
    }
}

/// Every route of the admin listener.
pub fn router(d: Arc<Dashboard>) -> Router {
    // Room for the largest image `match` takes, and the form around it.
    let upload_limit = usize::try_from(d.config.matching.max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    let private = Router::new()
        .route("/", get(overview::page))
        .route("/flags", get(flags::page))
        .route("/fleet", get(fleet::page))
        .route("/clients/{key}", get(client::page))
        .route("/clients/{key}/review", post(decide::review))
        .route("/clients/{key}/export", post(export::build))
        .route("/bundles/{id}/download", get(export::download))
        .route("/cases", get(export::cases))
        .route("/allow", get(decide::allow_list))
        .route(
            "/match",
            get(found::form)
                .post(found::upload)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/found/{id}", get(found::page))
        .route("/found/{id}/image.jpg", get(found::image))
        .route("/found/{id}/attach", post(found::attach))
        .route("/canaries/{file}", get(thumbs::canary))
        .route("/logout", post(login::logout));
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics));
    let (private, open) = match d.config.review.open_metrics {
        true => (private, probes),
        false => (private.merge(probes), Router::new()),
    };
    let private = private.route_layer(middleware::from_fn_with_state(d.clone(), web::guard));
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/static/app.css", get(css))
        .merge(open)
        .merge(private)
        .fallback(web::not_found)
        .layer(middleware::from_fn(web::secure))
        .with_state(d)
}

/// Serves the dashboard on `listener` until the task is dropped.
pub async fn serve(config: Config, access: Access, listener: TcpListener, metrics: Arc<Metrics>) {
    let d = Arc::new(Dashboard::new(config, access, metrics));
    // Ends with this future, which the edge drops at shutdown.
    let _following = AbortOnDrop(tokio::spawn(overview::follow(d.clone())));
    let app = router(d).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the dashboard stopped");
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(axum::extract::State(d): axum::extract::State<Arc<Dashboard>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        d.metrics.render(),
    )
        .into_response()
}

async fn css() -> Response {
    web::asset("text/css; charset=utf-8", layout::CSS)
}
