//! Matching an image found elsewhere (a face search engine's result, a reply to an access
//! request): upload it, see the tokens it matches with their confidence and every fetch behind
//! them, linked to the clients that made them, and attach it to a case so the next bundle
//! carries it. Uploads are decoded within `[match]`'s limits before anything is stored.

use super::layout::{self, shown, when, when_short, Nav};
use super::thumbs;
use super::web::{self, blocking, Fail, Signed};
use super::Dashboard;
use crate::canary::matcher::{decode_image, How, Match};
use crate::detect::Client;
use crate::store::clients::{self, HistoryEntry};
use crate::store::now_ms;
use crate::store::reviews::{self, FoundEntry};
use crate::store::tokens::{self, Fetch, TokenRow};
use axum::extract::{Multipart, Path, State};
use axum::response::Response;
use axum::{Extension, Form};
use maud::html;
use rusqlite::TransactionBehavior;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Uploads listed on the match page.
const RECENT: usize = 20;

pub async fn form(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
) -> Result<Response, Fail> {
    let recent = blocking(&d, |_, conn| Ok(reviews::recent_found(conn, RECENT)?)).await?;
    let limit = d.config.matching.max_file_bytes;
    let body = html! {
        div.heading { h1 { "Match an image found elsewhere" } }
        div.columns {
            section.card {
                h2 { "Upload" }
                p { "An image that turned up somewhere else — in a face search engine's results, a dataset, a reply to an access request. "
                    "faceprobe traces it to the canary it was made from, even re-encoded, resized or cropped, and to every fetch of that canary." }
                form #match method="post" action="/match" enctype="multipart/form-data" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label for="image" { "Image file (JPEG, PNG, WebP, GIF, BMP or TIFF, up to " (super::client::size(limit)) ")" }
                    input type="file" id="image" name="image" accept="image/*" required;
                    button type="submit" { "Match" }
                }
                p.hint { "The image is kept in the store with who uploaded it, so that it can be attached to a case." }
            }
            section.card {
                h2 { "Uploaded before" }
                @if recent.is_empty() {
                    p.muted { "Nothing uploaded yet." }
                } @else {
                    (uploads(&recent))
                }
            }
        }
    };
    Ok(web::html(layout::page(
        "Match an image",
        Nav::Match,
        &me,
        body,
    )))
}

fn uploads(rows: &[FoundEntry]) -> maud::Markup {
    html! {
        ul.found {
            @for f in rows {
                li {
                    a href=(format!("/found/{}", f.id)) { (shown(&f.name, 60)) }
                    span.muted { " · " (when_short(f.uploaded_ms)) " by " (shown(&f.uploaded_by, 30)) }
                    @if let Some(k) = &f.case_key { " · case " (layout::client_link(k)) }
                }
            }
        }
    }
}

pub async fn upload(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    mut parts: Multipart,
) -> Result<Response, Fail> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        Fail::Bad(format!(
            "The upload could not be read ({e}). Files over the limit of match.max_file_bytes are refused."
        ))
    };
    let (mut csrf, mut image) = (String::new(), None);
    while let Some(field) = parts.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(unreadable)?,
            Some("image") => {
                let name = field.file_name().unwrap_or("upload").to_string();
                image = Some((name, field.bytes().await.map_err(unreadable)?.to_vec()));
            }
            _ => {}
        }
    }
    me.check(&csrf)?;
    let (name, bytes) = image
        .filter(|(_, b)| !b.is_empty())
        .ok_or_else(|| Fail::Bad("Choose an image file to upload.".into()))?;
    let id = blocking(&d, move |d, conn| {
        let (bytes, _) = decode_image(&shown(&name, 200), bytes, &d.config.matching)
            .map_err(|e| Fail::Bad(format!("The image was not stored: {e}.")))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        Ok(reviews::add_found(
            conn,
            &name,
            &sha,
            &bytes,
            &me.reviewer,
            now_ms(),
        )?)
    })
    .await?;
    Ok(web::see(&format!("/found/{id}")))
}

/// A token matched, with its row and its fetches.
struct Traced {
    m: Match,
    row: Option<TokenRow>,
    fetches: Vec<Fetch>,
}

pub async fn page(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    Path(id): Path<i64>,
) -> Result<Response, Fail> {
    let (found, traced, options, indexed) = blocking(&d, move |d, conn| {
        let f = reviews::found(conn, id)?
            .ok_or_else(|| Fail::NotFound(format!("No uploaded image {id}.")))?;
        let (bytes, img) = decode_image(&f.name, f.image.clone(), &d.config.matching)
            .map_err(|e| Fail::Bad(e.to_string()))?;
        let matcher = d.matcher(conn)?;
        let mut traced = Vec::new();
        let mut options: Vec<String> = Vec::new();
        for m in matcher.match_image(conn, &bytes, &img)? {
            let mut fetches = tokens::fetches(conn, &m.token)?;
            // Who took the image first; visits of the trap page that shares its token after.
            fetches.sort_by_key(|f| (f.kind != "canary", f.ts_ms, f.event_id));
            for f in &fetches {
                if !options.contains(&f.client_key) {
                    options.push(f.client_key.clone());
                }
                // The cluster a fetcher is in is an actor of its own.
                if let Some(k) =
                    clients::get::<Client>(conn, &f.client_key)?.and_then(|c| c.cluster)
                {
                    if !options.contains(&k) {
                        options.push(k);
                    }
                }
            }
            traced.push(Traced {
                row: tokens::by_token(conn, &m.token)?,
                m,
                fetches,
            });
        }
        Ok((f, traced, options, matcher.len()))
    })
    .await?;
    let body = html! {
        div.heading {
            h1 { "Found image " span.key { (shown(&found.name, 60)) } }
        }
        div.columns {
            section.card {
                img.found src=(format!("/found/{}/image.jpg", found.id)) alt="The uploaded image";
                dl.facts {
                    dt { "Uploaded" } dd { (when(found.uploaded_ms)) " by " (shown(&found.uploaded_by, 60)) }
                    dt { "SHA-256" } dd { code { (found.sha256) } }
                    dt { "Size" } dd { (super::client::size(found.image.len() as u64)) }
                    @if let Some(k) = &found.case_key { dt { "Attached to" } dd { (layout::client_link(k)) } }
                }
            }
            section.card {
                h2 { "Attach to a case" }
                @if options.is_empty() {
                    p.muted { "It matches no fetched canary, so there is no client to attach it to." }
                } @else {
                    form.attach method="post" action=(format!("/found/{}/attach", found.id)) {
                        input type="hidden" name="csrf" value=(me.csrf);
                        label for="key" { "Client or cluster" }
                        select id="key" name="key" {
                            @for k in &options { option value=(k) { (shown(k, 64)) } }
                        }
                        button type="submit" { "Attach" }
                    }
                    p.hint { "Attaching opens the case if it is not open yet; the next evidence bundle carries the image and its match." }
                }
            }
        }
        section.card {
            h2 { "Matches" }
            @if traced.is_empty() {
                p { "No canary matches this image (" (layout::int(indexed as u64)) " canaries searched). It may be one of the site's own photos, or a canary served after the index was loaded (it is reloaded every few minutes)." }
            } @else {
                div.scroll {
                    table #matches .stack {
                        thead { tr { th { "Canary" } th { "Token" } th.num { "Confidence" } th { "How" } th { "Minted" } th { "Fetches" } } }
                        tbody {
                            @for t in &traced {
                                tr.match {
                                    td data-label="Canary" { img src=(format!("/canaries/{}.jpg", t.m.token)) alt=(format!("Canary {}", t.m.token)) width="72" height="72"; }
                                    td data-label="Token" { code { (t.m.token.to_string()) } }
                                    td.num.confidence data-label="Confidence" { (format!("{:.3}", t.m.confidence)) }
                                    td data-label="How" { (match t.m.how { How::Xmp => "its own marking (XMP)", How::Hash => "picture (hashes, re-drawn)" }) }
                                    td data-label="Minted" {
                                        @if let Some(r) = &t.row {
                                            (when_short(r.created_ms)) br;
                                            span.muted { "for " (layout::client_link(&r.client_key)) }
                                        }
                                    }
                                    td data-label="Fetches" {
                                        @if t.fetches.is_empty() { span.muted { "never fetched" } }
                                        ul.fetches {
                                            @for f in &t.fetches {
                                                li {
                                                    @if f.kind == "canary" { span.kind.canary { "image" } }
                                                    @else if f.kind == "trap" { span.kind.trap { "its trap page" } }
                                                    @else { span.kind { (shown(&f.kind, 20)) } }
                                                    " " (when(f.ts_ms)) " · "
                                                    a.client href=(layout::client_href(&f.client_key)) { (shown(&f.client_key, 40)) }
                                                    " · " (shown(f.client_ip.as_deref().or(f.ip_pseudonym.as_deref()).unwrap_or("—"), 45))
                                                    " · event " (f.event_id) br;
                                                    span.muted { (shown(&f.method, 10)) " " (shown(&f.path, 100)) " → " (f.status) " · " (shown(f.user_agent.as_deref().unwrap_or("—"), 100)) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(web::html(layout::page(
        "Found image",
        Nav::Match,
        &me,
        body,
    )))
}

/// `/found/{id}/image.jpg`: the upload, decoded and re-encoded small.
pub async fn image(
    State(d): State<Arc<Dashboard>>,
    Extension(_me): Extension<Signed>,
    Path(id): Path<i64>,
) -> Result<Response, Fail> {
    let bytes = blocking(&d, move |d, conn| {
        let f = reviews::found(conn, id)?
            .ok_or_else(|| Fail::NotFound(format!("No uploaded image {id}.")))?;
        let (_, img) = decode_image(&f.name, f.image, &d.config.matching)
            .map_err(|e| Fail::Bad(e.to_string()))?;
        thumbs::jpeg(&img, 480)
    })
    .await?;
    Ok(web::asset("image/jpeg", bytes))
}

#[derive(serde::Deserialize)]
pub struct AttachForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
}

pub async fn attach(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    Path(id): Path<i64>,
    Form(f): Form<AttachForm>,
) -> Result<Response, Fail> {
    me.check(&f.csrf)?;
    let key = f.key.trim().to_string();
    let k = key.clone();
    blocking(&d, move |_, conn| {
        let now = now_ms();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let client = clients::get::<Client>(&tx, &k)?.ok_or_else(|| {
            Fail::NotFound(format!("No client or cluster {} is known.", shown(&k, 80)))
        })?;
        let found = reviews::found(&tx, id)?
            .ok_or_else(|| Fail::NotFound(format!("No uploaded image {id}.")))?;
        reviews::attach_found(&tx, id, &k)?;
        let why = format!(
            "found image {} attached by {}",
            found.name.chars().take(100).collect::<String>(),
            me.reviewer
        );
        if reviews::open_case(&tx, &k, &me.reviewer, &why, now)? {
            for m in client
                .members
                .iter()
                .map(String::as_str)
                .chain([k.as_str()])
            {
                clients::hold_for_case(&tx, m, now)?;
            }
        }
        clients::append_history(
            &tx,
            &HistoryEntry {
                key: &k,
                at_ms: now,
                level: client.level.map(|l| l.as_str()),
                score: client.score,
                at_event: 0,
                requests: client.counts.requests,
                note: &why,
            },
            None,
        )?;
        tx.commit()?;
        Ok(())
    })
    .await?;
    Ok(web::see(&format!(
        "{}?done=attached#case",
        layout::client_href(&key)
    )))
}
