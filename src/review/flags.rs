//! The flags: every client and cluster at watch or above (or the ones a person confirmed or
//! dismissed), filtered by level, review, last seen, kind, agent; searched by key or address;
//! sorted by score or time; a page of 50 at a time. Each row says in one sentence why.

use super::layout::{self, int, shown, Nav};
use super::web::{self, blocking, Fail, Signed};
use super::Dashboard;
use crate::detect::Client;
use crate::evidence::report::{reason_sentence, Lang};
use crate::store::now_ms;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Extension;
use maud::html;
use rusqlite::types::Value;
use std::sync::Arc;

const PER_PAGE: u64 = 50;

#[derive(serde::Deserialize, Default, Clone)]
pub struct Params {
    #[serde(default)]
    q: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    review: String,
    #[serde(default)]
    seen: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    sort: String,
    page: Option<u64>,
}

impl Params {
    /// This list's address on another page.
    fn href(&self, page: u64) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("level", &self.level),
            ("review", &self.review),
            ("seen", &self.seen),
            ("kind", &self.kind),
            ("agent", &self.agent),
            ("sort", &self.sort),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", layout::q(v)));
            }
        }
        parts.push(format!("page={page}"));
        format!("/flags?{}", parts.join("&"))
    }
}

/// One row of the list.
struct Row {
    client: Client,
    case: bool,
    allowed: bool,
    decision: Option<String>,
}

/// The sentence that says why a key is flagged: its strongest reason, and how many more.
pub fn why(c: &Client) -> String {
    let mut reasons: Vec<_> = c.reasons.iter().filter(|r| r.score > 0.0).collect();
    reasons.sort_by(|a, b| b.score.total_cmp(&a.score));
    let Some(top) = reasons.first() else {
        return "No reason recorded yet.".into();
    };
    let mut s = reason_sentence(Lang::En, top.signal.name());
    if top.count > 1 {
        s = format!("{} ({}×).", s.trim_end_matches('.'), int(top.count.into()));
    }
    match reasons.len() - 1 {
        0 => s,
        1 => format!("{s} And 1 other reason."),
        n => format!("{s} And {n} other reasons."),
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The WHERE clause and its values for `p`.
fn filter(p: &Params, now: i64) -> (String, Vec<Value>) {
    let mut conds = vec!["json_extract(c.state, '$.merged_into') IS NULL".to_string()];
    let mut values: Vec<Value> = Vec::new();
    match p.review.as_str() {
        "confirmed" => conds.push("c.key IN (SELECT key FROM cases)".into()),
        "dismissed" => conds.push("c.key IN (SELECT key FROM allow_list)".into()),
        "unreviewed" => conds.push(
            "c.level IS NOT NULL AND c.key NOT IN (SELECT key FROM reviews)
             AND c.key NOT IN (SELECT key FROM cases)"
                .into(),
        ),
        _ => conds.push("c.level IS NOT NULL".into()),
    }
    if matches!(p.level.as_str(), "watch" | "suspect" | "harvester") {
        conds.push("c.level = ?".into());
        values.push(Value::Text(p.level.clone()));
    }
    let seen = match p.seen.as_str() {
        "hour" => Some(3_600_000),
        "day" => Some(86_400_000),
        "week" => Some(7 * 86_400_000),
        _ => None,
    };
    if let Some(span) = seen {
        conds.push("c.last_ms >= ?".into());
        values.push(Value::Integer(now - span));
    }
    match p.kind.as_str() {
        "client" | "cluster" => {
            conds.push("c.kind = ?".into());
            values.push(Value::Text(p.kind.clone()));
        }
        _ => {}
    }
    let agent = p.agent.trim();
    if !agent.is_empty() {
        conds.push("json_extract(c.state, '$.agent') LIKE ? ESCAPE '\\'".into());
        values.push(Value::Text(format!("%{}%", like(agent))));
    }
    let q = p.q.trim();
    if !q.is_empty() {
        conds.push(
            "(c.key LIKE ? ESCAPE '\\' OR json_extract(c.state, '$.address') LIKE ? ESCAPE '\\'
              OR EXISTS (SELECT 1 FROM json_each(c.state, '$.addresses')
                         WHERE value LIKE ? ESCAPE '\\'))"
                .into(),
        );
        let anywhere = format!("%{}%", like(q));
        values.push(Value::Text(format!("{}%", like(q))));
        values.push(Value::Text(anywhere.clone()));
        values.push(Value::Text(anywhere));
    }
    (conds.join(" AND "), values)
}

pub async fn page(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    Query(p): Query<Params>,
) -> Result<Response, Fail> {
    let now = now_ms();
    let page = p.page.unwrap_or(1).max(1);
    let params = p.clone();
    let (total, rows) = blocking(&d, move |_, conn| {
        let (cond, values) = filter(&params, now);
        let total: i64 = conn.query_row(
            &format!("SELECT count(*) FROM clients c WHERE {cond}"),
            rusqlite::params_from_iter(values.iter()),
            |r| r.get(0),
        )?;
        let order = match params.sort.as_str() {
            "time" => "c.last_ms DESC, c.key",
            _ => "c.score DESC, c.key",
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT c.state,
                EXISTS (SELECT 1 FROM cases k WHERE k.key = c.key),
                EXISTS (SELECT 1 FROM allow_list a WHERE a.key = c.key),
                (SELECT decision FROM reviews r WHERE r.key = c.key ORDER BY r.id DESC LIMIT 1)
             FROM clients c WHERE {cond} ORDER BY {order} LIMIT {PER_PAGE} OFFSET {}",
            (page - 1) * PER_PAGE
        ))?;
        let mut rows = Vec::new();
        let mut q = stmt.query(rusqlite::params_from_iter(values.iter()))?;
        while let Some(r) = q.next()? {
            let state: String = r.get(0)?;
            let Ok(client) = serde_json::from_str::<Client>(&state) else {
                continue;
            };
            rows.push(Row {
                client,
                case: r.get(1)?,
                allowed: r.get(2)?,
                decision: r.get(3)?,
            });
        }
        Ok((total as u64, rows))
    })
    .await?;
    let pages = total.div_ceil(PER_PAGE).max(1);
    let select = |name: &str, current: &str, options: &[(&str, &str)]| {
        html! {
            select name=(name) id=(name) {
                @for (v, l) in options {
                    option value=(v) selected[*v == current] { (l) }
                }
            }
        }
    };
    let body = html! {
        div.heading {
            h1 { "Flags" }
            p.muted { (int(total)) @if total == 1 { " key" } @else { " keys" } " match." }
        }
        form.filters method="get" action="/flags" role="search" {
            div.field.wide {
                label for="q" { "Key or address" }
                input type="search" id="q" name="q" value=(p.q) placeholder="c:… or 203.0.113.7";
            }
            div.field { label for="level" { "Level" }
                (select("level", &p.level, &[("", "Any"), ("harvester", "Harvester"), ("suspect", "Suspect"), ("watch", "Watch")])) }
            div.field { label for="review" { "Review" }
                (select("review", &p.review, &[("", "Flagged"), ("unreviewed", "Awaiting review"), ("confirmed", "Confirmed (case)"), ("dismissed", "Dismissed")])) }
            div.field { label for="seen" { "Last seen" }
                (select("seen", &p.seen, &[("", "Any time"), ("hour", "Last hour"), ("day", "Last day"), ("week", "Last week")])) }
            div.field { label for="kind" { "Kind" }
                (select("kind", &p.kind, &[("", "All"), ("client", "Clients"), ("cluster", "Clusters")])) }
            div.field { label for="agent" { "User agent contains" }
                input type="text" id="agent" name="agent" value=(p.agent); }
            div.field { label for="sort" { "Sort by" }
                (select("sort", &p.sort, &[("", "Score"), ("time", "Last seen")])) }
            div.actions {
                button type="submit" { "Filter" }
                a href="/flags" { "Clear" }
            }
        }
        @if rows.is_empty() {
            p.empty { "No flag matches. The detector flags a client as soon as it takes a canary, walks a trap or breaks robots.txt." }
        } @else {
            div.scroll {
                table #flags .stack {
                    thead { tr {
                        th { "Level" } th { "Key" } th { "Address and agent" }
                        th { "Last seen" } th.num { "Requests" } th.num { "Canaries" } th { "Why" } th { "Review" }
                    } }
                    tbody {
                        @for r in &rows {
                            @let c = &r.client;
                            tr.flag {
                                td data-label="Level" {
                                    (layout::level(c.level.map(|l| l.as_str()), c.dismissed))
                                    br; span.muted { "score " (format!("{:.0}", c.score)) }
                                }
                                td data-label="Key" {
                                    (layout::client_link(&c.key))
                                    @if c.is_cluster() { br; span.muted { "cluster of " (c.members.len()) } }
                                }
                                td.agent data-label="Who" {
                                    @if c.is_cluster() { (int(c.addresses.len() as u64)) " addresses" }
                                    @else { span.addr { (shown(c.address.as_deref().unwrap_or("—"), 45)) } }
                                    br; span.muted { (shown(c.agent.as_deref().unwrap_or("—"), 70)) }
                                }
                                td.time data-label="Last seen" { (layout::when_short(c.last_ms)) br; span.muted { (layout::ago(c.last_ms, now)) } }
                                td.num data-label="Requests" { (int(c.counts.requests)) }
                                td.num data-label="Canaries" { (int(c.counts.canaries)) }
                                td.why data-label="Why" { (why(c)) }
                                td data-label="Review" { (status(r)) }
                            }
                        }
                    }
                }
            }
            (layout::pager(page, pages, |n| p.href(n)))
        }
    };
    Ok(web::html(layout::page("Flags", Nav::Flags, &me, body)))
}

fn status(r: &Row) -> maud::Markup {
    html! {
        @if r.allowed { span.tag.dismissed { "Dismissed" } }
        @else if r.case { span.tag.confirmed { "Case open" } }
        @else if r.decision.is_some() { span.tag { "Reviewed" } }
        @else { span.tag.new { "To review" } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::client::Reason;
    use crate::detect::signals::SignalId;

    #[test]
    fn the_sentence_names_the_strongest_reason_and_counts_the_rest() {
        let mut c = Client::default();
        assert_eq!(why(&c), "No reason recorded yet.");
        for (signal, score, count) in [
            (SignalId::RequestRate, 5.0, 1),
            (SignalId::CanaryFetched, 40.0, 12),
            (SignalId::KnownAgent, 0.0, 1),
        ] {
            c.reasons.push(Reason {
                signal,
                score,
                count,
                events: vec![],
                detail: String::new(),
            });
        }
        assert_eq!(
            why(&c),
            "Downloaded canary faces, hidden from human visitors (12×). And 1 other reason."
        );
    }

    #[test]
    fn like_patterns_match_metacharacters_literally() {
        assert_eq!(like("50%_a\\b"), "50\\%\\_a\\\\b");
        let (cond, values) = filter(
            &Params {
                q: "1.2.3.4".into(),
                level: "bogus'; DROP TABLE clients; --".into(),
                ..Params::default()
            },
            0,
        );
        assert!(!cond.contains("DROP"), "values are bound, never spliced");
        assert_eq!(values.len(), 3);
    }
}
