//! Scoring a run: what the generator sent (per profile), what the server recorded (its event
//! store), and what the detector concluded (`faceprobe clients --json`, read against the
//! results contract of issue 4 and tolerant of fields it does not yet fill). The unit of every
//! figure is a source address: each address belongs to exactly one actor of one profile.

use super::net::Sent;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The kinds of visitor the generator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    People,
    Polite,
    Bulk,
    Disguised,
    Rendering,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::People,
        Profile::Polite,
        Profile::Bulk,
        Profile::Disguised,
        Profile::Rendering,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::People => "people",
            Profile::Polite => "polite",
            Profile::Bulk => "bulk",
            Profile::Disguised => "disguised",
            Profile::Rendering => "rendering",
        }
    }

    pub fn harvester(self) -> bool {
        matches!(
            self,
            Profile::Bulk | Profile::Disguised | Profile::Rendering
        )
    }

    /// Where its addresses are, for the report.
    pub fn addresses_note(self) -> &'static str {
        match self {
            Profile::People => {
                "127.10.x.y: one address per session, spread over 250 /24s (4 sessions per /24 at 1,000 sessions)"
            }
            Profile::Polite => "127.30.0.1",
            Profile::Bulk => "127.40.<actor>.1: one address per actor",
            Profile::Disguised => {
                "127.20-29.x.y: 50 addresses per actor, each in a /24 of its own, so that a /24 grouping alone cannot tie them"
            }
            Profile::Rendering => "127.50.<actor>.1-2: two addresses per actor, in one /24",
        }
    }
}

/// One person's session, a crawler or a harvester, and every request it made.
#[derive(Debug, Clone)]
pub struct Actor {
    pub profile: Profile,
    pub name: String,
    pub addresses: Vec<Ipv4Addr>,
    pub agents: Vec<String>,
    pub sent: Vec<Sent>,
}

/// One row of the server's `events` table, as far as the report needs it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub client_ip: Option<String>,
    pub client_key: String,
    pub path: String,
    pub kind: String,
}

/// A detection level, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Watch,
    Suspect,
    Harvester,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Watch, Level::Suspect, Level::Harvester];

    fn parse(v: &Value) -> Option<Level> {
        match v.as_str()? {
            "watch" => Some(Level::Watch),
            "suspect" => Some(Level::Suspect),
            "harvester" => Some(Level::Harvester),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Watch => "watch",
            Level::Suspect => "suspect",
            Level::Harvester => "harvester",
        }
    }
}

/// When a key reached a level.
#[derive(Debug, Clone, Copy)]
struct LevelAt {
    level: Level,
    at_ms: Option<i64>,
    at_event: Option<i64>,
    /// The key's request count then (for a cluster: summed over its members).
    requests: Option<i64>,
}

/// One line of `faceprobe clients --json`.
#[derive(Debug, Clone)]
pub struct Row {
    key: String,
    is_cluster: bool,
    level: Option<Level>,
    score: f64,
    dismissed: bool,
    address: Option<String>,
    cluster: Option<String>,
    members: Vec<String>,
    levels: Vec<LevelAt>,
    reasons: Vec<String>,
    /// `counts.requests`: the key's request count so far.
    requests: Option<i64>,
}

impl Row {
    /// What must stop changing before the results are read: level, history, request count.
    pub fn fingerprint(&self) -> String {
        format!(
            "{} {:?} {} {:?}",
            self.key,
            self.level,
            self.levels.len(),
            self.requests
        )
    }

    /// Reads a row, keeping what is there: only `key` is required.
    pub fn parse(v: &Value) -> Option<Row> {
        let key = v.get("key")?.as_str()?.to_string();
        let text = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
        let is_cluster = text("kind").map_or(key.starts_with("k:"), |k| k == "cluster");
        let levels = v
            .get("levels")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|l| {
                        Some(LevelAt {
                            level: Level::parse(l.get("level")?)?,
                            at_ms: l.get("at_ms").and_then(Value::as_i64),
                            at_event: l.get("at_event").and_then(Value::as_i64),
                            requests: l.get("requests").and_then(Value::as_i64),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reasons = v
            .get("reasons")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        let s = r.get("signal")?.as_str()?;
                        let score = r.get("score").and_then(Value::as_f64).unwrap_or(0.0);
                        Some(format!("{s} {score:.0}"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Row {
            key,
            is_cluster,
            level: v.get("level").and_then(Level::parse),
            score: v.get("score").and_then(Value::as_f64).unwrap_or(0.0),
            dismissed: v.get("dismissed").and_then(Value::as_bool).unwrap_or(false),
            address: text("address"),
            cluster: text("cluster"),
            members: v
                .get("members")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            levels,
            reasons,
            requests: v
                .get("counts")
                .and_then(|c| c.get("requests"))
                .and_then(Value::as_i64),
        })
    }

    /// Every level this key ever reached, with when (a level shown with no history entry
    /// counts, without a time). A dismissed row reached nothing.
    fn reached(&self) -> Vec<LevelAt> {
        if self.dismissed {
            return Vec::new();
        }
        let mut out = self.levels.clone();
        if let Some(l) = self.level {
            if !out.iter().any(|e| e.level >= l) {
                out.push(LevelAt {
                    level: l,
                    at_ms: None,
                    at_event: None,
                    requests: None,
                });
            }
        }
        out
    }
}

/// A pass or a failure, and the figure behind it.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

/// What one profile sent and what the server recorded of it.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub actors: usize,
    pub addresses: usize,
    pub sent: usize,
    /// Requests that got no response.
    pub errors: usize,
    pub recorded: usize,
    /// Recorded events by kind (page, image, asset, robots, canary, trap, other).
    pub kinds: BTreeMap<String, usize>,
    /// Recorded events whose path is under /_fp/.
    pub fp_paths: usize,
    pub private_paths: usize,
}

/// How the run was set up and how long it took.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub origin: String,
    pub data_dir: String,
    pub sizes: String,
    pub traffic_secs: f64,
    pub catch_up_secs: f64,
    pub notes: Vec<String>,
}

/// A whole run's report.
pub struct Report {
    pub setup: Setup,
    /// Every actor: profile, source addresses, user agents, requests made (JSON output only).
    pub actors: Vec<Value>,
    pub traffic: Vec<(Profile, Traffic)>,
    /// Checks of the generator itself: without them the detection figures mean nothing.
    pub checks: Vec<Check>,
    /// The detector's results scored, or why they could not be read.
    pub detection: Result<Detection, String>,
}

/// Addresses flagged per profile.
#[derive(Debug, Clone)]
pub struct Flags {
    pub profile: Profile,
    pub addresses: usize,
    /// Addresses that reached at least watch, suspect, harvester.
    pub at_least: [usize; 3],
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// How soon one harvester was caught.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub name: String,
    pub profile: Profile,
    pub agents: Vec<String>,
    pub addresses: usize,
    pub requests: usize,
    /// Addresses flagged ≥ suspect.
    pub flagged: usize,
    /// The actor's own request count (all its addresses) when its first address reached each
    /// level.
    pub first: [Option<usize>; 3],
    /// The `requests` the detector gave with that first flag (the key's count).
    pub key_requests: [Option<i64>; 3],
    /// The actor's request count when half and when 90 % of its addresses were ≥ suspect.
    pub half: Option<usize>,
    pub ninety: Option<usize>,
    /// Clusters holding its clients: key, level, members of this actor / all members.
    pub clusters: Vec<String>,
    pub reasons: Vec<String>,
}

pub struct Detection {
    pub rows: usize,
    pub flags: Vec<Flags>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub timelines: Vec<Timeline>,
    /// People and polite addresses flagged above watch, with why (the first few).
    pub false_positives: Vec<String>,
    pub targets: Vec<Check>,
    pub notes: Vec<String>,
}

/// How precision and recall are computed, printed with them.
pub const METHOD: &str = "Unit: a source address (each belongs to one actor of one profile). An address is \
flagged at level L when one of its clients (address + user agent) reached L, or a cluster holding one of \
its clients did; the highest level ever reached counts (`levels`), dismissed rows do not. Positives: the \
addresses of bulk, disguised and rendering harvesters; predicted positives: addresses flagged >= suspect. \
Precision = TP / (TP + FP), recall = TP / (TP + FN) over all addresses; per harvester profile, recall \
counts its own addresses and precision sets its TP against every false positive (people and polite \
addresses flagged >= suspect); for people and the polite crawler the share flagged >= suspect is shown \
as FP. \"Requests before a level\": the actor's own requests (all its addresses) recorded up to the \
event at which the level was reached (`at_event`), or sent by then (`at_ms`) when the event is unknown.";

/// Per address: the earliest time it reached each level, via its clients or their clusters.
#[derive(Debug, Clone, Default)]
struct AddressFlags {
    first: [Option<LevelAt>; 3],
    /// Keys that flagged it (clients, clusters).
    via: HashSet<String>,
}

impl AddressFlags {
    fn max(&self) -> Option<Level> {
        Level::ALL
            .into_iter()
            .rev()
            .find(|l| self.first[*l as usize].is_some())
    }

    fn add(&mut self, key: &str, e: LevelAt) {
        self.via.insert(key.to_string());
        for l in Level::ALL.into_iter().filter(|l| *l <= e.level) {
            let slot = &mut self.first[l as usize];
            let earlier = match slot {
                None => true,
                Some(old) => order(&e) < order(old),
            };
            if earlier {
                *slot = Some(e);
            }
        }
    }
}

/// Earlier events first; unknown times last.
fn order(e: &LevelAt) -> (i64, i64) {
    (e.at_event.unwrap_or(i64::MAX), e.at_ms.unwrap_or(i64::MAX))
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Scores what the detector said (`rows`) against who did what (`actors`, `events`).
pub fn detect(actors: &[Actor], events: &[Event], rows: &[Row]) -> Detection {
    // Client keys to addresses: the event store knows, the row's address field may.
    let mut key_ip: HashMap<&str, String> = HashMap::new();
    for e in events {
        if let Some(ip) = &e.client_ip {
            key_ip
                .entry(e.client_key.as_str())
                .or_insert_with(|| ip.clone());
        }
    }
    let by_key: HashMap<&str, &Row> = rows.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut flags: HashMap<String, AddressFlags> = HashMap::new();
    let mut unmapped = 0usize;
    for row in rows.iter().filter(|r| !r.is_cluster) {
        let ip = key_ip.get(row.key.as_str()).cloned().or_else(|| {
            row.address
                .clone()
                .filter(|a| a.parse::<Ipv4Addr>().is_ok())
        });
        let Some(ip) = ip else {
            unmapped += 1;
            continue;
        };
        let f = flags.entry(ip).or_default();
        for e in row.reached() {
            f.add(&row.key, e);
        }
        let mut clusters: Vec<&Row> = Vec::new();
        if let Some(c) = row.cluster.as_deref().and_then(|c| by_key.get(c)) {
            clusters.push(c);
        }
        clusters.extend(
            rows.iter()
                .filter(|c| c.is_cluster && c.members.contains(&row.key)),
        );
        for c in clusters {
            for e in c.reached() {
                f.add(&c.key, e);
            }
        }
    }
    let empty = AddressFlags::default();
    let flags_of = |a: &Ipv4Addr| flags.get(&a.to_string()).unwrap_or(&empty);

    // Event ids per actor, to count its requests up to a flag.
    let mut actor_of: HashMap<String, usize> = HashMap::new();
    for (i, a) in actors.iter().enumerate() {
        for addr in &a.addresses {
            actor_of.insert(addr.to_string(), i);
        }
    }
    let mut ids: Vec<Vec<i64>> = vec![Vec::new(); actors.len()];
    for e in events {
        if let Some(i) = e.client_ip.as_ref().and_then(|ip| actor_of.get(ip)) {
            ids[*i].push(e.id);
        }
    }
    // A level with neither event nor time was still reached by the end of the run: it counts
    // at the key's own `requests`, else at the actor's last request (an upper bound).
    let requests_at = |i: usize, e: &LevelAt| -> Option<usize> {
        if let Some(ev) = e.at_event {
            return Some(ids[i].partition_point(|id| *id <= ev));
        }
        if let Some(ms) = e.at_ms {
            return Some(actors[i].sent.iter().filter(|s| s.at_ms <= ms).count());
        }
        let last = actors[i].sent.len();
        Some(e.requests.map_or(last, |n| (n.max(0) as usize).min(last)))
    };
    let untimed = rows
        .iter()
        .flat_map(|r| r.reached())
        .filter(|e| e.at_event.is_none() && e.at_ms.is_none())
        .count();

    let mut per: BTreeMap<Profile, Flags> = BTreeMap::new();
    for p in Profile::ALL {
        per.insert(
            p,
            Flags {
                profile: p,
                addresses: 0,
                at_least: [0; 3],
                precision: None,
                recall: None,
            },
        );
    }
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    let mut false_positives = Vec::new();
    for a in actors {
        let f = per.get_mut(&a.profile).expect("every profile");
        for addr in &a.addresses {
            f.addresses += 1;
            let af = flags_of(addr);
            if let Some(max) = af.max() {
                for l in Level::ALL.into_iter().filter(|l| *l <= max) {
                    f.at_least[l as usize] += 1;
                }
            }
            let positive = af.max() >= Some(Level::Suspect);
            match (a.profile.harvester(), positive) {
                (true, true) => tp += 1,
                (true, false) => fn_ += 1,
                (false, true) => fp += 1,
                (false, false) => {}
            }
            if !a.profile.harvester() && af.max() > Some(Level::Watch) && false_positives.len() < 20
            {
                let why: Vec<String> = af
                    .via
                    .iter()
                    .filter_map(|k| by_key.get(k.as_str()))
                    .map(|r| {
                        format!(
                            "{} {} score {:.0} [{}]",
                            r.key,
                            r.level.map_or("-", Level::name),
                            r.score,
                            r.reasons.join(", ")
                        )
                    })
                    .collect();
                false_positives.push(format!(
                    "{} {addr} ({}): {}",
                    a.name,
                    a.agents.join(" | "),
                    why.join("; ")
                ));
            }
        }
    }
    for f in per.values_mut() {
        if f.profile.harvester() {
            let tp_p = f.at_least[Level::Suspect as usize];
            f.recall = ratio(tp_p, f.addresses);
            f.precision = ratio(tp_p, tp_p + fp);
        }
    }

    let mut timelines = Vec::new();
    for (i, a) in actors
        .iter()
        .enumerate()
        .filter(|(_, a)| a.profile.harvester())
    {
        let mut first: [Option<LevelAt>; 3] = [None; 3];
        let mut suspect_at: Vec<usize> = Vec::new();
        let mut flagged = 0;
        let mut via: HashSet<String> = HashSet::new();
        for addr in &a.addresses {
            let af = flags_of(addr);
            via.extend(af.via.iter().cloned());
            for l in Level::ALL {
                if let Some(e) = af.first[l as usize] {
                    let earlier = first[l as usize].is_none_or(|old| order(&e) < order(&old));
                    if earlier {
                        first[l as usize] = Some(e);
                    }
                }
            }
            if let Some(e) = af.first[Level::Suspect as usize] {
                flagged += 1;
                suspect_at.push(requests_at(i, &e).unwrap_or(usize::MAX));
            }
        }
        suspect_at.sort_unstable();
        let share = |s: f64| -> Option<usize> {
            let need = ((a.addresses.len() as f64) * s).ceil().max(1.0) as usize;
            suspect_at
                .get(need - 1)
                .copied()
                .filter(|n| *n != usize::MAX)
        };
        let mut clusters = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        let mut via: Vec<String> = via.into_iter().collect();
        via.sort();
        for key in &via {
            let Some(r) = by_key.get(key.as_str()) else {
                continue;
            };
            if r.is_cluster {
                let mine = r
                    .members
                    .iter()
                    .filter(|m| {
                        key_ip
                            .get(m.as_str())
                            .is_some_and(|ip| actor_of.get(ip) == Some(&i))
                    })
                    .count();
                let levels: Vec<String> = r
                    .levels
                    .iter()
                    .map(|l| {
                        format!(
                            "{} @{}",
                            l.level.name(),
                            l.requests.map_or("?".into(), |n| n.to_string())
                        )
                    })
                    .collect();
                clusters.push(format!(
                    "{} {} ({} of its {} members are this actor's; {})",
                    r.key,
                    r.level.map_or("-", Level::name),
                    mine,
                    r.members.len(),
                    levels.join(", ")
                ));
            }
            for reason in &r.reasons {
                let signal = reason.split(' ').next().unwrap_or("").to_string();
                if !reasons.contains(&signal) {
                    reasons.push(signal);
                }
            }
        }
        timelines.push(Timeline {
            name: a.name.clone(),
            profile: a.profile,
            agents: a.agents.clone(),
            addresses: a.addresses.len(),
            requests: a.sent.len(),
            flagged,
            first: first.map(|e| e.and_then(|e| requests_at(i, &e))),
            key_requests: first.map(|e| e.and_then(|e| e.requests)),
            half: share(0.5),
            ninety: share(0.9),
            clusters,
            reasons,
        });
    }

    let mut notes = Vec::new();
    if untimed > 0 {
        notes.push(format!(
            "{untimed} levels came with neither at_event nor at_ms: counted at the key's `requests`, or else at the actor's last request"
        ));
    }
    if unmapped > 0 {
        notes.push(format!(
            "{unmapped} client rows could not be tied to an address (neither in the event store nor a raw address)"
        ));
    }
    let flags: Vec<Flags> = per.into_values().collect();
    let targets = targets(
        actors,
        &flags,
        &timelines,
        &suspect_within(actors, &flags_of, &requests_at),
    );
    Detection {
        rows: rows.len(),
        flags,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        tp,
        fp,
        fn_,
        timelines,
        false_positives,
        targets,
        notes,
    }
}

/// Target: harvester addresses flagged ≥ suspect within this many requests of the whole actor.
pub const WITHIN: usize = 300;
/// Target: bulk harvesters flagged `harvester` within this many of their own requests.
pub const BULK_WITHIN: i64 = 100;

/// Per profile: addresses flagged ≥ suspect by the time their actor had made `WITHIN` requests.
fn suspect_within<'a>(
    actors: &[Actor],
    flags_of: &dyn Fn(&Ipv4Addr) -> &'a AddressFlags,
    requests_at: &dyn Fn(usize, &LevelAt) -> Option<usize>,
) -> BTreeMap<Profile, (usize, usize)> {
    let mut out: BTreeMap<Profile, (usize, usize)> = BTreeMap::new();
    for (i, a) in actors.iter().enumerate() {
        let e = out.entry(a.profile).or_default();
        for addr in &a.addresses {
            e.1 += 1;
            let at = flags_of(addr).first[Level::Suspect as usize].and_then(|f| requests_at(i, &f));
            if at.is_some_and(|n| n <= WITHIN) {
                e.0 += 1;
            }
        }
    }
    out
}

fn targets(
    actors: &[Actor],
    flags: &[Flags],
    timelines: &[Timeline],
    within: &BTreeMap<Profile, (usize, usize)>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let bulk: Vec<&Timeline> = timelines
        .iter()
        .filter(|t| t.profile == Profile::Bulk)
        .collect();
    if !bulk.is_empty() {
        let h = Level::Harvester as usize;
        let figures: Vec<String> = bulk
            .iter()
            .map(|t| {
                let n = t.key_requests[h].or(t.first[h].map(|n| n as i64));
                format!(
                    "{} {}",
                    t.name,
                    n.map_or("never".into(), |n| format!("at {n}"))
                )
            })
            .collect();
        let pass = bulk.iter().all(|t| {
            t.key_requests[h]
                .or(t.first[h].map(|n| n as i64))
                .is_some_and(|n| n <= BULK_WITHIN)
        });
        out.push(Check {
            name: format!("bulk: every bulk harvester flagged harvester within its first {BULK_WITHIN} requests"),
            pass,
            detail: figures.join(", "),
        });
    }
    for p in [Profile::Disguised, Profile::Rendering] {
        if let Some((ok, n)) = within.get(&p).filter(|(_, n)| *n > 0) {
            let share = *ok as f64 / *n as f64;
            out.push(Check {
                name: format!(
                    "{}: >= 90 % of addresses flagged >= suspect (as clients or in a cluster) within {WITHIN} requests of the whole actor",
                    p.name()
                ),
                pass: share >= 0.9,
                detail: format!("{ok} of {n} ({:.1} %)", share * 100.0),
            });
        }
    }
    for p in [Profile::People, Profile::Polite] {
        let Some(f) = flags.iter().find(|f| f.profile == p && f.addresses > 0) else {
            continue;
        };
        let above = f.at_least[Level::Suspect as usize];
        let sessions = actors.iter().filter(|a| a.profile == p).count();
        out.push(Check {
            name: match p {
                Profile::People => {
                    format!("people: no session flagged above watch ({sessions} sessions)")
                }
                _ => "polite: the polite crawler never above watch".into(),
            },
            pass: above == 0,
            detail: format!(
                "{above} of {} addresses above watch ({} at watch)",
                f.addresses,
                f.at_least[Level::Watch as usize] - above
            ),
        });
    }
    out
}

/// One line per actor for the JSON report.
pub fn actor_lines(actors: &[Actor]) -> Vec<Value> {
    actors
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "profile": a.profile.name(),
                "addresses": a.addresses.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
                "agents": a.agents,
                "requests": a.sent.len(),
                "errors": a.sent.iter().filter(|s| s.status.is_none()).count(),
            })
        })
        .collect()
}

/// What each profile sent and the server recorded, and the generator's own checks.
pub fn traffic(actors: &[Actor], events: &[Event]) -> (Vec<(Profile, Traffic)>, Vec<Check>) {
    let mut profile_of: HashMap<String, Profile> = HashMap::new();
    let mut per: BTreeMap<Profile, Traffic> = BTreeMap::new();
    for a in actors {
        let t = per.entry(a.profile).or_default();
        t.actors += 1;
        t.addresses += a.addresses.len();
        t.sent += a.sent.len();
        t.errors += a.sent.iter().filter(|s| s.status.is_none()).count();
        for addr in &a.addresses {
            profile_of.insert(addr.to_string(), a.profile);
        }
    }
    let mut stray = 0usize;
    let mut wrong_address = 0usize;
    let sent_from: HashSet<String> = actors
        .iter()
        .flat_map(|a| a.sent.iter().map(|s| s.addr.to_string()))
        .collect();
    for e in events {
        let Some(p) = e.client_ip.as_ref().and_then(|ip| profile_of.get(ip)) else {
            stray += 1;
            continue;
        };
        if !e
            .client_ip
            .as_ref()
            .is_some_and(|ip| sent_from.contains(ip))
        {
            wrong_address += 1;
        }
        let t = per.entry(*p).or_default();
        t.recorded += 1;
        *t.kinds.entry(e.kind.clone()).or_default() += 1;
        if e.path.starts_with("/_fp/") {
            t.fp_paths += 1;
        }
        if e.path.starts_with("/private") {
            t.private_paths += 1;
        }
    }
    let traffic: Vec<(Profile, Traffic)> = per.into_iter().collect();
    let get = |p: Profile| traffic.iter().find(|(q, _)| *q == p).map(|(_, t)| t);
    let mut checks = Vec::new();
    let answered: usize = traffic.iter().map(|(_, t)| t.sent - t.errors).sum();
    let all: usize = traffic.iter().map(|(_, t)| t.sent).sum();
    let recorded: usize = traffic.iter().map(|(_, t)| t.recorded).sum();
    checks.push(Check {
        name: "every answered request was recorded, from its own source address".into(),
        // A request that timed out on the client may still have been recorded.
        pass: (answered..=all).contains(&recorded) && stray == 0 && wrong_address == 0,
        detail: format!(
            "{recorded} events for {answered} answered requests ({all} sent); {stray} events from addresses no actor has, {wrong_address} from addresses that sent nothing"
        ),
    });
    let errors: usize = traffic.iter().map(|(_, t)| t.errors).sum();
    checks.push(Check {
        name: "requests without an answer below 1 %".into(),
        pass: errors * 100 <= all,
        detail: format!("{errors} of {all}"),
    });
    if let Some(t) = get(Profile::People) {
        let asked = actors
            .iter()
            .filter(|a| a.profile == Profile::People)
            .flat_map(|a| &a.sent)
            .filter(|s| s.path.starts_with("/_fp/"))
            .count();
        checks.push(Check {
            name: "people never fetched a /_fp/ path".into(),
            pass: t.fp_paths == 0 && asked == 0,
            detail: format!(
                "{} of {} recorded events, {asked} requests sent",
                t.fp_paths, t.recorded
            ),
        });
    }
    if let Some(t) = get(Profile::Polite) {
        checks.push(Check {
            name: "the polite crawler read robots.txt and fetched nothing it disallows".into(),
            pass: t.fp_paths == 0
                && t.private_paths == 0
                && t.kinds.get("robots").is_some_and(|n| *n > 0),
            detail: format!(
                "{} robots.txt, {} /_fp/, {} /private/",
                t.kinds.get("robots").copied().unwrap_or(0),
                t.fp_paths,
                t.private_paths
            ),
        });
    }
    for p in [Profile::Bulk, Profile::Disguised, Profile::Rendering] {
        if let Some(t) = get(p) {
            let canaries = t.kinds.get("canary").copied().unwrap_or(0);
            checks.push(Check {
                name: format!("{} harvesters took hidden canaries", p.name()),
                pass: canaries > 0,
                detail: format!(
                    "{canaries} canaries, {} trap pages",
                    t.kinds.get("trap").copied().unwrap_or(0)
                ),
            });
        }
    }
    (traffic, checks)
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.3}", v))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

impl Report {
    /// Whether the generator worked, the detector's results could be read, and every target
    /// was met.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
            && self
                .detection
                .as_ref()
                .is_ok_and(|d| d.targets.iter().all(|t| t.pass))
    }

    /// The checks and targets that failed, one per line.
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| format!("generator: {}: {}", c.name, c.detail))
            .collect();
        match &self.detection {
            Ok(d) => out.extend(
                d.targets
                    .iter()
                    .filter(|c| !c.pass)
                    .map(|c| format!("target: {}: {}", c.name, c.detail)),
            ),
            Err(e) => out.push(format!("detection: {e}")),
        }
        out
    }

    pub fn text(&self) -> String {
        let mut o = String::new();
        let s = &self.setup;
        let _ = writeln!(o, "faceprobe detection harness (issue 4)");
        let _ = writeln!(
            o,
            "server: faceprobe serve, demo mode, at http://{}/ (data: {})",
            s.origin, s.data_dir
        );
        let _ = writeln!(o, "run: {}", s.sizes);
        let _ = writeln!(
            o,
            "time: traffic {:.1} s, server caught up in {:.1} s",
            s.traffic_secs, s.catch_up_secs
        );
        let _ = writeln!(o, "\nsource addresses (all on loopback; no X-Forwarded-For is sent, the peer is the client):");
        for (p, _) in &self.traffic {
            let _ = writeln!(o, "  {:<10} {}", p.name(), p.addresses_note());
        }
        let _ = writeln!(o, "\ntraffic:");
        let _ = writeln!(
            o,
            "  {:<10} {:>6} {:>6} {:>8} {:>8} {:>6}  {:>6} {:>6}  recorded by kind",
            "profile", "actors", "addrs", "sent", "recorded", "errors", "/_fp/", "trap"
        );
        for (p, t) in &self.traffic {
            let kinds: Vec<String> = t.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(
                o,
                "  {:<10} {:>6} {:>6} {:>8} {:>8} {:>6}  {:>6} {:>6}  {}",
                p.name(),
                t.actors,
                t.addresses,
                t.sent,
                t.recorded,
                t.errors,
                t.fp_paths,
                t.kinds.get("trap").copied().unwrap_or(0),
                kinds.join(", ")
            );
        }
        let _ = writeln!(o, "\ngenerator checks:");
        for c in &self.checks {
            let _ = writeln!(
                o,
                "  {} {}: {}",
                if c.pass { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        match &self.detection {
            Err(e) => {
                let _ = writeln!(o, "\ndetection: NOT SCORED: {e}");
            }
            Ok(d) => {
                let _ = writeln!(
                    o,
                    "\ndetection ({} rows from `faceprobe clients --json`):",
                    d.rows
                );
                let _ = writeln!(
                    o,
                    "  {:<10} {:>6} {:>7} {:>8} {:>9}  {:>9} {:>7}",
                    "profile", "addrs", ">=watch", ">=suspect", "harvester", "precision", "recall"
                );
                for f in d.flags.iter().filter(|f| f.addresses > 0) {
                    let tail = if f.profile.harvester() {
                        format!("{:>9} {:>7}", pct(f.precision), pct(f.recall))
                    } else {
                        format!(
                            "FP {} of {} ({:.1} %)",
                            f.at_least[1],
                            f.addresses,
                            100.0 * f.at_least[1] as f64 / f.addresses as f64
                        )
                    };
                    let _ = writeln!(
                        o,
                        "  {:<10} {:>6} {:>7} {:>8} {:>9}  {}",
                        f.profile.name(),
                        f.addresses,
                        f.at_least[0],
                        f.at_least[1],
                        f.at_least[2],
                        tail
                    );
                }
                let _ = writeln!(
                    o,
                    "  overall: precision {} (TP {}, FP {}), recall {} (FN {})",
                    pct(d.precision),
                    d.tp,
                    d.fp,
                    pct(d.recall),
                    d.fn_
                );
                let _ = writeln!(o, "\nrequests before each harvester reached each level (the actor's requests; the detector's own count in brackets):");
                for t in &d.timelines {
                    let levels: Vec<String> = Level::ALL
                        .iter()
                        .map(|l| {
                            let i = *l as usize;
                            format!(
                                "{} {} [{}]",
                                l.name(),
                                opt(t.first[i]),
                                opt(t.key_requests[i])
                            )
                        })
                        .collect();
                    let _ = writeln!(
                        o,
                        "  {} ({} addresses, {} requests; {}): {}",
                        t.name,
                        t.addresses,
                        t.requests,
                        match t.agents.as_slice() {
                            [] => "-".to_string(),
                            [one] => one.clone(),
                            many => format!("{} browser agents, one per address", many.len()),
                        },
                        levels.join(", ")
                    );
                    if t.addresses > 1 {
                        let _ = writeln!(
                            o,
                            "      addresses >= suspect: {} of {}; half of them by request {}, 90 % by request {}",
                            t.flagged,
                            t.addresses,
                            opt(t.half),
                            opt(t.ninety)
                        );
                    }
                    for c in &t.clusters {
                        let _ = writeln!(o, "      cluster {c}");
                    }
                    if !t.reasons.is_empty() {
                        let _ = writeln!(o, "      signals: {}", t.reasons.join(", "));
                    }
                }
                if !d.false_positives.is_empty() {
                    let _ = writeln!(
                        o,
                        "\nflagged above watch though not harvesters (first {}):",
                        d.false_positives.len()
                    );
                    for f in &d.false_positives {
                        let _ = writeln!(o, "  {f}");
                    }
                }
                let _ = writeln!(o, "\ntargets:");
                for c in &d.targets {
                    let _ = writeln!(
                        o,
                        "  {} {}: {}",
                        if c.pass { "PASS" } else { "FAIL" },
                        c.name,
                        c.detail
                    );
                }
                for n in &d.notes {
                    let _ = writeln!(o, "note: {n}");
                }
                let _ = writeln!(o, "\nhow: {METHOD}");
            }
        }
        for n in &s.notes {
            let _ = writeln!(o, "note: {n}");
        }
        let _ = writeln!(
            o,
            "\nresult: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        );
        o
    }

    pub fn json(&self) -> Value {
        let checks = |cs: &[Check]| -> Value {
            cs.iter()
                .map(|c| json!({"name": c.name, "pass": c.pass, "detail": c.detail}))
                .collect()
        };
        let traffic: serde_json::Map<String, Value> = self
            .traffic
            .iter()
            .map(|(p, t)| {
                (
                    p.name().to_string(),
                    json!({
                        "actors": t.actors, "addresses": t.addresses, "sent": t.sent,
                        "errors": t.errors, "recorded": t.recorded, "kinds": t.kinds,
                        "fp_paths": t.fp_paths, "addresses_note": p.addresses_note(),
                    }),
                )
            })
            .collect();
        let detection = match &self.detection {
            Err(e) => json!({"error": e}),
            Ok(d) => json!({
                "rows": d.rows,
                "profiles": d.flags.iter().filter(|f| f.addresses > 0).map(|f| (f.profile.name().to_string(), json!({
                    "addresses": f.addresses, "watch": f.at_least[0], "suspect": f.at_least[1],
                    "harvester": f.at_least[2], "precision": f.precision, "recall": f.recall,
                }))).collect::<serde_json::Map<String, Value>>(),
                "precision": d.precision, "recall": d.recall, "tp": d.tp, "fp": d.fp, "fn": d.fn_,
                "harvesters": d.timelines.iter().map(|t| json!({
                    "name": t.name, "profile": t.profile.name(), "agents": t.agents,
                    "addresses": t.addresses, "requests": t.requests, "flagged": t.flagged,
                    "requests_before": Level::ALL.iter().map(|l| (l.name().to_string(), json!({
                        "actor": t.first[*l as usize], "key": t.key_requests[*l as usize],
                    }))).collect::<serde_json::Map<String, Value>>(),
                    "half_flagged_at": t.half, "ninety_flagged_at": t.ninety,
                    "clusters": t.clusters, "signals": t.reasons,
                })).collect::<Vec<_>>(),
                "false_positives": d.false_positives,
                "targets": checks(&d.targets),
                "notes": d.notes,
                "method": METHOD,
            }),
        };
        json!({
            "origin": self.setup.origin,
            "data_dir": self.setup.data_dir,
            "run": self.setup.sizes,
            "traffic_secs": self.setup.traffic_secs,
            "catch_up_secs": self.setup.catch_up_secs,
            "traffic": traffic,
            "actors": self.actors,
            "checks": checks(&self.checks),
            "detection": detection,
            "notes": self.setup.notes,
            "pass": self.passed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(profile: Profile, name: &str, addresses: &[&str]) -> Actor {
        Actor {
            profile,
            name: name.into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            agents: vec!["ua".into()],
            sent: Vec::new(),
        }
    }

    fn event(id: i64, ip: &str, key: &str) -> Event {
        Event {
            id,
            client_ip: Some(ip.into()),
            client_key: key.into(),
            path: "/".into(),
            kind: "page".into(),
        }
    }

    fn row(v: Value) -> Row {
        Row::parse(&v).unwrap()
    }

    #[test]
    fn addresses_are_flagged_through_their_clients_and_clusters() {
        let actors = [
            actor(Profile::Bulk, "bulk#0", &["127.40.0.1"]),
            actor(
                Profile::Disguised,
                "disguised#0",
                &["127.20.0.1", "127.20.1.1", "127.20.2.1"],
            ),
            actor(Profile::People, "person#0", &["127.10.0.1"]),
        ];
        let mut events = Vec::new();
        for id in 1..=10 {
            events.push(event(id, "127.40.0.1", "c:b"));
        }
        events.push(event(11, "127.20.0.1", "c:d0"));
        events.push(event(12, "127.20.1.1", "c:d1"));
        events.push(event(13, "127.20.2.1", "c:d2"));
        events.push(event(14, "127.10.0.1", "c:p"));
        let rows = [
            row(
                json!({"key": "c:b", "kind": "client", "level": "harvester", "levels": [
                {"level": "suspect", "at_event": 4, "requests": 4},
                {"level": "harvester", "at_event": 7, "requests": 7}]}),
            ),
            row(json!({"key": "c:d0", "kind": "client", "level": null, "cluster": "k:1"})),
            row(json!({"key": "c:d1", "kind": "client", "level": null, "cluster": "k:1"})),
            row(json!({"key": "c:d2", "kind": "client", "level": null})),
            row(
                json!({"key": "k:1", "kind": "cluster", "level": "suspect", "members": ["c:d0", "c:d1"],
                "levels": [{"level": "suspect", "at_event": 12, "requests": 2}]}),
            ),
            row(json!({"key": "c:p", "kind": "client", "level": "watch",
                "levels": [{"level": "watch", "at_event": 14, "requests": 1}]})),
        ];
        let d = detect(&actors, &events, &rows);
        assert_eq!((d.tp, d.fp, d.fn_), (3, 0, 1));
        assert_eq!(d.precision, Some(1.0));
        assert_eq!(d.recall, Some(0.75));
        let bulk = &d.timelines[0];
        assert_eq!(bulk.first, [Some(4), Some(4), Some(7)]);
        assert_eq!(bulk.key_requests[Level::Harvester as usize], Some(7));
        let disguised = &d.timelines[1];
        assert_eq!((disguised.flagged, disguised.first[1]), (2, Some(2)));
        let failed: Vec<&str> = d
            .targets
            .iter()
            .filter(|t| !t.pass)
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].starts_with("disguised"), "{failed:?}");
        let people = d
            .flags
            .iter()
            .find(|f| f.profile == Profile::People)
            .unwrap();
        assert_eq!(people.at_least, [1, 0, 0]);
    }

    #[test]
    fn a_dismissed_row_flags_nothing() {
        let r = row(json!({"key": "c:x", "level": "harvester", "dismissed": true}));
        assert!(r.reached().is_empty());
    }
}
