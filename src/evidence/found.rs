//! Images found elsewhere (`--found`, and those attached to the case in the dashboard):
//! copied into the bundle under `found/`, matched to the tokens they came from, and the match results written to `found/matches.json`. Only the
//! actor's fetches are named; another client's fetch of the same token is counted, not shown.

use super::case::Case;
use super::files::Files;
use super::report::model;
use super::EvidenceError;
use crate::canary::matcher::{decode_image, Matcher};
use crate::config::Config;
use crate::store::tokens;
use rusqlite::Connection;

pub fn attach(
    conn: &Connection,
    config: &Config,
    case: &Case,
    found: Vec<(String, Vec<u8>)>,
    files: &mut Files,
) -> Result<Vec<model::Found>, EvidenceError> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let matcher = Matcher::load(conn, config.matching.clone())?;
    let mut out = Vec::new();
    let mut results = Vec::new();
    for (i, (name, bytes)) in found.into_iter().enumerate() {
        let (bytes, img) = decode_image(&name, bytes, &config.matching)
            .map_err(|e| EvidenceError::Found(format!("{e}")))?;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let file = format!("found/{:02}-{safe}", i + 1);
        let matches = matcher.match_image(conn, &bytes, &img)?;
        files.insert(file.clone(), bytes);
        let mut listed = Vec::new();
        for m in &matches {
            let fetches = tokens::fetches(conn, &m.token)?;
            let (mine, others): (Vec<_>, Vec<_>) = fetches
                .iter()
                .partition(|f| case.actor_keys.contains(&f.client_key));
            listed.push(serde_json::json!({
                "token": m.token.to_string(),
                "confidence": m.confidence,
                "how": format!("{:?}", m.how).to_lowercase(),
                "actor_fetch_event_ids": mine.iter().map(|f| f.event_id).collect::<Vec<_>>(),
                "other_clients_fetches": others.len(),
            }));
        }
        let best = matches.first();
        let actor_ids: Vec<i64> = match best {
            Some(m) => tokens::fetches(conn, &m.token)?
                .into_iter()
                .filter(|f| case.actor_keys.contains(&f.client_key))
                .map(|f| f.event_id)
                .collect(),
            None => Vec::new(),
        };
        out.push(model::Found {
            file: file.clone(),
            matched: best.is_some(),
            token: best.map(|m| m.token.to_string()),
            confidence: best.map(|m| m.confidence).unwrap_or(0.0),
            method: best
                .map(|m| format!("{:?}", m.how).to_lowercase())
                .unwrap_or_default(),
            by_actor: !actor_ids.is_empty(),
            fetch_event_ids: actor_ids,
        });
        results.push(serde_json::json!({"file": file, "given_as": name, "matches": listed}));
    }
    files.insert("found/matches.json", serde_json::to_vec_pretty(&results)?);
    Ok(out)
}
