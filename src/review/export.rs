//! Evidence from the browser: build a client's or cluster's bundle (`evidence build`, with the
//! reviewer as its builder, into `bundles/` in the data directory), download a bundle built,
//! and the list of cases with their bundles. One build runs at a time: a large one holds a
//! few hundred MB for a few seconds.

use super::client::size;
use super::layout::{self, int, shown, when_short, Nav};
use super::web::{self, blocking, Fail, Signed};
use super::Dashboard;
use crate::detect::Client;
use crate::evidence::bundle::{self, Request};
use crate::store::{clients, now_ms, reviews};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use bytes::Bytes;
use maud::html;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// The folder of the data directory that bundles built from the dashboard go to.
pub const BUNDLES_DIR: &str = "bundles";

#[derive(serde::Deserialize)]
pub struct ExportForm {
    #[serde(default)]
    csrf: String,
}

pub async fn build(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    Path(key): Path<String>,
    Form(f): Form<ExportForm>,
) -> Result<Response, Fail> {
    me.check(&f.csrf)?;
    let _one_at_a_time = d
        .exports
        .acquire()
        .await
        .map_err(|_| Fail::Internal("the dashboard is shutting down".into()))?;
    let k = key.clone();
    let dd = d.clone();
    tokio::task::spawn_blocking(move || -> Result<(), Fail> {
        let dir = dd.config.store.data_dir.join(BUNDLES_DIR);
        std::fs::create_dir_all(&dir)?;
        let name: String = k
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(64)
            .collect();
        let out: PathBuf = dir.join(format!("case-{name}-{}.zip", now_ms()));
        let built = bundle::build(
            &dd.config,
            &Request {
                key: &k,
                out: &out,
                found: &[],
                command: format!("faceprobe dashboard: export by {}", me.reviewer),
                built_by: Some(me.reviewer.clone()),
            },
        )
        .map_err(|e| match e {
            crate::evidence::EvidenceError::UnknownActor(_) => {
                Fail::NotFound(format!("No client or cluster {} is known.", shown(&k, 80)))
            }
            e => Fail::Bad(format!("The bundle could not be built: {e}")),
        })?;
        tracing::info!(
            key = %k,
            file = %built.file.display(),
            sha256 = %built.sha256,
            by = %me.reviewer,
            "evidence bundle built from the dashboard"
        );
        Ok(())
    })
    .await
    .map_err(|e| Fail::Internal(format!("the bundle build stopped: {e}")))??;
    Ok(web::see(&format!(
        "{}?done=exported#case",
        layout::client_href(&key)
    )))
}

pub async fn download(
    State(d): State<Arc<Dashboard>>,
    Extension(_me): Extension<Signed>,
    Path(id): Path<i64>,
) -> Result<Response, Fail> {
    let row = blocking(&d, move |_, conn| Ok(reviews::bundle(conn, id)?))
        .await?
        .ok_or_else(|| Fail::NotFound(format!("No bundle {id} was built.")))?;
    let file = std::fs::File::open(&row.file).map_err(|e| {
        Fail::NotFound(format!(
            "Bundle {} was built into {}, which cannot be read now ({e}). It was moved or deleted; build it again.",
            row.bundle, row.file
        ))
    })?;
    // A bundle's id is made of letters, digits and dashes; anything else is left out.
    let name: String = row
        .bundle
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let body = Body::from_stream(chunks(file));
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.zip\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if length > 0 {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(r)
}

/// The file's bytes, read on the blocking pool a chunk at a time.
fn chunks(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut buf = vec![0u8; 256 * 1024];
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if send.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break; // the download was cancelled
                    }
                }
                Err(e) => {
                    let _ = send.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    futures_util::stream::unfold(receive, |mut r| async move {
        r.recv().await.map(|item| (item, r))
    })
}

/// One case as the list shows it.
struct CaseRow {
    case: reviews::Case,
    client: Option<Client>,
    bundles: Vec<reviews::BundleRow>,
}

pub async fn cases(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
) -> Result<Response, Fail> {
    let rows = blocking(&d, |_, conn| {
        let mut out = Vec::new();
        for case in reviews::cases(conn)? {
            out.push(CaseRow {
                client: clients::get::<Client>(conn, &case.key)?,
                bundles: reviews::bundles(conn, &case.key)?,
                case,
            });
        }
        Ok(out)
    })
    .await?;
    let body = html! {
        div.heading {
            h1 { "Cases" }
            p.muted { "A case keeps its client's records past retention. Open one by confirming a flag or building a bundle." }
        }
        @if rows.is_empty() {
            p.empty { "No case yet. Open a flagged client and confirm it, or build its evidence bundle." }
        } @else {
            div.scroll {
                table #cases .stack {
                    thead { tr { th { "Client" } th { "Level" } th { "Opened" } th { "By" } th { "Why" } th.num { "Bundles" } th { "Latest bundle" } } }
                    tbody {
                        @for r in &rows {
                            tr {
                                td data-label="Client" { (layout::client_link(&r.case.key)) }
                                td data-label="Level" { @if let Some(c) = &r.client { (layout::level(c.level.map(|l| l.as_str()), c.dismissed)) } }
                                td data-label="Opened" { (when_short(r.case.opened_ms)) }
                                td data-label="By" { (shown(&r.case.opened_by, 40)) }
                                td data-label="Why" { (shown(&r.case.note, 200)) }
                                td.num data-label="Bundles" { (int(r.bundles.len() as u64)) }
                                td data-label="Latest bundle" {
                                    @if let Some(b) = r.bundles.first() {
                                        a.download href=(format!("/bundles/{}/download", b.id)) { (when_short(b.built_ms)) }
                                        " · " span.nowrap { (size(b.bytes.max(0) as u64)) } " · " (shown(&b.built_by, 30))
                                    } @else { span.muted { "none yet" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(web::html(layout::page("Cases", Nav::Cases, &me, body)))
}
