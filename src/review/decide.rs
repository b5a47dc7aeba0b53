//! A person's decision on a flag, and the allow-list it teaches. Confirming opens a case (the
//! actor's records kept past retention, its raw addresses kept); dismissing puts the key on the
//! allow-list (the running detector reads it at its next persist) and can be undone. Every
//! decision is a `reviews` row and a line of the flag's history, written in one transaction.

use super::layout::{self, shown, when_short, Nav};
use super::web::{self, blocking, Fail, Signed};
use super::Dashboard;
use crate::detect::{stored, Client};
use crate::store::clients::{self, HistoryEntry};
use crate::store::now_ms;
use crate::store::reviews::{self, Decision};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Form};
use maud::html;
use rusqlite::{Connection, TransactionBehavior};
use std::sync::Arc;

/// Longest note kept, in characters.
const NOTE_MAX: usize = 2000;

#[derive(serde::Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
}

pub async fn review(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
    Path(key): Path<String>,
    Form(f): Form<ReviewForm>,
) -> Result<Response, Fail> {
    me.check(&f.csrf)?;
    let decision = Decision::parse(&f.decision)
        .ok_or_else(|| Fail::Bad("Choose Confirm, Dismiss or Undo the dismissal.".into()))?;
    let note: String = f.note.trim().chars().take(NOTE_MAX).collect();
    let k = key.clone();
    blocking(&d, move |_, conn| {
        decide(conn, &k, &me.reviewer, decision, &note, now_ms())
    })
    .await?;
    let done = match decision {
        Decision::Confirm => "confirmed",
        Decision::Dismiss => "dismissed",
        Decision::Undismiss => "undismissed",
    };
    Ok(web::see(&format!(
        "{}?done={done}",
        layout::client_href(&key)
    )))
}

/// Records one decision on `key` by `reviewer`, with its effects, in one transaction.
pub fn decide(
    conn: &mut Connection,
    key: &str,
    reviewer: &str,
    decision: Decision,
    note: &str,
    now: i64,
) -> Result<(), Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(client) = clients::get::<Client>(&tx, key)? else {
        return Err(Fail::NotFound(format!(
            "No client or cluster {} is known.",
            shown(key, 80)
        )));
    };
    let by = format!("{reviewer} (dashboard)");
    match decision {
        Decision::Confirm => {
            // Confirming what was dismissed takes the dismissal back first.
            stored::undismiss_in(&tx, key, &by, "", now)?;
            let why = match note.is_empty() {
                true => format!("flag confirmed by {reviewer}"),
                false => format!("flag confirmed by {reviewer}: {note}"),
            };
            // The case names who opened it; its note is theirs.
            let case_note = match note.is_empty() {
                true => "flag confirmed",
                false => note,
            };
            reviews::open_case(&tx, key, reviewer, case_note, now)?;
            for k in client.members.iter().map(String::as_str).chain([key]) {
                clients::hold_for_case(&tx, k, now)?;
            }
            clients::append_history(
                &tx,
                &HistoryEntry {
                    key,
                    at_ms: now,
                    level: client.level.map(|l| l.as_str()),
                    score: client.score,
                    at_event: 0,
                    requests: client.counts.requests,
                    note: &format!("{why} (case opened; records kept past retention)"),
                },
                None,
            )?;
        }
        Decision::Dismiss => {
            stored::dismiss_in(&tx, key, &by, note, now)?;
        }
        Decision::Undismiss => {
            if !stored::undismiss_in(&tx, key, &by, note, now)? {
                return Err(Fail::Bad(format!(
                    "{} is not dismissed: there is nothing to undo.",
                    shown(key, 80)
                )));
            }
        }
    }
    reviews::add(&tx, key, reviewer, decision, note, now)?;
    tx.commit()?;
    Ok(())
}

pub async fn allow_list(
    State(d): State<Arc<Dashboard>>,
    Extension(me): Extension<Signed>,
) -> Result<Response, Fail> {
    let rows = blocking(&d, |_, conn| Ok(reviews::allow_list(conn)?)).await?;
    let body = html! {
        div.heading {
            h1 { "Allow-list" }
            p.muted { "Keys a person dismissed: they stay recorded but are never flagged or held. Undo puts a key back under the detector's judgement." }
        }
        @if rows.is_empty() {
            p.empty { "Nothing dismissed yet. Dismiss a flag from its client page when it is harmless (your own uptime checker, a partner's crawler)." }
        } @else {
            div.scroll {
                table #allow .stack {
                    thead { tr { th { "Key" } th { "User agent" } th { "Note" } th { "Dismissed" } th {} } }
                    tbody {
                        @for a in &rows {
                            tr {
                                td data-label="Key" { (layout::client_link(&a.key)) }
                                td.agent data-label="User agent" { (shown(a.agent.as_deref().unwrap_or("—"), 100)) }
                                td data-label="Note" { (shown(&a.note, 300)) }
                                td data-label="Dismissed" { (when_short(a.dismissed_ms)) }
                                td {
                                    form.undo method="post" action=(format!("{}/review", layout::client_href(&a.key))) {
                                        input type="hidden" name="csrf" value=(me.csrf);
                                        input type="hidden" name="note" value="undone from the allow-list";
                                        button type="submit" name="decision" value="undismiss" { "Undo" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(web::html(layout::page("Allow-list", Nav::Allow, &me, body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Level;
    use crate::store::Store;

    #[test]
    fn confirm_opens_a_case_and_holds_dismiss_allows_and_undo_reverses() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Store::open(dir.path()).unwrap().into_conn();
        let c = Client {
            key: "c:aa".into(),
            agent: Some("img2dataset".into()),
            level: Some(Level::Harvester),
            score: 120.0,
            ..Client::default()
        };
        stored::upsert(&conn, &c, 1).unwrap();
        let held = |conn: &Connection| clients::is_held(conn, "c:aa").unwrap();
        let allowed = |conn: &Connection| clients::allowed(conn).unwrap().contains("c:aa");

        decide(
            &mut conn,
            "c:aa",
            "Alice",
            Decision::Dismiss,
            "our checker",
            10,
        )
        .unwrap();
        assert!(allowed(&conn) && !held(&conn));
        assert!(matches!(
            decide(&mut conn, "c:bb", "Alice", Decision::Dismiss, "", 11),
            Err(Fail::NotFound(_))
        ));
        decide(
            &mut conn,
            "c:aa",
            "Bob",
            Decision::Confirm,
            "took 40 canaries",
            20,
        )
        .unwrap();
        assert!(!allowed(&conn), "confirming takes the dismissal back");
        assert!(held(&conn));
        let case = reviews::case(&conn, "c:aa").unwrap().unwrap();
        assert_eq!(case.opened_by, "Bob");
        assert_eq!(case.note, "took 40 canaries");
        assert!(matches!(
            decide(&mut conn, "c:aa", "Bob", Decision::Undismiss, "", 21),
            Err(Fail::Bad(_))
        ));
        let r = reviews::of(&conn, "c:aa").unwrap();
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.reviewer.as_str(), r.decision.as_str()))
            .collect();
        assert_eq!(got, [("Bob", "confirm"), ("Alice", "dismiss")]);
        let history = clients::history(&conn, "c:aa").unwrap();
        assert!(history
            .iter()
            .any(|h| h.3.contains("dismissed by Alice (dashboard): our checker")));
        assert!(history
            .iter()
            .any(|h| h.3.contains("flag confirmed by Bob")));
        // The case's hold survives a later dismissal's release.
        decide(&mut conn, "c:aa", "Carol", Decision::Dismiss, "", 30).unwrap();
        assert!(
            held(&conn),
            "a case keeps its records whatever the flag becomes"
        );
    }
}
