//! The fleet detector: over the central store, what no single instance sees. One actor (the
//! same address and user agent under the fleet's key, whatever site or replica it reached)
//! is followed across instances and sites: hidden canaries it took anywhere, canaries planted
//! by one instance and fetched through another, and its request rate summed over replicas.
//!
//! It runs in whichever instance holds PostgreSQL's advisory lock for it (one at a time), over
//! the last `WINDOW_MS` of events, and keeps one row per flagged actor (`fleet_flags`) and a row
//! of history per change of level.

use super::FleetError;
use crate::config::{DetectConfig, Level};
use crate::store::now_ms;
use tokio_postgres::GenericClient;

/// Events looked at: the last day.
pub const WINDOW_MS: i64 = 86_400_000;
const LOCK: i64 = 0x6670_6465_7465_6374; // "fpdetect"

/// One actor's record across the fleet, as the detector reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub actor: String,
    pub requests: i64,
    pub canaries: i64,
    pub traps: i64,
    pub instances: Vec<String>,
    pub sites: Vec<String>,
    pub client_keys: Vec<String>,
    /// Canary fetches of tokens planted by another instance than the one that served them.
    pub crossed: i64,
    /// Most requests in one minute, summed over every instance.
    pub per_minute: i64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// The level, score and reasons of an actor; `None` when nothing is worth a flag.
pub fn judge(s: &Seen, rate_limit: u32) -> Option<(&'static str, f64, Vec<String>)> {
    let mut reasons = Vec::new();
    let mut score = 0.0;
    if s.canaries > 0 {
        score += 40.0 + 5.0 * (s.canaries.min(8) as f64);
        reasons.push(format!(
            "fetched {} hidden canary image(s) through {} instance(s) of {} site(s)",
            s.canaries,
            s.instances.len(),
            s.sites.len()
        ));
    }
    if s.traps > 0 {
        score += 20.0;
        reasons.push(format!("walked {} trap gallery page(s)", s.traps));
    }
    if s.crossed > 0 {
        score += 15.0;
        reasons.push(format!(
            "{} canary(ies) planted by one instance were fetched through another: one actor \
             spread over replicas",
            s.crossed
        ));
    }
    if s.sites.len() > 1 && (s.canaries > 0 || s.traps > 0) {
        score += 15.0;
        reasons.push(format!("harvested on {} sites", s.sites.len()));
    }
    let fast = s.per_minute > i64::from(rate_limit);
    if fast {
        score += 15.0;
        reasons.push(format!(
            "up to {} requests a minute summed over {} instance(s) (limit {rate_limit})",
            s.per_minute,
            s.instances.len()
        ));
    }
    let level = if (s.canaries > 0 || s.traps > 0)
        && (s.instances.len() > 1 || s.sites.len() > 1 || s.canaries >= 3 || s.traps > 0)
    {
        "harvester"
    } else if s.canaries > 0 || s.traps > 0 {
        "suspect"
    } else if fast {
        "watch"
    } else {
        return None;
    };
    Some((level, f64::min(score, 100.0), reasons))
}

/// Where a flag that reached `level` or above goes (the alert webhooks), as it changes level.
pub struct Alerting {
    pub level: Level,
    pub notify: Box<dyn Fn(serde_json::Value) + Send + Sync>,
}

/// Runs the detector once if no other instance is running it: the number of actors flagged,
/// or `None` when another instance held the lock.
pub async fn run(
    client: &impl GenericClient,
    url: &str,
    config: &DetectConfig,
    alerting: Option<&Alerting>,
) -> Result<Option<usize>, FleetError> {
    let pg = |e: tokio_postgres::Error| FleetError::pg(url, e);
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(pg)?
        .get(0);
    if !locked {
        return Ok(None);
    }
    let result = detect(client, url, config, alerting).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await
        .map_err(pg)?;
    result.map(Some)
}

async fn detect(
    client: &impl GenericClient,
    url: &str,
    config: &DetectConfig,
    alerting: Option<&Alerting>,
) -> Result<usize, FleetError> {
    let pg = |e: tokio_postgres::Error| FleetError::pg(url, e);
    let now = now_ms();
    let rows = client
        .query(
            "WITH recent AS (
                 SELECT instance, site, client_key, kind, status, ts_ms, token,
                     coalesce(actor, 'k:' || site || ' ' || client_key) AS actor
                 FROM events WHERE ts_ms >= $1
             ),
             suspicious AS (
                 SELECT DISTINCT actor FROM recent
                 WHERE kind IN ('canary', 'trap') AND status < 400
             ),
             per_minute AS (
                 SELECT actor, max(n) AS peak FROM (
                     SELECT actor, ts_ms / 60000, count(*) AS n FROM recent
                     GROUP BY 1, 2) m
                 GROUP BY actor
             ),
             crossed AS (
                 SELECT r.actor, count(*) AS n
                 FROM recent r JOIN tokens t
                     ON t.token = r.token AND t.minting_event IS NOT NULL
                 WHERE r.kind = 'canary' AND r.status < 400 AND t.instance <> r.instance
                 GROUP BY r.actor
             )
             SELECT r.actor, count(*),
                 count(*) FILTER (WHERE r.kind = 'canary' AND r.status < 400),
                 count(*) FILTER (WHERE r.kind = 'trap' AND r.status < 400),
                 array_agg(DISTINCT r.instance), array_agg(DISTINCT r.site),
                 array_agg(DISTINCT r.client_key), coalesce(max(c.n), 0),
                 max(p.peak), min(r.ts_ms), max(r.ts_ms)
             FROM recent r
                 JOIN per_minute p ON p.actor = r.actor
                 LEFT JOIN crossed c ON c.actor = r.actor
             WHERE r.actor IN (SELECT actor FROM suspicious) OR p.peak > $2
             GROUP BY r.actor",
            &[
                &(now - WINDOW_MS),
                &i64::from(config.signals.request_rate.per_minute),
            ],
        )
        .await
        .map_err(pg)?;
    let mut flagged = 0;
    for row in rows {
        let seen = Seen {
            actor: row.get(0),
            requests: row.get(1),
            canaries: row.get(2),
            traps: row.get(3),
            instances: row.get(4),
            sites: row.get(5),
            client_keys: row.get(6),
            crossed: row.get(7),
            per_minute: row.get(8),
            first_ms: row.get(9),
            last_ms: row.get(10),
        };
        let Some((level, score, reasons)) = judge(&seen, config.signals.request_rate.per_minute)
        else {
            continue;
        };
        flagged += 1;
        let reasons = reasons.join("; ");
        let changed = client
            .query_opt(
                "INSERT INTO fleet_flags (actor, level, score, reasons, instances, sites,
                     client_keys, requests, canaries, first_ms, last_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (actor) DO UPDATE SET level = EXCLUDED.level,
                     score = EXCLUDED.score, reasons = EXCLUDED.reasons,
                     instances = EXCLUDED.instances, sites = EXCLUDED.sites,
                     client_keys = EXCLUDED.client_keys, requests = EXCLUDED.requests,
                     canaries = EXCLUDED.canaries, last_ms = EXCLUDED.last_ms,
                     first_ms = least(fleet_flags.first_ms, EXCLUDED.first_ms),
                     updated_ms = EXCLUDED.updated_ms
                 RETURNING (xmax = 0) OR level IS DISTINCT FROM
                     (SELECT h.level FROM fleet_flag_history h WHERE h.actor = $1
                      ORDER BY h.id DESC LIMIT 1)",
                &[
                    &seen.actor,
                    &level,
                    &score,
                    &reasons,
                    &seen.instances,
                    &seen.sites,
                    &seen.client_keys,
                    &seen.requests,
                    &seen.canaries,
                    &seen.first_ms,
                    &seen.last_ms,
                    &now,
                ],
            )
            .await
            .map_err(pg)?
            .is_some_and(|r| r.get::<_, Option<bool>>(0).unwrap_or(true));
        if changed {
            client
                .execute(
                    "INSERT INTO fleet_flag_history (actor, ts_ms, level, score, reasons)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&seen.actor, &now, &level, &score, &reasons],
                )
                .await
                .map_err(pg)?;
            tracing::warn!(actor = %seen.actor, level, instances = seen.instances.len(), sites = seen.sites.len(), "fleet flag");
            if let Some(a) = alerting.filter(|a| Level::parse(level).is_some_and(|l| l >= a.level))
            {
                (a.notify)(serde_json::json!({
                    "kind": "fleet",
                    "key": seen.actor,
                    "level": level,
                    "score": score,
                    "reasons": reasons,
                    "instances": seen.instances,
                    "sites": seen.sites,
                    "client_keys": seen.client_keys,
                    "requests": seen.requests,
                    "canaries": seen.canaries,
                    "first_seen_ms": seen.first_ms,
                    "last_seen_ms": seen.last_ms,
                }));
            }
        }
    }
    Ok(flagged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> Seen {
        Seen {
            actor: "a:1".into(),
            requests: 40,
            canaries: 0,
            traps: 0,
            instances: vec!["a".into()],
            sites: vec!["s".into()],
            client_keys: vec!["c:1".into()],
            crossed: 0,
            per_minute: 40,
            first_ms: 0,
            last_ms: 1,
        }
    }

    #[test]
    fn canaries_over_replicas_make_a_harvester_and_a_rate_alone_only_a_watch() {
        assert_eq!(judge(&seen(), 120), None);
        let one = Seen {
            canaries: 1,
            ..seen()
        };
        assert_eq!(judge(&one, 120).unwrap().0, "suspect");
        let spread = Seen {
            canaries: 2,
            crossed: 1,
            instances: vec!["a".into(), "b".into(), "c".into()],
            ..seen()
        };
        let (level, score, reasons) = judge(&spread, 120).unwrap();
        assert_eq!(level, "harvester");
        assert!(score > judge(&one, 120).unwrap().1);
        assert!(
            reasons.iter().any(|r| r.contains("through another")),
            "{reasons:?}"
        );
        let fast = Seen {
            per_minute: 500,
            instances: vec!["a".into(), "b".into()],
            ..seen()
        };
        let (level, _, reasons) = judge(&fast, 120).unwrap();
        assert_eq!(level, "watch");
        assert!(
            reasons[0].contains("summed over 2 instance(s)"),
            "{reasons:?}"
        );
    }
}
