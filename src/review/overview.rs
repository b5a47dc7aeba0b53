//! The overview: what came in over the last hour, day or week (requests by kind, canaries and
//! traps taken, clients seen and flagged), the flags raised over that time, the newest flags,
//! what awaits a person's review, and whether the recorder is keeping up.

use super::chart::{self, series, Bars, Series};
use super::layout::{self, int, Nav};
use super::rollup::{self, KINDS, MINUTE};
use super::web::{self, blocking, Fail, Signed};
use super::Dashboard;
use crate::detect::Client;
use crate::metrics::REQUEST_KINDS;
use crate::store::{clients, now_ms};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use rusqlite::Connection;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The time ranges the overview offers: name, label, bucket, buckets, tick format.
const RANGES: [(&str, &str, i64, usize); 3] = [
    ("hour", "Last hour", MINUTE, 60),
    ("day", "Last day", 30 * MINUTE, 48),
    ("week", "Last week", 3 * 60 * MINUTE, 56),
];

/// The request series, in the order of `REQUEST_KINDS` (page, image, asset, robots, canary,
/// trap, other).
const KIND_SERIES: [Series; KINDS] = [
    series("Pages", chart::PAGES),
    series("Site images", chart::SITE_IMAGES),
    series("Assets", chart::ASSETS),
    series("robots.txt", chart::ROBOTS),
    series("Canaries", chart::CANARIES),
    series("Trap pages", chart::TRAPS),
    series("Other", chart::OTHER),
];

const LEVEL_SERIES: [Series; 3] = [
    series("Watch", chart::WATCH),
    series("Suspect", chart::SUSPECT),
    series("Harvester", chart::HARVESTER),
];
const LEVELS: [&str; 3] = ["watch", "suspect", "harvester"];

#[derive(serde::Deserialize, Default)]
pub struct Params {
    range: Option<String>,
}

/// What the page shows, read from the store (the rollup is read under its own lock).
struct Facts {
    clients_seen: u64,
    flagged_active: [u64; 3],
    flagged_all: [u64; 3],
    awaiting: u64,
    cases: u64,
    flags_over_time: Vec<Vec<u64>>,
    newest: Vec<(Client, i64)>,
}

pub async fn page(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    Query(p): Query<Params>,
) -> Result<Response, Fail> {
    let range = RANGES
        .iter()
        .find(|r| Some(r.0) == p.range.as_deref())
        .unwrap_or(&RANGES[1]);
    let (name, label, bucket, n) = *range;
    let now = now_ms();
    let end = (now.div_euclid(bucket) + 1) * bucket;
    let since = end - bucket * n as i64;
    let facts = blocking(&d, move |_, conn| facts(conn, since, end, bucket, n)).await?;
    let (requests, caught_up) = {
        let r = d.rollup.lock().unwrap_or_else(|p| p.into_inner());
        (r.buckets(end, bucket, n), r.caught_up)
    };
    let starts: Vec<i64> = (0..n as i64).map(|i| since + i * bucket).collect();
    let tick = if name == "week" { day_tick } else { clock_tick };
    let mut totals = [0u64; KINDS];
    for b in &requests {
        for (t, v) in totals.iter_mut().zip(b) {
            *t += v;
        }
    }
    let requests_bars = Bars {
        series: &KIND_SERIES,
        starts: starts.clone(),
        values: requests.iter().map(|b| b.to_vec()).collect(),
        tick,
        label: format!("Requests by kind, {}", label.to_lowercase()),
    };
    let requests_chart = chart::stacked(&requests_bars, (960, 260));
    let requests_narrow = chart::stacked(&requests_bars, (400, 300));
    let mut level_totals = [0u64; 3];
    for b in &facts.flags_over_time {
        for (t, v) in level_totals.iter_mut().zip(b) {
            *t += v;
        }
    }
    let flags_chart = chart::stacked(
        &Bars {
            series: &LEVEL_SERIES,
            starts,
            values: facts.flags_over_time.clone(),
            tick,
            label: format!("Flags raised by level, {}", label.to_lowercase()),
        },
        (420, 190),
    );
    let kind = |k: &str| {
        REQUEST_KINDS
            .iter()
            .position(|n| *n == k)
            .map_or(0, |i| totals[i])
    };
    let all: u64 = totals.iter().sum();
    let body = html! {
        div.heading {
            h1 { "Overview" }
            nav.tabs aria-label="Time range" {
                @for (n, l, _, _) in RANGES {
                    a href=(format!("/?range={n}")) aria-current=[(n == name).then_some("page")] { (l) }
                }
            }
        }
        @if facts.awaiting > 0 {
            p.callout {
                a href="/flags?review=unreviewed" {
                    strong { (int(facts.awaiting)) }
                    @if facts.awaiting == 1 { " flag awaits" } @else { " flags await" }
                    " a person's review →"
                }
            }
        }
        section.cards aria-label="Totals" {
            (card("Requests", all, label))
            (card("Pages", kind("page"), "proxied or served"))
            (card("Site images", kind("image"), "the site's own photos"))
            (card("Canaries taken", kind("canary"), "hidden faces fetched"))
            (card("Trap pages", kind("trap"), "hidden galleries walked"))
            (card("robots.txt read", kind("robots"), "fetches of the rules"))
            (card("Clients seen", facts.clients_seen, "address + user agent"))
            (card("Open cases", facts.cases, "records kept past retention"))
        }
        @if !caught_up {
            p.muted { "Still counting this week's earlier requests: the charts fill in as the count goes on." }
        }
        section.card {
            h2 { "Requests" }
            (layout::figure(&requests_chart, Some(&requests_narrow), &format!("Requests per {} by kind, {} (UTC).", bucket_words(bucket), label.to_lowercase())))
            (chart::legend(&KIND_SERIES, &totals))
        }
        div.columns {
            section.card {
                h2 { "Flagged clients" }
                table.levels {
                    thead { tr { th { "Level" } th.num { "Active" } th.num { "All time" } } }
                    tbody {
                        @for (i, l) in LEVELS.iter().enumerate().rev() {
                            tr {
                                td { a href=(format!("/flags?level={l}")) { (layout::level(Some(l), false)) } }
                                td.num { (int(facts.flagged_active[i])) }
                                td.num { (int(facts.flagged_all[i])) }
                            }
                        }
                    }
                }
                h3 { "Flags raised" }
                (layout::figure(&flags_chart, None, &format!("Keys reaching each level per {}.", bucket_words(bucket))))
                (chart::legend(&LEVEL_SERIES, &level_totals))
            }
            section.card {
                h2 { "Newest flags" }
                @if facts.newest.is_empty() {
                    p.muted { "Nothing flagged yet. Harvesters show here as soon as the detector flags them." }
                } @else {
                    ul.newest {
                        @for (c, at) in &facts.newest {
                            li {
                                (layout::level(c.level.map(|l| l.as_str()), c.dismissed))
                                " " (layout::client_link(&c.key))
                                span.muted { " · " (layout::ago(*at, now)) }
                                br;
                                span.why { (super::flags::why(c)) }
                            }
                        }
                    }
                    p { a href="/flags?sort=time" { "All flags →" } }
                }
            }
        }
        (health(&d))
    };
    Ok(web::html(layout::page(
        "Overview",
        Nav::Overview,
        &me,
        body,
    )))
}

fn card(title: &str, value: u64, sub: &str) -> Markup {
    html! {
        div.stat {
            span.label { (title) }
            span.value { (int(value)) }
            span.sub { (sub) }
        }
    }
}

/// The recorder's and detector's counters since this start.
fn health(d: &Dashboard) -> Markup {
    let m = &d.metrics;
    let dropped = m.events_dropped.load(Relaxed);
    let write_errors = m.write_errors.load(Relaxed);
    let depth = m.queue_depth.load(Relaxed).max(0) as u64;
    let capacity = m.queue_capacity.load(Relaxed);
    let healthy = dropped == 0 && write_errors == 0;
    html! {
        section.card.health {
            h2 { "Recorder" }
            p class=(if healthy { "status ok" } else { "status warn" }) {
                @if healthy {
                    "Every request since the last start was recorded."
                } @else {
                    (int(dropped)) " page or asset events dropped and " (int(write_errors))
                    " failed writes since the last start (canary, trap and robots.txt fetches are never dropped: they wait). "
                    "Check the disk and the logs."
                }
            }
            dl.facts {
                dt { "Events written" } dd { (int(m.events_written.load(Relaxed))) }
                dt { "Queue" } dd { (int(depth)) " of " (int(capacity)) }
                dt { "Dropped" } dd { (int(dropped)) }
                dt { "Failed writes" } dd { (int(write_errors)) }
                dt { "Canaries served" } dd { (int(m.canaries_served.load(Relaxed))) }
                dt { "Upstream errors" } dd { (int(m.upstream_errors.load(Relaxed))) }
                dt { "Detector errors" } dd { (int(m.detect_errors.load(Relaxed))) }
                dt { "Alerts failed" } dd { (int(m.alerts_failed.load(Relaxed))) }
                dt { "Up for" } dd { (uptime(d.started.elapsed().as_secs())) }
            }
            p.muted { "Counters since this faceprobe started; Prometheus reads the same at " a href="/metrics" { "/metrics" } "." }
        }
    }
}

fn uptime(s: u64) -> String {
    match s {
        0..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} days {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn facts(conn: &Connection, since: i64, end: i64, bucket: i64, n: usize) -> Result<Facts, Fail> {
    let clients_seen: i64 = conn.query_row(
        // Through the index on last_ms alone (clusters, a handful, are counted too).
        "SELECT count(*) FROM clients WHERE last_ms >= ?1",
        [since],
        |r| r.get(0),
    )?;
    let by_level = |sql: &str, p: &[i64]| -> Result<[u64; 3], Fail> {
        let mut out = [0u64; 3];
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(p))?;
        while let Some(r) = rows.next()? {
            let level: String = r.get(0)?;
            if let Some(i) = LEVELS.iter().position(|l| *l == level) {
                out[i] = r.get::<_, i64>(1)? as u64;
            }
        }
        Ok(out)
    };
    let flagged_active = by_level(
        "SELECT level, count(*) FROM clients WHERE level IS NOT NULL AND last_ms >= ?1
         GROUP BY level",
        &[since],
    )?;
    let flagged_all = by_level(
        "SELECT level, count(*) FROM clients WHERE level IS NOT NULL GROUP BY level",
        &[],
    )?;
    let awaiting: i64 = conn.query_row(
        "SELECT count(*) FROM clients c WHERE c.level IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.key = c.key)
           AND NOT EXISTS (SELECT 1 FROM cases k WHERE k.key = c.key)",
        [],
        |r| r.get(0),
    )?;
    let cases: i64 = conn.query_row("SELECT count(*) FROM cases", [], |r| r.get(0))?;
    let mut flags_over_time = vec![vec![0u64; 3]; n];
    {
        let mut stmt = conn.prepare(
            "SELECT ts_ms, level FROM flag_history WHERE ts_ms >= ?1 AND ts_ms < ?2
             AND level IS NOT NULL AND at_event IS NOT NULL",
        )?;
        let mut rows = stmt.query([since, end])?;
        while let Some(r) = rows.next()? {
            let ts: i64 = r.get(0)?;
            let level: String = r.get(1)?;
            let i = ((ts - since) / bucket) as usize;
            if let (Some(b), Some(l)) = (
                flags_over_time.get_mut(i),
                LEVELS.iter().position(|x| *x == level),
            ) {
                b[l] += 1;
            }
        }
    }
    let mut newest = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT key, max(ts_ms) AS at FROM flag_history
             WHERE level IS NOT NULL AND at_event IS NOT NULL
             GROUP BY key ORDER BY at DESC LIMIT 24",
        )?;
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (key, at) in rows {
            if let Some(c) = clients::get::<Client>(conn, &key)? {
                if c.level.is_some() && !c.dismissed && c.merged_into.is_none() {
                    newest.push((c, at));
                }
            }
            if newest.len() == 8 {
                break;
            }
        }
    }
    Ok(Facts {
        clients_seen: clients_seen as u64,
        flagged_active,
        flagged_all,
        awaiting: awaiting as u64,
        cases: cases as u64,
        flags_over_time,
        newest,
    })
}

fn bucket_words(bucket: i64) -> String {
    match bucket / MINUTE {
        1 => "minute".into(),
        m if m % 60 == 0 => format!("{} hours", m / 60),
        m => format!("{m} minutes"),
    }
}

fn clock_tick(ms: i64) -> String {
    let iso = crate::evidence::bundle::rfc3339(ms);
    iso[11..16].to_string()
}

fn day_tick(ms: i64) -> String {
    let iso = crate::evidence::bundle::rfc3339(ms);
    format!("{} {}", &iso[5..10], &iso[11..13])
}

/// Keeps the rollup up to date: the first fill in steps, then every few seconds.
pub async fn follow(d: Arc<Dashboard>) {
    loop {
        let more = tokio::task::spawn_blocking({
            let d = d.clone();
            move || -> Result<bool, Fail> {
                let conn = d.db.take()?;
                let now = now_ms();
                let after = {
                    let r = d.rollup.lock().unwrap_or_else(|p| p.into_inner());
                    rollup::start_after(&r, &conn, now)?
                };
                let step = rollup::read(&conn, after)?;
                d.db.give(conn);
                let more = !step.done;
                d.rollup
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(step, now);
                Ok(more)
            }
        })
        .await;
        let pause = match more {
            Ok(Ok(true)) => 0,
            Ok(Ok(false)) => 5,
            Ok(Err(e)) => {
                tracing::warn!(error = ?e, "the overview's request counts could not be read");
                30
            }
            Err(_) => 30,
        };
        tokio::time::sleep(std::time::Duration::from_secs(pause)).await;
    }
}
