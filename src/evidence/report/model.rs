//! What a report says: every fact the bundle builder gathers from the store, in the form both
//! the PDF (Typst) and the HTML are made from. Times are milliseconds since the Unix epoch, UTC.
//! Every string that came from a client (addresses, agents, paths, queries) is hostile: the
//! renderers pass it as data, never as markup.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The bundle's name, e.g. `evidence-20261203-1a2b3c4d`; also its top folder.
    pub bundle_id: String,
    pub created_ms: i64,
    pub tool_version: String,
    pub deployment: Deployment,
    pub actor: Actor,
    pub activity: Activity,
    /// Requests per time bucket over the actor's span (about 24 to 60 buckets).
    pub timeline: Vec<Bucket>,
    /// Every robots.txt version served to the actor.
    pub robots: Vec<RobotsVersion>,
    pub opt_outs: Vec<OptOut>,
    /// Canaries the actor fetched, in order of first fetch.
    pub canaries: Vec<Canary>,
    /// The site's own images the actor fetched (at most a few thousand rows; the total is below).
    pub site_images: Vec<SiteImage>,
    /// How many distinct images of the site, and their bytes, over all (the rows may be fewer).
    pub site_images_total: u64,
    pub site_images_bytes: u64,
    /// The detector's reasons, strongest first.
    pub reasons: Vec<Reason>,
    /// The flag's history (levels reached, reviews, dismissals, bundle builds).
    pub history: Vec<HistoryEntry>,
    /// Images given with `--found`, and what they matched.
    pub found: Vec<Found>,
    pub integrity: Integrity,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Deployment {
    /// The site's name or URL (`evidence.site`), e.g. `https://photos.example.org`.
    pub site: String,
    /// The organisation or person running the site (`evidence.operator`).
    pub operator: String,
    /// How to reach the operator (`evidence.contact`).
    pub contact: String,
    /// `proxy`, `embed` or `demo`.
    pub mode: String,
    /// In a fleet bundle, the instance whose records this report covers; else empty.
    pub instance: String,
    /// How often the server signs its chain head (`evidence.checkpoint_minutes`).
    pub checkpoint_minutes: u64,
    /// After how long a visitor's address is replaced by its pseudonym (`record.raw_ip_hours`).
    pub raw_ip_hours: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Actor {
    /// The client key (`c:…`) or cluster key (`k:…`).
    pub key: String,
    /// `client` or `cluster`.
    pub kind: String,
    /// `watch`, `suspect`, `harvester`, or none.
    pub level: Option<String>,
    pub score: f64,
    /// A declared crawler's name (e.g. `img2dataset`), if its agent says it.
    pub crawler: Option<String>,
    pub addresses: Vec<Address>,
    pub agents: Vec<Agent>,
    /// A cluster's member client keys.
    pub members: Vec<String>,
    pub first_ms: i64,
    pub last_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Address {
    /// The raw address, or its keyed pseudonym (`ip:…`) where the raw one was already purged.
    pub address: String,
    pub raw: bool,
    pub requests: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Agent {
    /// The User-Agent header as sent (empty when none was sent).
    pub agent: String,
    pub requests: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Activity {
    pub requests: u64,
    pub pages: u64,
    pub site_images: u64,
    pub canaries: u64,
    pub distinct_canaries: u64,
    pub traps: u64,
    /// Deepest trap gallery reached (0 when none).
    pub max_trap_depth: u32,
    pub robots_fetches: u64,
    pub robots_violations: u64,
    pub assets: u64,
    pub other: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Bucket {
    pub start_ms: i64,
    pub end_ms: i64,
    pub pages: u64,
    pub site_images: u64,
    pub canaries: u64,
    pub traps: u64,
    pub robots: u64,
    pub other: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RobotsVersion {
    /// SHA-256 of the body, hex; the file is `robots/<sha256>.txt` in the bundle.
    pub sha256: String,
    pub first_served_ms: i64,
    /// When the actor fetched this version.
    pub fetched_ms: Vec<i64>,
    pub lines: Vec<RobotsLine>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RobotsLine {
    /// 1-based line number in the file.
    pub number: u32,
    pub text: String,
    /// How many of the actor's requests this rule forbade (0 for lines it did not break).
    pub broken: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OptOut {
    /// `robots_txt`, `x_robots_tag`, `tdm_reservation` or `xmp_data_mining`.
    pub signal: String,
    /// The value as served, e.g. `noai, noimageai`, `1`, `Disallow: /_fp/`,
    /// `http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED`.
    pub value: String,
    /// Responses to the actor that carried it.
    pub served: u64,
    /// The actor's requests made after it had been served this signal (the signal ignored).
    pub ignored: u64,
    pub first_served_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Canary {
    /// The token as in the URL (`/_fp/c/<token>.jpg`).
    pub token: String,
    /// Its image re-rendered from its seeds, path inside the bundle (`canaries/<token>.jpg`).
    pub file: String,
    pub first_fetch_ms: i64,
    pub fetches: u64,
    pub event_ids: Vec<i64>,
    /// Where it was planted: 0 hidden in a site page, n on the n-th trap gallery.
    pub depth: u32,
    pub minted_ms: i64,
    /// Whether the page that minted it was fetched by the same actor (else: handed off).
    pub minted_for_actor: bool,
    /// The perceptual hashes stored with it, hex.
    pub phash: String,
    pub dhash: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SiteImage {
    pub path: String,
    pub fetches: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Reason {
    /// The signal's id: robots_disallowed, robots_read_then_disallowed, canary_fetched,
    /// trap_fetched, gallery_depth, opt_out_ignored, token_handoff, no_render, image_rate,
    /// request_rate, regular_timing, browser_headers_missing, header_order, known_agent,
    /// search_engine_unverified, enumeration, cluster_addresses.
    pub signal: String,
    pub score: f64,
    pub count: u64,
    /// The detector's own words (English), e.g. "42 canaries fetched".
    pub detail: String,
    pub event_ids: Vec<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryEntry {
    pub ts_ms: i64,
    pub level: Option<String>,
    pub score: f64,
    pub note: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Found {
    /// Path inside the bundle (`found/<name>`).
    pub file: String,
    pub matched: bool,
    pub token: Option<String>,
    pub confidence: f64,
    /// `xmp` (the token read from the image's own marking) or `hash` (perceptual match).
    pub method: String,
    pub fetch_event_ids: Vec<i64>,
    /// Whether the matched token was fetched by this actor.
    pub by_actor: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Integrity {
    /// The actor's events in the bundle (`events.jsonl`).
    pub events: u64,
    /// The chain segment: from the value after event `chain_start_after` to event `chain_end`.
    pub chain_start_after: i64,
    pub chain_end: i64,
    /// `checkpoint` (signed), `genesis` (the chain's first event) or `anchor` (a retention
    /// anchor, unsigned).
    pub chain_start_source: String,
    /// Other visitors' events in the segment, present as 32-byte digests only.
    pub other_events_as_digests: u64,
    pub checkpoints: u64,
    pub end_chain: String,
    pub end_checkpoint_ms: i64,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub key_fingerprint: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    /// Where the site publishes it: `<site>/.well-known/faceprobe-key.pub`.
    pub key_url: String,
}
