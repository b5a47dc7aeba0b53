//! The fleet's flags: actors the fleet detector flagged over every instance and site shipping
//! to the fleet store (`[fleet] postgres`), read from PostgreSQL. Without a fleet store, or
//! while it does not answer, the page says so; the rest of the dashboard never waits for it.

use super::layout::{self, int, shown, Nav};
use super::web::{self, Fail, Signed};
use super::Dashboard;
use crate::fleet::{self, read::FleetFlag};
use crate::store::now_ms;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use std::sync::Arc;
use std::time::Duration;

/// The fleet store's pool, made at the first visit.
pub type Pool = std::sync::OnceLock<Result<deadpool_postgres::Pool, String>>;

pub async fn page(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
) -> Result<Response, Fail> {
    let body = match fleet::url(&d.config) {
        None => html! {
            div.heading { h1 { "Fleet" } }
            p.empty {
                "No fleet store is configured. Replicas and sites that ship to one PostgreSQL \
                 ([fleet] postgres in the config file) are followed here as one fleet: see \
                 docs/fleet.md."
            }
        },
        Some(url) => {
            let timeout = Duration::from_secs(d.config.fleet.timeout_secs);
            let pool = d
                .fleet
                .get_or_init(|| fleet::ship::pool(&url, timeout, 2).map_err(|e| e.to_string()));
            let flags = match pool {
                Ok(pool) => match pool.get().await {
                    Ok(client) => fleet::read::flags(&**client, &url)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(fleet::FleetError::pg(&url, e).to_string()),
                },
                Err(e) => Err(e.clone()),
            };
            match flags {
                Ok(flags) => list(&flags),
                Err(e) => html! {
                    div.heading { h1 { "Fleet" } }
                    p.empty { "The fleet store does not answer: " (shown(&e, 300)) ". This \
                               instance serves and records as usual; shipping resumes when it is back." }
                },
            }
        }
    };
    Ok(web::html(layout::page("Fleet", Nav::Fleet, &me, body)))
}

fn list(flags: &[FleetFlag]) -> Markup {
    let now = now_ms();
    html! {
        div.heading {
            h1 { "Fleet" }
            p.muted { (int(flags.len() as u64)) @if flags.len() == 1 { " actor" } @else { " actors" }
                " flagged across every instance and site shipping to the fleet store." }
        }
        @if flags.is_empty() {
            p.empty { "No actor flagged by the fleet detector yet. It flags a client that takes \
                       canaries or walks traps through several replicas or sites, or whose \
                       request rate summed over them is too high." }
        } @else {
            div.scroll {
                table #fleet .stack {
                    thead { tr {
                        th { "Level" } th { "Actor" } th { "Instances and sites" }
                        th { "Last seen" } th.num { "Requests" } th.num { "Canaries" } th { "Why" }
                    } }
                    tbody {
                        @for f in flags {
                            tr.flag {
                                td data-label="Level" {
                                    (layout::level(Some(&f.level), false))
                                    br; span.muted { "score " (format!("{:.0}", f.score)) }
                                }
                                td data-label="Actor" {
                                    span.addr { (shown(&f.actor, 40)) }
                                    @for k in &f.client_keys {
                                        br; (layout::client_link(k))
                                    }
                                }
                                td data-label="Instances and sites" {
                                    (shown(&f.instances.join(", "), 120))
                                    br; span.muted { (shown(&f.sites.join(", "), 120)) }
                                }
                                td.time data-label="Last seen" { (layout::when_short(f.last_ms)) br; span.muted { (layout::ago(f.last_ms, now)) } }
                                td.num data-label="Requests" { (int(f.requests.max(0) as u64)) }
                                td.num data-label="Canaries" { (int(f.canaries.max(0) as u64)) }
                                td.why data-label="Why" { (shown(&f.reasons, 400)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
