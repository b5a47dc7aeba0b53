//! The page of one client or cluster: why it was flagged and the events behind each reason,
//! its timeline, the robots.txt it was served and the rules it broke, the canaries it took
//! (re-rendered from their seeds), the site's images it took, its requests (paged), its
//! addresses, agents and members, its flag history, the reviews, and its case with the
//! bundles built. Everything it shows of the client's requests is escaped and made visible.

use super::activity::{self, Activity, Actor, Request};
use super::chart::{self, series, Bars, Series};
use super::layout::{self, int, shown, when, when_short, Nav};
use super::web::{self, blocking, Fail, Signed};
use super::Dashboard;
use crate::detect::Client;
use crate::store::reviews::{self, BundleRow, Case, Found, Review};
use crate::store::{clients, now_ms};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Arc;

const REQUESTS_PER_PAGE: usize = 50;
const CANARIES_PER_PAGE: usize = 24;
const SITE_IMAGE_ROWS: usize = 50;
const MEMBERS_SHOWN: usize = 200;

/// The timeline's series, in the order of `activity::SERIES`.
const TIMELINE: [Series; 6] = [
    series("Pages", chart::PAGES),
    series("Site images", chart::SITE_IMAGES),
    series("Canaries", chart::CANARIES),
    series("Trap pages", chart::TRAPS),
    series("robots.txt", chart::ROBOTS),
    series("Other", chart::OTHER),
];

#[derive(serde::Deserialize, Default)]
pub struct Params {
    kind: Option<String>,
    after: Option<i64>,
    canaries: Option<usize>,
    done: Option<String>,
}

/// Everything the page shows.
struct View {
    client: Client,
    members: Vec<Client>,
    activity: Activity,
    reason_events: HashMap<i64, Request>,
    requests: Vec<Request>,
    more_requests: bool,
    canaries: Vec<activity::CanaryTaken>,
    history: Vec<clients::HistoryRow>,
    reviews: Vec<Review>,
    case: Option<Case>,
    bundles: Vec<BundleRow>,
    found: Vec<Found>,
    allowed: bool,
}

pub async fn page(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    Path(key): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, Fail> {
    let kind = p
        .kind
        .clone()
        .filter(|k| activity::KINDS.contains(&k.as_str()));
    let after = p.after.unwrap_or(0);
    let k = key.clone();
    let kind_q = kind.clone();
    let view = blocking(&d, move |d, conn| {
        let Some(client) = clients::get::<Client>(conn, &k)? else {
            return Ok(None);
        };
        let mut members = Vec::new();
        let mut agents = HashMap::new();
        if client.is_cluster() {
            for m in &client.members {
                if let Some(c) = clients::get::<Client>(conn, m)? {
                    agents.insert(c.key.clone(), c.agent.clone().unwrap_or_default());
                    members.push(c);
                }
            }
        } else {
            agents.insert(client.key.clone(), client.agent.clone().unwrap_or_default());
        }
        let actor = Actor {
            keys: match client.is_cluster() {
                true => client.members.clone(),
                false => vec![client.key.clone()],
            },
            agents,
            first_ms: client.first_ms,
            last_ms: client.last_ms,
        };
        // A second connection reads half of a long span beside this one.
        let (activity, helper) = activity::read(conn, d.db.take().ok(), &actor)?;
        if let Some(h) = helper {
            d.db.give(h);
        }
        let mut ids: Vec<i64> = client
            .reasons
            .iter()
            .flat_map(|r| r.events.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let reason_events = activity::events(conn, &ids)?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let (requests, more_requests) =
            activity::requests(conn, &activity, kind_q.as_deref(), after, REQUESTS_PER_PAGE)?;
        let canaries = activity::canaries(conn, &actor)?;
        members.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(Some(View {
            members,
            activity,
            reason_events,
            requests,
            more_requests,
            canaries,
            history: clients::history(conn, &k)?,
            reviews: reviews::of(conn, &k)?,
            case: reviews::case(conn, &k)?,
            bundles: reviews::bundles(conn, &k)?,
            found: reviews::found_for_case(conn, &k)?,
            allowed: conn
                .prepare_cached("SELECT 1 FROM allow_list WHERE key = ?1")?
                .exists([&k])?,
            client,
        }))
    })
    .await?;
    let Some(v) = view else {
        return Err(Fail::NotFound(format!(
            "No client or cluster {} is known. Keys come from the Flags page or `faceprobe clients`.",
            shown(&key, 80)
        )));
    };
    let now = now_ms();
    let c = &v.client;
    let what = if c.is_cluster() { "Cluster" } else { "Client" };
    let here = layout::client_href(&c.key);
    let body = html! {
        div.heading {
            h1 { (what) " " span.key { (shown(&c.key, 64)) } }
            div.badges {
                (layout::level(c.level.map(|l| l.as_str()), c.dismissed || v.allowed))
                span.score { "score " (format!("{:.0}", c.score)) }
                @if v.case.is_some() { span.tag.confirmed { "Case open" } }
            }
        }
        @if let Some(text) = p.done.as_deref().and_then(done_text) { (layout::notice(text)) }
        p.lead { (super::flags::why(c)) }
        div.columns {
            (summary(&v, now))
            (review_panel(&v, &me, &here))
        }
        (case_panel(&v, &me, &here))
        section.card #timeline {
            h2 { "Timeline" }
            @if v.activity.events == 0 {
                p.muted { "None of its requests are left in the store (deleted after the retention period)." }
            } @else {
                (timeline(&v.activity, c))
            }
        }
        (reasons(&v))
        (robots(&v.activity))
        (canaries(&v, &here, p.canaries.unwrap_or(1)))
        (site_images(&v.activity))
        (requests(&v, &here, kind.as_deref(), after))
        @if c.is_cluster() { (members(&v, now)) }
        (history(&v))
    };
    Ok(web::html(layout::page(
        &format!("{what} {}", shown(&c.key, 40)),
        Nav::Flags,
        &me,
        body,
    )))
}

fn done_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "confirmed" => "Confirmed. A case is open: this client's records are kept past retention, and its raw addresses are kept.",
        "dismissed" => "Dismissed. The key is on the allow-list and will not be flagged again; its raw addresses are no longer held.",
        "undismissed" => "Dismissal undone. The key is off the allow-list and the detector judges it again.",
        "exported" => "Evidence bundle built. Download it below; `faceprobe evidence verify` checks it.",
        "attached" => "Image attached to the case: the next bundle carries it with its match.",
        _ => return None,
    })
}

fn summary(v: &View, now: i64) -> Markup {
    let c = &v.client;
    // What the stored requests show; the detector's counts when some were deleted since.
    let (total, k, broken) = if v.activity.events >= c.counts.requests {
        let mut k = [0u64; 6];
        for b in &v.activity.buckets {
            for (t, n) in k.iter_mut().zip(b) {
                *t += n;
            }
        }
        (v.activity.events, k, v.activity.violations)
    } else {
        let n = &c.counts;
        let pages = n.pages.saturating_sub(n.traps);
        let images = n.images.saturating_sub(n.canaries);
        let k = [pages, images, n.canaries, n.traps, n.robots, 0];
        (n.requests, k, n.robots_violations)
    };
    html! {
        section.card.summary {
            h2 { "Who" }
            dl.facts {
                @if c.is_cluster() {
                    dt { "Members" } dd { (int(c.members.len() as u64)) " clients" }
                    dt { "Addresses" } dd { (int(c.addresses.len() as u64)) }
                } @else {
                    dt { "Address" } dd.addr { (shown(c.address.as_deref().unwrap_or("—"), 64)) }
                    dt { "Network" } dd.addr { (shown(c.prefix.as_deref().unwrap_or("—"), 64)) }
                    dt { "User agent" } dd.agent { (shown(c.agent.as_deref().unwrap_or("—"), 300)) }
                }
                @if let Some(kind) = c.crawler.label() { dt { "Says it is" } dd { (kind) " crawler" } }
                @if let Some(k) = &c.cluster { dt { "Part of" } dd { (layout::client_link(k)) } }
                @if let Some(k) = &c.merged_into { dt { "Merged into" } dd { (layout::client_link(k)) } }
                dt { "First seen" } dd { (when(c.first_ms)) }
                dt { "Last seen" } dd { (when(c.last_ms)) " · " (layout::ago(c.last_ms, now)) }
            }
            table.counts {
                tbody {
                    tr { th { "Requests" } td.num { (int(total)) } th { "Pages" } td.num { (int(k[0])) } }
                    tr { th { "Site images" } td.num { (int(k[1])) } th { "Canaries" } td.num { (int(k[2])) } }
                    tr { th { "Trap pages" } td.num { (int(k[3])) } th { "robots.txt read" } td.num { (int(k[4])) } }
                    tr { th { "Rules broken" } td.num { (int(broken)) } th { "Gallery depth" } td.num { (c.max_depth) } }
                }
            }
            @if v.activity.events < c.counts.requests {
                p.hint { (int(c.counts.requests - v.activity.events)) " earlier requests counted by the detector are no longer in the store (retention); the counts above are those of the detector." }
            }
        }
    }
}

fn review_panel(v: &View, me: &Signed, here: &str) -> Markup {
    let dismissed = v.allowed || v.client.dismissed;
    html! {
        section.card #review {
            h2 { "Review" }
            @if dismissed {
                p { "A person dismissed this flag: the key is on the allow-list." }
                form.undo method="post" action=(format!("{here}/review")) {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label for="undo-note" { "Note (why the dismissal is undone)" }
                    textarea id="undo-note" name="note" rows="2" maxlength="2000" {}
                    button type="submit" name="decision" value="undismiss" { "Undo the dismissal" }
                }
            } @else {
                @if v.case.is_some() {
                    p { "Confirmed: a case is open and its records are kept. Dismiss it if it turns out harmless (the case's records stay kept)." }
                }
                form.review method="post" action=(format!("{here}/review")) {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label for="note" { "Note (kept with the decision)" }
                    textarea id="note" name="note" rows="3" maxlength="2000"
                        placeholder="What you checked, and why you decide so" {}
                    div.buttons {
                        @if v.case.is_none() {
                            button.confirm type="submit" name="decision" value="confirm" { "Confirm: it harvests" }
                        }
                        button.dismiss type="submit" name="decision" value="dismiss" { "Dismiss: harmless" }
                    }
                    @if v.case.is_none() {
                        p.hint { "Confirming opens a case (records kept past retention). Dismissing puts the key on the allow-list; it can be undone." }
                    }
                }
            }
            @if !v.reviews.is_empty() {
                h3 { "Decisions" }
                ol #reviews {
                    @for r in &v.reviews {
                        li class=(format!("decision {}", r.decision)) {
                            strong { (decision_words(&r.decision)) } " by " (shown(&r.reviewer, 60)) ", " (when_short(r.ts_ms))
                            @if !r.note.is_empty() { p.note { (shown(&r.note, 2000)) } }
                        }
                    }
                }
            }
        }
    }
}

fn decision_words(d: &str) -> &'static str {
    match d {
        "confirm" => "Confirmed",
        "dismiss" => "Dismissed",
        "undismiss" => "Dismissal undone",
        _ => "Decided",
    }
}

fn case_panel(v: &View, me: &Signed, here: &str) -> Markup {
    html! {
        section.card #case {
            h2 { "Case and evidence" }
            @if let Some(case) = &v.case {
                p { "Case opened " (when_short(case.opened_ms)) " by " (shown(&case.opened_by, 60))
                    @if !case.note.is_empty() { ": " (shown(case.note.trim_end_matches('.'), 300)) } "." }
            } @else {
                p.muted { "No case yet. Confirming the flag or building a bundle opens one." }
            }
            form.export method="post" action=(format!("{here}/export")) {
                input type="hidden" name="csrf" value=(me.csrf);
                button type="submit" { "Build the evidence bundle" }
            }
            p.hint { "A signed zip with the report in French and English, checkable without faceprobe. Large cases take a few seconds." }
            @if !v.bundles.is_empty() {
                div.scroll {
                    table #bundles .stack {
                        thead { tr { th { "Built" } th { "By" } th.num { "Events" } th.num { "Size" } th { "SHA-256" } th {} } }
                        tbody {
                            @for b in &v.bundles {
                                tr {
                                    td.time data-label="Built" { (when_short(b.built_ms)) }
                                    td data-label="By" { (shown(&b.built_by, 40)) }
                                    td.num data-label="Events" { (int(b.events.max(0) as u64)) }
                                    td.num data-label="Size" { (size(b.bytes.max(0) as u64)) }
                                    td.sha256 data-label="SHA-256" { code { (b.sha256) } }
                                    td { a.download href=(format!("/bundles/{}/download", b.id)) { "Download" } }
                                }
                            }
                        }
                    }
                }
            }
            @if !v.found.is_empty() {
                h3 { "Images found elsewhere, attached" }
                ul.found {
                    @for f in &v.found {
                        li { a href=(format!("/found/{}", f.id)) { (shown(&f.name, 80)) } " · uploaded " (when_short(f.uploaded_ms)) " by " (shown(&f.uploaded_by, 40)) }
                    }
                }
            }
            p { a href="/match" { "Match an image found elsewhere →" } }
        }
    }
}

/// "once", "twice", "12 times".
fn times(n: u64) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{} times", int(n)),
    }
}

/// Bytes in words.
pub fn size(b: u64) -> String {
    match b {
        0..=1023 => format!("{b} B"),
        1024..=1_048_575 => format!("{:.1} KB", b as f64 / 1024.0),
        _ => format!("{:.1} MB", b as f64 / 1_048_576.0),
    }
}

fn timeline(a: &Activity, c: &Client) -> Markup {
    let tick: fn(i64) -> String = if a.bucket_ms < 1000 {
        |ms| {
            let s = crate::evidence::bundle::rfc3339(ms);
            format!("{}.{}", &s[11..19], ms.rem_euclid(1000) / 100)
        }
    } else if a.bucket_ms < 60_000 {
        |ms| crate::evidence::bundle::rfc3339(ms)[11..19].to_string()
    } else if a.bucket_ms < 3_600_000 * 3 {
        |ms| crate::evidence::bundle::rfc3339(ms)[11..16].to_string()
    } else {
        |ms| {
            let s = crate::evidence::bundle::rfc3339(ms);
            format!("{} {}h", &s[5..10], &s[11..13])
        }
    };
    let mut totals = [0u64; 6];
    for b in &a.buckets {
        for (t, v) in totals.iter_mut().zip(b) {
            *t += v;
        }
    }
    let bars = Bars {
        series: &TIMELINE,
        starts: a.starts.clone(),
        values: a.buckets.clone(),
        tick,
        label: format!("Requests of {} over time, by kind", c.key),
    };
    let (wide, narrow) = (
        chart::stacked(&bars, (960, 240)),
        chart::stacked(&bars, (400, 300)),
    );
    html! {
        (layout::figure(&wide, Some(&narrow), &format!("{} requests from {} to {}, per {} (UTC).",
            int(a.events),
            crate::evidence::bundle::rfc3339(c.first_ms).replace('T', " ").replace('Z', ""),
            crate::evidence::bundle::rfc3339(c.last_ms).replace('T', " ").replace('Z', ""),
            span_words(a.bucket_ms))))
        (chart::legend(&TIMELINE, &totals))
    }
}

fn span_words(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 60_000 => format!("{} s", ms / 1000),
        ms if ms < 3_600_000 => format!("{} min", ms / 60_000),
        ms if ms < 86_400_000 => format!("{} h", ms / 3_600_000),
        ms => format!("{} days", ms / 86_400_000),
    }
}

fn reasons(v: &View) -> Markup {
    let mut rs: Vec<_> = v.client.reasons.iter().collect();
    rs.sort_by(|a, b| b.score.total_cmp(&a.score));
    html! {
        section.card #reasons {
            h2 { "Why it was flagged" }
            @if rs.is_empty() { p.muted { "The detector recorded no reason." } }
            @for r in rs {
                div.reason {
                    h3 {
                        (crate::evidence::report::reason_sentence(crate::evidence::report::Lang::En, r.signal.name()))
                    }
                    p.muted {
                        code { (r.signal.name()) } " · score " (format!("{:.0}", r.score)) " · " (times(r.count.into()))
                        @if !r.detail.is_empty() { " · " (shown(&r.detail, 300)) }
                    }
                    @let evs: Vec<&Request> = r.events.iter().filter_map(|id| v.reason_events.get(id)).collect();
                    @if !evs.is_empty() {
                        details {
                            summary {
                                @if evs.len() == 1 { "The event kept as its evidence" }
                                @else { "The " (evs.len()) " events kept as its evidence (the first and the latest)" }
                            }
                            (request_table(&evs, v.client.is_cluster()))
                        }
                    }
                }
            }
        }
    }
}

fn robots(a: &Activity) -> Markup {
    html! {
        section.card #robots {
            h2 { "robots.txt" }
            @if a.robots.is_empty() {
                p.muted { "No robots.txt version is stored for its time." }
            } @else {
                p {
                    (int(a.violations)) " of its requests broke a rule of the robots.txt in force"
                    @if a.after_reading > 0 { ", " (int(a.after_reading)) " of them after it had read the file" }
                    "."
                }
                @for ver in &a.robots {
                    div.robots {
                        p.muted {
                            "Version " code { (&ver.sha256[..16.min(ver.sha256.len())]) } ", first served " (when_short(ver.first_served_ms))
                            @if ver.fetched.is_empty() { "; in force when it came, never fetched by it." }
                            @else { "; fetched by it " (times(ver.fetched.len() as u64)) ", first " (when_short(ver.fetched[0])) "." }
                        }
                        pre.file {
                            @for (n, line, broken) in &ver.lines {
                                @if *broken > 0 {
                                    span.broken { span.ln { (n) } (shown(line, 300)) span.count { "  ← broken " (int(*broken)) " times" } } "\n"
                                } @else {
                                    span.ln { (n) } (shown(line, 300)) "\n"
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn canaries(v: &View, here: &str, page: usize) -> Markup {
    let all = &v.canaries;
    let pages = all.len().div_ceil(CANARIES_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let shown_now = all
        .iter()
        .skip((page - 1) * CANARIES_PER_PAGE)
        .take(CANARIES_PER_PAGE);
    html! {
        section.card #canaries {
            h2 { "Canaries taken" }
            @if all.is_empty() {
                p.muted { "It took no canary face." }
            } @else {
                p { (int(all.len() as u64)) " distinct canary faces, each made for one page view and hidden from people; re-drawn here from their seeds." }
                ul.thumbs {
                    @for t in shown_now {
                        li {
                            img src=(format!("/canaries/{}.jpg", t.token)) alt=(format!("Canary {}", t.token)) width="96" height="96" loading="lazy";
                            span.token { (t.token.to_string()) }
                            span.muted { (when_short(t.first_ms)) @if t.fetches > 1 { " · ×" (t.fetches) } }
                        }
                    }
                }
                (layout::pager(page as u64, pages as u64, |n| format!("{here}?canaries={n}#canaries")))
            }
        }
    }
}

fn site_images(a: &Activity) -> Markup {
    html! {
        section.card #images {
            h2 { "The site's images taken" }
            @if a.images.is_empty() {
                p.muted { "It took none of the site's own images." }
            } @else {
                p { (int(a.images.len() as u64)) " images, " (int(a.image_fetches)) " fetches, " (size(a.image_bytes)) ". The people in them are the data subjects of a complaint." }
                div.scroll {
                    table.paths {
                        thead { tr { th { "Path" } th.num { "Fetches" } th.num { "Bytes" } th { "First" } th { "Last" } } }
                        tbody {
                            @for i in a.images.iter().take(SITE_IMAGE_ROWS) {
                                tr {
                                    td.path { (shown(&i.path, 120)) }
                                    td.num { (int(i.fetches)) }
                                    td.num { (size(i.bytes)) }
                                    td { (when_short(i.first_ms)) }
                                    td { (when_short(i.last_ms)) }
                                }
                            }
                        }
                    }
                }
                @if a.images.len() > SITE_IMAGE_ROWS {
                    p.muted { "The " (SITE_IMAGE_ROWS) " most fetched are shown; the evidence bundle lists every one (site-images.csv)." }
                }
            }
        }
    }
}

fn requests(v: &View, here: &str, kind: Option<&str>, after: i64) -> Markup {
    let href = |k: Option<&str>| match k {
        Some(k) => format!("{here}?kind={k}#requests"),
        None => format!("{here}#requests"),
    };
    let refs: Vec<&Request> = v.requests.iter().collect();
    html! {
        section.card #requests {
            h2 { "Requests" }
            nav.tabs aria-label="Kind of request" {
                a href=(href(None)) aria-current=[kind.is_none().then_some("page")] { "All" }
                @for k in activity::KINDS {
                    a href=(href(Some(k))) aria-current=[(kind == Some(k)).then_some("page")] { (k) }
                }
            }
            @if refs.is_empty() {
                p.muted { "No request of this kind" @if after > 0 { " after event " (after) } "." }
            } @else {
                (request_table(&refs, v.client.is_cluster()))
            }
            nav.pager {
                @if after > 0 {
                    a href=(match kind { Some(k) => format!("{here}?kind={k}#requests"), None => format!("{here}#requests") }) { "← From the first" }
                }
                @if v.more_requests {
                    @if let Some(last) = v.requests.last() {
                        a rel="next" href=(match kind {
                            Some(k) => format!("{here}?kind={k}&after={}#requests", last.id),
                            None => format!("{here}?after={}#requests", last.id),
                        }) { "Next " (REQUESTS_PER_PAGE) " →" }
                    }
                }
            }
        }
    }
}

/// Requests as a table; everything the client sent is shown as text. A client's agent is
/// the same on every request (it is part of its key), so only a cluster's table shows it.
fn request_table(rows: &[&Request], cluster: bool) -> Markup {
    html! {
        div.scroll {
            table.requests {
                thead { tr {
                    th.num { "Event" } th { "Time (UTC)" }
                    @if cluster { th { "Client" } }
                    th { "Kind" } th { "Request" } th.num { "Status" } th.num { "Bytes" }
                    @if cluster { th { "User agent" } }
                    th { "Referer" }
                } }
                tbody {
                    @for e in rows {
                        tr class=(format!("kind-{}", e.kind)) {
                            td.num { (e.id) }
                            td.time { (layout::when_seconds(e.ts_ms)) }
                            @if cluster { td { (layout::client_link(&e.client_key)) } }
                            td { span.kind { (shown(&e.kind, 20)) } }
                            td.path title=[e.host.as_deref().map(|h| format!("host {}", shown(h, 200)))] {
                                (shown(&e.method, 16)) " "
                                (shown(&e.path, 160))
                                @if let Some(q) = &e.query { "?" (shown(q, 160)) }
                            }
                            td.num { (e.status) }
                            td.num { (int(e.bytes.max(0) as u64)) }
                            @if cluster { td.agent { (shown(e.user_agent.as_deref().unwrap_or("—"), 120)) } }
                            td.agent { (shown(e.referer.as_deref().unwrap_or("—"), 120)) }
                        }
                    }
                }
            }
        }
    }
}

fn members(v: &View, now: i64) -> Markup {
    html! {
        section.card #members {
            h2 { "Members" }
            p { (int(v.client.members.len() as u64)) " clients acting together, from " (int(v.client.addresses.len() as u64)) " addresses." }
            div.scroll {
                table.members.stack {
                    thead { tr { th { "Client" } th { "Level" } th { "Address" } th { "User agent" } th.num { "Requests" } th.num { "Canaries" } th { "Last seen" } } }
                    tbody {
                        @for m in v.members.iter().take(MEMBERS_SHOWN) {
                            tr {
                                td data-label="Client" { (layout::client_link(&m.key)) }
                                td data-label="Level" { (layout::level(m.level.map(|l| l.as_str()), m.dismissed)) }
                                td.addr data-label="Address" { (shown(m.address.as_deref().unwrap_or("—"), 45)) }
                                td.agent data-label="User agent" { (shown(m.agent.as_deref().unwrap_or("—"), 80)) }
                                td.num data-label="Requests" { (int(m.counts.requests)) }
                                td.num data-label="Canaries" { (int(m.counts.canaries)) }
                                td data-label="Last seen" { (layout::ago(m.last_ms, now)) }
                            }
                        }
                    }
                }
            }
            @if v.members.len() > MEMBERS_SHOWN { p.muted { "The " (MEMBERS_SHOWN) " with the highest scores are shown." } }
        }
    }
}

fn history(v: &View) -> Markup {
    html! {
        section.card #history {
            h2 { "Flag history" }
            @if v.history.is_empty() {
                p.muted { "No change recorded." }
            } @else {
                div.scroll {
                    table.history.stack {
                        thead { tr { th { "When (UTC)" } th { "Level" } th.num { "Score" } th { "What happened" } } }
                        tbody {
                            @for (ts, level, score, note) in v.history.iter().rev() {
                                tr {
                                    td.time data-label="When" { (layout::when_seconds(*ts)) }
                                    td data-label="Level" { (layout::level(level.as_deref(), false)) }
                                    td.num data-label="Score" { (format!("{score:.0}")) }
                                    td data-label="What happened" { (shown(note, 400)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
