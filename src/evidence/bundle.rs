//! Writing an evidence bundle: one zip holding one folder (the bundle's id) with the reports,
//! the actor's events, the chain segment, the checkpoints, robots.txt versions, canaries,
//! the site's images, found images, the flag, the key, the checker and the signed manifest.
//!
//! Building opens a case: the actor's records are held past retention, and the build itself
//! (who, when, which file, its SHA-256) is stored. The archive is written in a scratch folder
//! beside its final name and renamed into place, so a failed build leaves no half-written file.

use super::case::{self, Case};
use super::files::{Archive, Files, Scratch};
use super::report::{self, Lang};
use super::{csv_field, EvidenceError};
use crate::config::Config;
use crate::detect::Client;
use crate::evidence::report::model::Report;
use crate::store::clients::HistoryRow;
use crate::store::signing::{Public, SigningKey, NAMESPACE_EVIDENCE};
use crate::store::{now_ms, Store};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checker shipped in every bundle, and how to check by hand (French, English).
const VERIFY_PY: &str = include_str!("verify.py");
const VERIFY_EN: &str = include_str!("VERIFY.txt");
const VERIFY_FR: &str = include_str!("VERIFIER.txt");

/// What `build` was asked.
pub struct Request<'a> {
    pub key: &'a str,
    pub out: &'a Path,
    pub found: &'a [PathBuf],
    /// The command line, for the build record.
    pub command: String,
    /// Who builds it, when known (the dashboard's reviewer); else the system user.
    pub built_by: Option<String>,
}

/// What `build` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub bundle: String,
    pub file: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub events: u64,
    pub other_events_as_digests: u64,
    pub canaries: u64,
    pub chain_start_after: i64,
    pub chain_end: i64,
    /// A fleet bundle's folders, one per instance (empty for one instance's bundle).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceBuilt>,
}

/// Builds the bundle of `req.key` into `req.out`.
pub fn build(config: &Config, req: &Request) -> Result<Built, EvidenceError> {
    if req.out.exists() {
        return Err(EvidenceError::Exists(req.out.to_path_buf()));
    }
    let mut store = Store::open(&config.store.data_dir)?;
    let signer = SigningKey::load_or_create(
        &config.store.data_dir,
        config.evidence.signing_key.as_deref(),
    )?;
    let scratch = scratch_beside(req.out)?;
    let mut files = Files::default();
    let mut chain = scratch.spool("chain.jsonl")?;
    let mut case = case::gather(store.conn_mut(), config, req.key, &signer, &mut chain)?;
    files.insert_entry("chain.jsonl", chain.finish()?);
    tracing::debug!("evidence build: case gathered");
    let created_ms = now_ms();
    let bundle = bundle_id("evidence", req.key, created_ms);
    case.report.bundle_id = bundle.clone();
    case.report.created_ms = created_ms;

    let found = found_images(store.conn(), req, &case.client.key)?;
    let found = super::found::attach(store.conn(), config, &case, found, &mut files)?;
    case.report.found = found.clone();
    contents(&case, &signer.public(), "", &scratch, &mut files)?;
    let mut flag = case.client.summary();
    flag["history"] = history_json(&case.history);
    files.insert("flag.json", serde_json::to_vec_pretty(&flag)?);
    // Written out and reported on: the events' second copy in memory is not needed any more.
    case.segment.events = Vec::new();

    let user = req.built_by.clone().unwrap_or_else(who);
    let host = host();
    let seg = &case.segment;
    let manifest = serde_json::json!({
        "format": "faceprobe-evidence-v1",
        "bundle": bundle,
        "tool": {"name": "faceprobe", "version": env!("CARGO_PKG_VERSION")},
        "created_ms": created_ms,
        "created": rfc3339(created_ms),
        "site": config.evidence.site,
        "key": {"fingerprint": signer.fingerprint(), "public": signer.public_line()},
        "actor": {
            "key": case.client.key,
            "kind": case.report.actor.kind,
            "members": case.client.members,
        },
        "chain": chain_json(seg),
        "build": {
            "by": user,
            "host": host,
            "at_ms": created_ms,
            "command": req.command,
            "found": found.iter().map(|f| f.file.clone()).collect::<Vec<_>>(),
        },
    });
    let (sha256, bytes) = write_archive(
        config,
        &signer,
        &scratch,
        &bundle,
        files,
        &[("", &case.report)],
        manifest,
        req.out,
    )?;
    drop(scratch);
    open_case(
        store.conn_mut(),
        &case,
        &bundle,
        req,
        &user,
        &host,
        &sha256,
        bytes,
    )?;
    Ok(Built {
        bundle,
        file: req.out.to_path_buf(),
        sha256,
        bytes,
        events: seg.actor_events as u64,
        other_events_as_digests: seg.others,
        canaries: case.canaries.len() as u64,
        chain_start_after: seg.start.after,
        chain_end: seg.end.event_id,
        instances: Vec::new(),
    })
}

/// One instance's records of a fleet actor, copied from the fleet store into a scratch store
/// of the instance's schema, for a fleet bundle.
pub struct FleetPart {
    pub instance: String,
    pub site: String,
    /// The instance's key, which signed its checkpoints.
    pub key: Public,
    pub conn: rusqlite::Connection,
    /// The actor's client keys on that instance.
    pub actor_keys: HashSet<String>,
    /// The instance's flag history of those keys.
    pub history: Vec<HistoryRow>,
}

/// What `build_fleet` was asked: the fleet detector's actor, its flag, one part per instance.
pub struct FleetRequest<'a> {
    pub actor: &'a str,
    pub level: Option<String>,
    pub score: f64,
    /// The fleet detector's flag and its history (`flag.json`).
    pub flag: serde_json::Value,
    pub parts: Vec<FleetPart>,
    pub out: &'a Path,
    pub command: String,
    pub built_by: Option<String>,
}

/// One instance's folder of a fleet bundle, as built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceBuilt {
    pub instance: String,
    pub folder: String,
    pub events: u64,
    pub chain_start_after: i64,
    pub chain_end: i64,
}

/// Builds a fleet bundle (docs/evidence-format.md, "Fleet bundles"): one folder per instance
/// holding its chain segment, checkpoints (signed by that instance's key), events, canaries
/// and reports, the whole signed by this instance's key. Addresses stay on the instances: the
/// events carry their commitments only.
pub fn build_fleet(config: &Config, mut req: FleetRequest) -> Result<Built, EvidenceError> {
    if req.out.exists() {
        return Err(EvidenceError::Exists(req.out.to_path_buf()));
    }
    if req.parts.is_empty() {
        return Err(EvidenceError::NoEvents(format!(
            "the fleet store holds no event of {} with a signed checkpoint after it",
            req.actor
        )));
    }
    // This machine's key signs the bundle; a machine that only reads the fleet store may
    // have no data directory yet, which its key then starts.
    if config.evidence.signing_key.is_none() {
        std::fs::create_dir_all(&config.store.data_dir).map_err(|e| {
            EvidenceError::Bundle(format!(
                "cannot make {} for the signing key: {e} (set store.data_dir to a writable \
                 directory)",
                config.store.data_dir.display()
            ))
        })?;
    }
    let signer = SigningKey::load_or_create(
        &config.store.data_dir,
        config.evidence.signing_key.as_deref(),
    )?;
    let scratch = scratch_beside(req.out)?;
    let created_ms = now_ms();
    let bundle = bundle_id("evidence-fleet", req.actor, created_ms);
    let mut files = Files::default();
    let mut cases = Vec::new();
    let mut folders = Vec::new();
    for part in &mut req.parts {
        let folder = format!("instances/{}", folder_name(&part.instance, &folders));
        let mut instance_config = config.clone();
        instance_config.evidence.site = part.site.clone();
        let mut members: Vec<String> = part.actor_keys.iter().cloned().collect();
        members.sort();
        let client = Client {
            key: req.actor.to_string(),
            members,
            level: req.level.as_deref().and_then(crate::config::Level::parse),
            score: req.score,
            ..Client::default()
        };
        let spool = format!("chain-{}.jsonl", cases.len());
        let mut chain = scratch.spool(&spool)?;
        let mut case = case::gather_of(
            &mut part.conn,
            &instance_config,
            client,
            part.actor_keys.clone(),
            std::mem::take(&mut part.history),
            case::Checkpoints::Shipped(&part.key),
            &mut chain,
        )
        .map_err(|e| match e {
            EvidenceError::NoEvents(why) => {
                EvidenceError::NoEvents(format!("instance {}: {why}", part.instance))
            }
            e => e,
        })?;
        files.insert_entry(format!("{folder}/chain.jsonl"), chain.finish()?);
        case.report.actor.kind = "fleet".into();
        case.report.deployment.instance = part.instance.clone();
        case.report.bundle_id = bundle.clone();
        case.report.created_ms = created_ms;
        contents(
            &case,
            &part.key,
            &format!("{folder}/"),
            &scratch,
            &mut files,
        )?;
        case.segment.events = Vec::new();
        folders.push(folder);
        cases.push(case);
    }
    files.insert("flag.json", serde_json::to_vec_pretty(&req.flag)?);
    let builder = signer.public();
    files.insert(
        "faceprobe-key.pub",
        format!("{}\n", builder.line).into_bytes(),
    );
    files.insert(
        "allowed_signers",
        format!("{}\n", builder.allowed_signers()).into_bytes(),
    );

    let user = req.built_by.clone().unwrap_or_else(who);
    let instances: Vec<serde_json::Value> = req
        .parts
        .iter()
        .zip(&cases)
        .zip(&folders)
        .map(|((part, case), folder)| {
            let mut keys: Vec<&String> = part.actor_keys.iter().collect();
            keys.sort();
            serde_json::json!({
                "instance": folder.trim_start_matches("instances/"),
                "site": part.site,
                "path": folder,
                "key": {"fingerprint": part.key.fingerprint, "public": part.key.line},
                "actor_keys": keys,
                "chain": chain_json(&case.segment),
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "format": "faceprobe-fleet-evidence-v1",
        "bundle": bundle,
        "tool": {"name": "faceprobe", "version": env!("CARGO_PKG_VERSION")},
        "created_ms": created_ms,
        "created": rfc3339(created_ms),
        "site": config.evidence.site,
        "key": {"fingerprint": signer.fingerprint(), "public": signer.public_line()},
        "actor": {
            "key": req.actor,
            "kind": "fleet actor",
            "level": req.level,
            "score": req.score,
        },
        "instances": instances,
        "build": {
            "by": user,
            "host": host(),
            "at_ms": created_ms,
            "command": req.command,
            "found": [],
        },
    });
    let reports: Vec<(&str, &Report)> = folders
        .iter()
        .map(String::as_str)
        .zip(cases.iter().map(|c| &c.report))
        .collect();
    let (sha256, bytes) = write_archive(
        config, &signer, &scratch, &bundle, files, &reports, manifest, req.out,
    )?;
    Ok(Built {
        bundle,
        file: req.out.to_path_buf(),
        sha256,
        bytes,
        events: cases.iter().map(|c| c.segment.actor_events as u64).sum(),
        other_events_as_digests: cases.iter().map(|c| c.segment.others).sum(),
        canaries: cases.iter().map(|c| c.canaries.len() as u64).sum(),
        chain_start_after: 0,
        chain_end: 0,
        instances: folders
            .iter()
            .zip(&cases)
            .zip(&req.parts)
            .map(|((folder, c), p)| InstanceBuilt {
                instance: p.instance.clone(),
                folder: folder.clone(),
                events: c.segment.actor_events as u64,
                chain_start_after: c.segment.start.after,
                chain_end: c.segment.end.event_id,
            })
            .collect(),
    })
}

/// The folder name of an instance in a fleet bundle: its name with anything but letters,
/// digits, `.`, `_` and `-` made `_`, at most 64 characters, never starting with `.`, and
/// numbered when two names come out the same.
fn folder_name(instance: &str, taken: &[String]) -> String {
    let mut name: String = instance
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => c,
            false => '_',
        })
        .take(60)
        .collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name = format!("i{name}");
    }
    let mut candidate = name.clone();
    let mut n = 2;
    while taken
        .iter()
        .any(|t| t.trim_start_matches("instances/") == candidate)
    {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

fn scratch_beside(out: &Path) -> Result<Scratch, EvidenceError> {
    Scratch::beside(out).map_err(|e| {
        EvidenceError::Bundle(format!(
            "cannot make a scratch folder beside {}: {e}",
            out.display()
        ))
    })
}

/// `PREFIX-YYYYMMDD-xxxxxxxx`: the day, and 8 hex digits of the key and the time.
fn bundle_id(prefix: &str, key: &str, created_ms: i64) -> String {
    let created = rfc3339(created_ms);
    format!(
        "{prefix}-{}-{}",
        created[..10].replace('-', ""),
        &hex::encode(Sha256::digest(format!("{key}\n{created_ms}")))[..8]
    )
}

/// The manifest's account of a chain segment.
fn chain_json(seg: &super::segment::Segment) -> serde_json::Value {
    serde_json::json!({
        "start_after": seg.start.after,
        "start_source": seg.start.source,
        "end": seg.end.event_id,
        "end_chain": hex::encode(seg.end.chain),
        "events": seg.actor_events,
    })
}

fn history_json(history: &[HistoryRow]) -> serde_json::Value {
    history
        .iter()
        .map(|(ts, level, score, note)| {
            serde_json::json!({"ts_ms": ts, "level": level, "score": score, "note": note})
        })
        .collect()
}

/// Writes the archive at `out`: the data files in `files`, the reports of each folder (laid
/// out on a second thread while the data files are compressed on this one), the checker, and
/// `manifest` completed with the list of files and signed. Written in the scratch folder and
/// renamed into place, so that a failed build leaves no half-written archive. Returns the
/// archive's SHA-256 and size.
#[allow(clippy::too_many_arguments)]
fn write_archive(
    config: &Config,
    signer: &SigningKey,
    scratch: &Scratch,
    bundle: &str,
    mut files: Files,
    reports: &[(&str, &Report)],
    mut manifest: serde_json::Value,
    out: &Path,
) -> Result<(String, u64), EvidenceError> {
    let started = Instant::now();
    let step = |what: &str| tracing::debug!("evidence build: {what} at {:?}", started.elapsed());
    let created_ms = manifest["created_ms"].as_i64().unwrap_or_default();
    // Each folder's report shows its own canaries, by their path inside the folder.
    let images: Vec<BTreeMap<String, Vec<u8>>> = reports
        .iter()
        .map(|(folder, _)| {
            let prefix = match folder.is_empty() {
                true => String::new(),
                false => format!("{folder}/"),
            };
            files
                .iter()
                .filter_map(|(k, _)| {
                    let rel = k.strip_prefix(&prefix)?;
                    (rel.starts_with("canaries/") && rel.ends_with(".jpg"))
                        .then(|| Some((rel.to_string(), files.bytes(k)?.to_vec())))
                        .flatten()
                })
                .collect()
        })
        .collect();
    let part = scratch.path("bundle.zip");
    let mut archive = Archive::create(&part, bundle, zip_time(created_ms))?;
    let rendered = std::thread::scope(|s| -> Result<Vec<(String, Vec<u8>)>, EvidenceError> {
        let images = &images;
        let rendering = std::thread::Builder::new()
            .name("faceprobe-report".into())
            // Typst's layout recurses deeply; the main thread's 8 MiB is what it is tested on.
            .stack_size(8 << 20)
            .spawn_scoped(
                s,
                move || -> Result<Vec<(String, Vec<u8>)>, EvidenceError> {
                    let mut out = Vec::new();
                    for ((folder, report), images) in reports.iter().zip(images) {
                        let path = |name: &str| match folder.is_empty() {
                            true => name.to_string(),
                            false => format!("{folder}/{name}"),
                        };
                        for (lang, pdf, html) in [
                            (Lang::Fr, "rapport.pdf", "rapport.html"),
                            (Lang::En, "report.pdf", "report.html"),
                        ] {
                            out.push((path(pdf), report::pdf(report, images, lang)?));
                            step(pdf);
                            out.push((path(html), report::html(report, images, lang).into_bytes()));
                            step(html);
                        }
                    }
                    Ok(out)
                },
            )?;
        let written = files.iter().try_for_each(|(path, e)| archive.add(path, e));
        step("data files compressed");
        let rendered = rendering
            .join()
            .map_err(|_| EvidenceError::Report("the report's layout failed".into()))?;
        written?;
        rendered
    })?;
    step("reports added");
    for (path, bytes) in rendered {
        files.insert_into(&mut archive, &path, bytes)?;
    }
    let fill = |t: &str| {
        t.replace("{site}", &config.evidence.site)
            .replace("{bundle}", bundle)
            .replace("{fingerprint}", &signer.fingerprint())
            .replace(
                "{key_url}",
                &format!(
                    "{}{}",
                    config.evidence.site.trim_end_matches('/'),
                    crate::record::published::KEY_PATH
                ),
            )
    };
    files.insert_into(&mut archive, "VERIFY.txt", fill(VERIFY_EN).into_bytes())?;
    files.insert_into(&mut archive, "VERIFIER.txt", fill(VERIFY_FR).into_bytes())?;
    files.insert_into(&mut archive, "verify.py", VERIFY_PY.as_bytes().to_vec())?;
    let listed: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, e)| serde_json::json!({"path": path, "sha256": e.sha256_hex(), "bytes": e.bytes}))
        .collect();
    manifest["files"] = serde_json::json!(listed);
    let manifest = serde_json::to_vec_pretty(&manifest)?;
    let signature = signer.sign(NAMESPACE_EVIDENCE, &manifest)?;
    files.insert_into(&mut archive, "manifest.json", manifest)?;
    let mut sums = String::new();
    for (path, e) in files.iter() {
        sums.push_str(&format!("{}  {path}\n", e.sha256_hex()));
    }
    files.insert_into(&mut archive, "SHA256SUMS", sums.into_bytes())?;
    files.insert_into(&mut archive, "manifest.sig", signature.into_bytes())?;
    archive.finish()?;
    std::fs::rename(&part, out)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut std::fs::File::open(out)?, &mut hasher)?;
    step("archive written");
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// The name of this machine.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The data files of a case, under `prefix` (empty, or a fleet bundle's `instances/NAME/`):
/// events, checkpoints, robots, canaries, site images, and `key`, which signed the checkpoints.
fn contents(
    case: &Case,
    key: &Public,
    prefix: &str,
    scratch: &Scratch,
    files: &mut Files,
) -> Result<(), EvidenceError> {
    let seg = &case.segment;
    let mut events = scratch.spool(&format!("events-{}.jsonl", prefix.replace('/', "-")))?;
    for e in &seg.events {
        serde_json::to_writer(&mut events, &e.line())?;
        events.write_all(b"\n")?;
    }
    files.insert_entry(format!("{prefix}events.jsonl"), events.finish()?);
    let mut checkpoints = Vec::new();
    for c in &seg.checkpoints {
        serde_json::to_writer(
            &mut checkpoints,
            &serde_json::json!({
                "seq": c.seq,
                "ts_ms": c.ts_ms,
                "event_id": c.event_id,
                "chain": hex::encode(c.chain),
                "events": c.events,
                "message": c.message,
                "signature": c.signature,
                "tsa": null,
            }),
        )?;
        checkpoints.push(b'\n');
    }
    files.insert(format!("{prefix}checkpoints.jsonl"), checkpoints);
    for (sha, body, _) in &case.robots {
        files.insert(format!("{prefix}robots/{sha}.txt"), body.clone());
    }
    let mut index = String::from(
        "token,file,sha256,identity_seed,variant_seed,size,jpeg_quality,phash,dhash,first_fetch_ms,fetches,event_ids\n",
    );
    for c in &case.canaries {
        let (file, sha) = match &c.jpeg {
            Some(jpeg) => {
                let name = format!("canaries/{}.jpg", c.token);
                let sha = hex::encode(Sha256::digest(jpeg));
                files.insert(format!("{prefix}{name}"), jpeg.clone());
                (name, sha)
            }
            None => (String::new(), String::new()),
        };
        let ids: Vec<String> = c.event_ids.iter().map(|i| i.to_string()).collect();
        index.push_str(&format!(
            "{},{file},{sha},{},{},{},{},{},{},{},{},{}\n",
            c.token,
            c.identity_seed,
            c.variant_seed,
            c.size,
            case.jpeg_quality,
            c.phash.map(|h| format!("{h:016x}")).unwrap_or_default(),
            c.dhash.map(|h| format!("{h:016x}")).unwrap_or_default(),
            c.first_fetch_ms,
            c.event_ids.len(),
            ids.join(" ")
        ));
    }
    files.insert(format!("{prefix}canaries/index.csv"), index.into_bytes());
    let mut sites = String::from("path,fetches,first_ms,last_ms,bytes,event_ids\n");
    for s in &case.site_images {
        let ids: Vec<String> = s.event_ids.iter().map(|i| i.to_string()).collect();
        sites.push_str(&format!(
            "{},{},{},{},{},{}\n",
            csv_field(&s.path),
            s.event_ids.len(),
            s.first_ms,
            s.last_ms,
            s.bytes,
            ids.join(" ")
        ));
    }
    files.insert(format!("{prefix}site-images.csv"), sites.into_bytes());
    files.insert(
        format!("{prefix}faceprobe-key.pub"),
        format!("{}\n", key.line).into_bytes(),
    );
    files.insert(
        format!("{prefix}allowed_signers"),
        format!("{}\n", key.allowed_signers()).into_bytes(),
    );
    Ok(())
}

fn zip_time(ms: i64) -> zip::DateTime {
    let t = rfc3339(ms);
    let n = |a: usize, b: usize| t.get(a..b).and_then(|s| s.parse().ok()).unwrap_or(0);
    zip::DateTime::from_date_and_time(
        n(0, 4),
        n(5, 7) as u8,
        n(8, 10) as u8,
        n(11, 13) as u8,
        n(14, 16) as u8,
        n(17, 19) as u8,
    )
    .unwrap_or_default()
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Holds the actor's records as a case and records the build.
#[allow(clippy::too_many_arguments)]
fn open_case(
    conn: &mut rusqlite::Connection,
    case: &Case,
    bundle: &str,
    req: &Request,
    user: &str,
    host: &str,
    sha256: &str,
    bytes: u64,
) -> Result<(), EvidenceError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let key = &case.client.key;
    let opened = tx.execute(
        "INSERT OR IGNORE INTO cases (key, opened_ms, opened_by, note) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![key, now, user, format!("opened by building {bundle}")],
    )? > 0;
    for k in case.actor_keys.iter().chain(std::iter::once(key)) {
        crate::store::clients::hold_for_case(&tx, k, now)?;
    }
    tx.execute(
        "INSERT INTO bundles (case_key, bundle, built_ms, built_by, host, command, file, sha256,
             bytes, events) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        rusqlite::params![
            key,
            bundle,
            now,
            user,
            host,
            req.command,
            req.out.display().to_string(),
            sha256,
            bytes as i64,
            case.segment.actor_events as i64
        ],
    )?;
    tx.execute(
        "INSERT INTO flag_history (key, ts_ms, level, score, note) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![
            key,
            now,
            case.client.level.map(|l| l.as_str()),
            case.client.score,
            match opened {
                true => format!("evidence bundle {bundle} built by {user} (case opened; records kept past retention)"),
                false => format!("evidence bundle {bundle} built by {user}"),
            }
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// The images given with `--found`, then those attached to the case in the dashboard, each
/// with the name it is listed under.
fn found_images(
    conn: &rusqlite::Connection,
    req: &Request,
    key: &str,
) -> Result<Vec<(String, Vec<u8>)>, EvidenceError> {
    let mut out = Vec::new();
    for path in req.found {
        let bytes = std::fs::read(path)
            .map_err(|e| EvidenceError::Found(format!("{}: cannot read: {e}", path.display())))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "image".into());
        out.push((name, bytes));
    }
    for f in crate::store::reviews::found_for_case(conn, key)? {
        out.push((f.name, f.image));
    }
    Ok(out)
}

/// Who builds the bundle: `$USER` or `$LOGNAME`, else the name of the process's user in
/// /etc/passwd (a service or a container often sets neither variable), else `uid N`.
fn who() -> String {
    if let Some(name) = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|n| !n.is_empty())
    {
        return name;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        });
    let Some(uid) = uid else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}
