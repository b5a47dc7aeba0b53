//! `faceprobe evidence verify`: every check `verify.py` makes, in Rust, plus the canaries
//! re-rendered from their seeds. Each check is a line that holds or fails and names the file or
//! event at fault; nothing here trusts the store — only the bundle and, if given, a key.

use super::events::EventLine;
use crate::canary::Token;
use crate::record::checkpoint;
use crate::record::event::{chain_link, digest};
use crate::store::signing::{verify as verify_sig, NAMESPACE_CHECKPOINT, NAMESPACE_EVIDENCE};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub ok: bool,
    pub what: String,
}

/// All the checks of one bundle.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    pub bundle: String,
    pub fingerprint: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }
    fn pass(&mut self, what: impl Into<String>) {
        self.checks.push(Check {
            ok: true,
            what: what.into(),
        });
    }
    fn fail(&mut self, what: impl Into<String>) {
        self.checks.push(Check {
            ok: false,
            what: what.into(),
        });
    }
}

/// Files of a bundle by path inside its folder.
type Files = BTreeMap<String, Vec<u8>>;

/// Reads `path` (a zip, or a bundle folder) and checks everything. `key` is the public key to
/// trust (e.g. fetched from the site); without it the bundle's own key is checked and its
/// fingerprint reported for comparison.
pub fn verify(path: &Path, key: Option<&str>) -> Result<Report, String> {
    let (bundle, files) = if path.is_dir() {
        read_dir(path)?
    } else {
        read_zip(path)?
    };
    let mut r = Report {
        bundle,
        ..Report::default()
    };
    check_sums(&files, &mut r);
    let manifest = check_manifest(&files, &mut r);
    let public = check_signature(&files, key, &mut r);
    let fleet = manifest
        .as_ref()
        .is_some_and(|m| m["format"] == FLEET_FORMAT);
    if !fleet {
        check_records(&files, public.as_deref(), manifest.as_ref(), &mut r);
        return Ok(r);
    }
    // A fleet bundle: each instance's folder holds what one instance's bundle holds, its
    // checkpoints signed by that instance's key; the builder's key signed the whole.
    let manifest = manifest.unwrap_or_default();
    let instances = manifest["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if instances.is_empty() {
        r.fail("manifest.json: a fleet bundle names no instance");
    }
    let mut folders = BTreeSet::new();
    for inst in &instances {
        let name = inst["instance"].as_str().unwrap_or_default();
        let folder = format!("instances/{name}");
        if !valid_folder_name(name) || inst["path"].as_str() != Some(&folder) {
            r.fail(format!(
                "manifest.json: instance {:?} has the folder {:?}, not instances/NAME with a \
                 plain NAME",
                name, inst["path"]
            ));
            continue;
        }
        if !folders.insert(folder.clone()) {
            r.fail(format!("manifest.json: instance {name} is named twice"));
            continue;
        }
        let prefix = format!("{folder}/");
        let part: Files = files
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.clone())))
            .collect();
        let mut sub = Report::default();
        let bundled = part
            .get("faceprobe-key.pub")
            .map(|b| String::from_utf8_lossy(b).trim().to_string());
        let named = inst["key"]["public"].as_str().unwrap_or_default();
        let fingerprint = inst["key"]["fingerprint"].as_str().unwrap_or_default();
        let site = inst["site"].as_str();
        if site.is_none_or(|s| s.contains(['\n', '\r'])) {
            sub.fail("manifest.json: the instance's site is not one line of text");
        }
        let key = match bundled {
            _ if crate::store::signing::Public::parse(named)
                .map(|p| p.fingerprint != fingerprint)
                .unwrap_or(true) =>
            {
                sub.fail(format!(
                    "manifest.json: the instance's key {fingerprint:?} is not the fingerprint \
                     of the public key it gives"
                ));
                None
            }
            Some(b) if same_key(&b, named) => Some(b),
            Some(_) => {
                sub.fail("faceprobe-key.pub: is not the key manifest.json names for this instance");
                None
            }
            None => {
                sub.fail("faceprobe-key.pub: missing");
                None
            }
        };
        if key.is_some() {
            sub.pass(format!(
                "faceprobe-key.pub: the instance's key {}, as manifest.json names it",
                inst["key"]["fingerprint"].as_str().unwrap_or_default()
            ));
            check_records(&part, key.as_deref(), Some(inst), &mut sub);
        }
        r.checks.extend(sub.checks.into_iter().map(|c| Check {
            ok: c.ok,
            what: format!("instance {name}: {}", c.what),
        }));
    }
    for name in files.keys() {
        let Some(rest) = name.strip_prefix("instances/") else {
            continue;
        };
        let folder = format!("instances/{}", rest.split('/').next().unwrap_or_default());
        if !folders.contains(&folder) {
            r.fail(format!(
                "{name}: lies in {folder}, which is no instance of manifest.json"
            ));
        }
    }
    Ok(r)
}

/// The format of a fleet bundle's manifest.
pub const FLEET_FORMAT: &str = "faceprobe-fleet-evidence-v1";

/// A fleet bundle's instance folder name: a letter or digit, then letters, digits, `.`, `_`
/// or `-`, at most 64 in all.
fn valid_folder_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Checks one instance's records: its checkpoints under `public`, its events, the chain
/// segment against `manifest`'s account of it (`chain`), the canaries, robots.txt versions
/// and site images.
fn check_records(
    files: &Files,
    public: Option<&str>,
    manifest: Option<&serde_json::Value>,
    r: &mut Report,
) {
    let checkpoints = check_checkpoints(files, public, r);
    let events = check_events(files, r);
    // The canaries are drawn again on a second thread while this one recomputes the chain;
    // their lines are reported after the chain's, as if checked in turn.
    let rest = std::thread::scope(|s| {
        let others = s.spawn(|| {
            let mut r = Report::default();
            check_canaries(files, &events, &mut r);
            check_robots(files, &events, &mut r);
            check_site_images(files, &events, &mut r);
            r.checks
        });
        check_chain(files, &events, &checkpoints, manifest, r);
        others.join()
    });
    match rest {
        Ok(checks) => r.checks.extend(checks),
        Err(_) => r.fail("canaries: the check stopped unexpectedly"),
    }
}

fn read_zip(path: &Path) -> Result<(String, Files), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| format!("{} is not a readable zip archive: {e}", path.display()))?;
    let mut files = Files::new();
    let mut top: Option<String> = None;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        let Some((folder, rest)) = name.split_once('/') else {
            return Err(format!("{name} lies outside the bundle's folder"));
        };
        match &top {
            None => top = Some(folder.to_string()),
            Some(t) if t != folder => {
                return Err(format!("{name} lies outside the bundle's folder {t}"))
            }
            _ => {}
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name}: cannot be read ({e})"))?;
        files.insert(rest.to_string(), bytes);
    }
    Ok((top.unwrap_or_default(), files))
}

fn read_dir(dir: &Path) -> Result<(String, Files), String> {
    fn walk(base: &Path, dir: &Path, files: &mut Files) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            if p.is_dir() {
                walk(base, &p, files)?;
            } else {
                let rel = p
                    .strip_prefix(base)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                files.insert(rel, std::fs::read(&p)?);
            }
        }
        Ok(())
    }
    let mut files = Files::new();
    walk(dir, dir, &mut files).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    Ok((name, files))
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check_sums(files: &Files, r: &mut Report) {
    let Some(sums) = files.get("SHA256SUMS") else {
        r.fail("SHA256SUMS: missing");
        return;
    };
    let text = String::from_utf8_lossy(sums);
    let mut listed = BTreeSet::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let Some((hash, name)) = line.split_once("  ") else {
            r.fail(format!("SHA256SUMS: a line is not `HASH  FILE`: {line:?}"));
            bad += 1;
            continue;
        };
        listed.insert(name.to_string());
        match files.get(name) {
            None => {
                r.fail(format!(
                    "{name}: listed in SHA256SUMS but missing (removed)"
                ));
                bad += 1;
            }
            Some(b) if sha(b) != hash => {
                r.fail(format!(
                    "{name}: its SHA-256 differs from SHA256SUMS (changed)"
                ));
                bad += 1;
            }
            _ => {}
        }
    }
    for name in files.keys() {
        if name != "SHA256SUMS" && name != "manifest.sig" && !listed.contains(name) {
            r.fail(format!("{name}: in the bundle but in no list (added)"));
            bad += 1;
        }
    }
    if bad == 0 {
        r.pass(format!("SHA256SUMS: {} files match", listed.len()));
    }
}

fn check_manifest(files: &Files, r: &mut Report) -> Option<serde_json::Value> {
    let Some(bytes) = files.get("manifest.json") else {
        r.fail("manifest.json: missing");
        return None;
    };
    let m: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => {
            r.fail(format!("manifest.json: not valid JSON ({e})"));
            return None;
        }
    };
    let mut listed = BTreeSet::new();
    let mut bad = 0;
    for (n, f) in m["files"].as_array().into_iter().flatten().enumerate() {
        let Some(path) = f["path"].as_str().filter(|p| !p.is_empty()) else {
            r.fail(format!("manifest.json: file entry {} has no path", n + 1));
            bad += 1;
            continue;
        };
        let path = path.to_string();
        match files.get(&path) {
            None => {
                r.fail(format!(
                    "{path}: listed in manifest.json but missing (removed)"
                ));
                bad += 1;
            }
            Some(b) => {
                if f["sha256"].as_str() != Some(&sha(b))
                    || f["bytes"].as_u64() != Some(b.len() as u64)
                {
                    r.fail(format!(
                        "{path}: differs from its manifest.json entry (changed)"
                    ));
                    bad += 1;
                }
            }
        }
        listed.insert(path);
    }
    for name in files.keys() {
        if !["manifest.json", "manifest.sig", "SHA256SUMS"].contains(&name.as_str())
            && !listed.contains(name)
        {
            r.fail(format!("{name}: not listed in manifest.json (added)"));
            bad += 1;
        }
    }
    if bad == 0 {
        r.pass(format!(
            "manifest.json: {} files, hashes and sizes match",
            listed.len()
        ));
    }
    Some(m)
}

/// Checks manifest.sig; returns the public key line that signed it.
fn check_signature(files: &Files, trusted: Option<&str>, r: &mut Report) -> Option<String> {
    let bundled = files
        .get("faceprobe-key.pub")
        .map(|b| String::from_utf8_lossy(b).trim().to_string());
    let key = match (trusted, &bundled) {
        (Some(t), Some(b)) if !same_key(t, b) => {
            r.fail("faceprobe-key.pub: is not the key you gave (--key): the bundle was signed by another key");
            return None;
        }
        (Some(t), _) => t.trim().to_string(),
        (None, Some(b)) => b.clone(),
        (None, None) => {
            r.fail("faceprobe-key.pub: missing");
            return None;
        }
    };
    if let Ok(k) = ssh_key::PublicKey::from_openssh(&key) {
        r.fingerprint = Some(k.fingerprint(ssh_key::HashAlg::Sha256).to_string());
    }
    let (Some(manifest), Some(sig)) = (files.get("manifest.json"), files.get("manifest.sig"))
    else {
        r.fail("manifest.sig: missing");
        return Some(key);
    };
    match verify_sig(
        &key,
        NAMESPACE_EVIDENCE,
        manifest,
        &String::from_utf8_lossy(sig),
    ) {
        Ok(()) => r.pass(format!(
            "manifest.sig: a valid signature of manifest.json by {}",
            r.fingerprint.clone().unwrap_or_default()
        )),
        Err(e) => r.fail(format!("manifest.sig: {e}")),
    }
    Some(key)
}

fn same_key(a: &str, b: &str) -> bool {
    let blob = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    blob(a) == blob(b)
}

/// A checkpoint as the bundle gives it.
struct Cp {
    event_id: i64,
    chain: String,
}

fn check_checkpoints(files: &Files, key: Option<&str>, r: &mut Report) -> Vec<Cp> {
    let Some(bytes) = files.get("checkpoints.jsonl") else {
        r.fail("checkpoints.jsonl: missing");
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut bad = 0;
    let mut last: Option<(i64, i64, String)> = None;
    for (n, line) in String::from_utf8_lossy(bytes).lines().enumerate() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => {
                r.fail(format!("checkpoints.jsonl line {}: not valid JSON", n + 1));
                bad += 1;
                continue;
            }
        };
        let seq = v["seq"].as_i64().unwrap_or(-1);
        let event_id = v["event_id"].as_i64().unwrap_or(-1);
        let chain = v["chain"].as_str().unwrap_or_default().to_string();
        let message = v["message"].as_str().unwrap_or_default();
        // The message signed must be exactly the one the line's values make (the site it
        // names is taken as it is: the key says whose it is).
        let site = message
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("site: "))
            .unwrap_or_default();
        let value: Option<[u8; 32]> = hex::decode(&chain).ok().and_then(|b| b.try_into().ok());
        let head_ok = match (value, v["ts_ms"].as_i64(), v["events"].as_i64()) {
            (Some(c), Some(ts_ms), Some(events)) => {
                message == checkpoint::message(site, seq, event_id, &c, ts_ms, events)
            }
            _ => false,
        };
        if !head_ok {
            r.fail(format!(
                "checkpoints.jsonl: checkpoint {seq} (event {event_id}) says other values than the message it signed"
            ));
            bad += 1;
        } else if let Some(k) = key {
            if let Err(e) = verify_sig(
                k,
                NAMESPACE_CHECKPOINT,
                message.as_bytes(),
                v["signature"].as_str().unwrap_or_default(),
            ) {
                r.fail(format!(
                    "checkpoints.jsonl: checkpoint {seq} (event {event_id}): {e}"
                ));
                bad += 1;
            }
        }
        if let Some((s, e, c)) = &last {
            let why = if seq > s + 1 {
                Some(format!("checkpoints {} to {} are missing", s + 1, seq - 1))
            } else if seq != s + 1 || event_id < *e {
                Some(format!("it is out of order after checkpoint {s}"))
            } else if event_id == *e && chain != *c {
                Some(format!(
                    "it signs another chain value for event {e} than checkpoint {s}"
                ))
            } else {
                None
            };
            if let Some(why) = why {
                r.fail(format!("checkpoints.jsonl: checkpoint {seq}: {why}"));
                bad += 1;
            }
        }
        last = Some((seq, event_id, chain.clone()));
        out.push(Cp { event_id, chain });
    }
    if bad == 0 {
        r.pass(format!(
            "checkpoints.jsonl: {} signed checkpoints verify",
            out.len()
        ));
    }
    out
}

fn check_events(files: &Files, r: &mut Report) -> Events {
    let mut out = BTreeMap::new();
    let Some(bytes) = files.get("events.jsonl") else {
        r.fail("events.jsonl: missing");
        return out;
    };
    let mut bad = 0;
    let mut last = i64::MIN;
    for (n, line) in String::from_utf8_lossy(bytes).lines().enumerate() {
        let e: EventLine = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(err) => {
                r.fail(format!("events.jsonl line {}: not an event ({err})", n + 1));
                bad += 1;
                continue;
            }
        };
        if e.id <= last {
            r.fail(format!(
                "events.jsonl: event {} comes after event {last} (out of order or repeated)",
                e.id
            ));
            bad += 1;
        }
        last = last.max(e.id);
        if let Some(text) = &e.token_text {
            let drawn = e
                .token
                .as_deref()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| Token::from_bytes(&b))
                .map(|t| t.to_string());
            if drawn.as_ref() != Some(text) {
                r.fail(format!(
                    "events.jsonl: event {}: token_text {text:?} is not its token's text",
                    e.id
                ));
                bad += 1;
            }
        }
        if e.opens() == Some(false) {
            r.fail(format!("events.jsonl: event {}: its address {:?} does not open its commitment (the address was changed)", e.id, e.client_ip.as_deref().unwrap_or("")));
            bad += 1;
        }
        match e.chained() {
            Ok(c) => {
                let d = digest(&c);
                out.insert(e.id, (e, d));
            }
            Err(why) => {
                r.fail(format!("events.jsonl: event {}: {why}", e.id));
                bad += 1;
            }
        }
    }
    if bad == 0 {
        r.pass(format!(
            "events.jsonl: {} events in order, commitments open",
            out.len()
        ));
    }
    out
}

fn check_chain(
    files: &Files,
    events: &Events,
    checkpoints: &[Cp],
    manifest: Option<&serde_json::Value>,
    r: &mut Report,
) {
    let Some(bytes) = files.get("chain.jsonl") else {
        r.fail("chain.jsonl: missing");
        return;
    };
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let start: serde_json::Value = match lines.next().map(serde_json::from_str::<serde_json::Value>)
    {
        Some(Ok(v)) if v["type"] == "start" => v,
        _ => {
            r.fail("chain.jsonl: the first line is not its start");
            return;
        }
    };
    let parse32 = |s: &str| -> Option<[u8; 32]> { hex::decode(s).ok()?.try_into().ok() };
    let Some(mut prev) = start["chain"].as_str().and_then(parse32) else {
        r.fail("chain.jsonl: the start value is not 32 bytes of hex");
        return;
    };
    let after = start["after"].as_i64().unwrap_or(-1);
    let by_event: HashMap<i64, &str> = checkpoints
        .iter()
        .map(|c| (c.event_id, c.chain.as_str()))
        .collect();
    let source = start["source"].as_str().unwrap_or_default();
    let mut bad = 0;
    match source {
        "checkpoint" => {
            if by_event.get(&after) != Some(&start["chain"].as_str().unwrap_or_default()) {
                r.fail(format!(
                    "chain.jsonl: its start (after event {after}) is not a signed checkpoint"
                ));
                bad += 1;
            }
        }
        "genesis" if after != 0 || prev != [0; 32] => {
            r.fail("chain.jsonl: a genesis start must be 32 zero bytes after event 0");
            bad += 1;
        }
        "genesis" | "anchor" => {}
        other => {
            r.fail(format!("chain.jsonl: unknown start source {other:?}"));
            bad += 1;
        }
    }
    let mut expected = after + 1;
    let mut seen = BTreeSet::new();
    let mut first_bad: Option<i64> = None;
    let mut last_ok_checkpoint: Option<i64> = (source == "checkpoint").then_some(after);
    let mut end: Option<(i64, String)> = None;
    let mut others = 0u64;
    for line in lines {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => {
                r.fail(format!(
                    "chain.jsonl: a line after event {} is not valid JSON",
                    expected - 1
                ));
                return;
            }
        };
        let id = v["id"].as_i64().unwrap_or(-1);
        match v["type"].as_str() {
            Some("end") => {
                end = Some((id, v["chain"].as_str().unwrap_or_default().to_string()));
                break;
            }
            Some(t @ ("event" | "digest")) => {
                if id != expected {
                    r.fail(format!("chain.jsonl: event {id} where event {expected} was due (a line is missing, moved or added)"));
                    return;
                }
                let d = if t == "event" {
                    seen.insert(id);
                    match events.get(&id) {
                        Some((_, d)) => *d,
                        None => {
                            r.fail(format!("chain.jsonl: event {id} of the actor is not in events.jsonl (removed)"));
                            return;
                        }
                    }
                } else {
                    others += 1;
                    match v["digest"].as_str().and_then(parse32) {
                        Some(d) => d,
                        None => {
                            r.fail(format!(
                                "chain.jsonl: the digest of event {id} is not 32 bytes of hex"
                            ));
                            return;
                        }
                    }
                };
                prev = chain_link(&prev, &d);
                let here = hex::encode(prev);
                if t == "event" {
                    let stored = &events[&id].0.chain;
                    if *stored != here && first_bad.is_none() {
                        first_bad = Some(id);
                        r.fail(format!("chain.jsonl / events.jsonl: the chain breaks at event {id}: it, or a line before it since event {}, was changed", last_ok_checkpoint.unwrap_or(after) + 1));
                        bad += 1;
                    }
                }
                if let Some(c) = by_event.get(&id) {
                    if *c != here {
                        if first_bad.is_none() {
                            first_bad = Some(id);
                            r.fail(format!("chain.jsonl: the chain does not reach checkpoint at event {id}: a line from event {} to {id} was changed", last_ok_checkpoint.unwrap_or(after) + 1));
                            bad += 1;
                        }
                    } else if first_bad.is_none() {
                        last_ok_checkpoint = Some(id);
                    }
                }
                expected = id + 1;
            }
            _ => {
                r.fail(format!(
                    "chain.jsonl: unknown line after event {}",
                    expected - 1
                ));
                return;
            }
        }
    }
    let Some((end_id, end_chain)) = end else {
        r.fail("chain.jsonl: no end line (cut short)");
        return;
    };
    if end_id != expected - 1 {
        r.fail(format!(
            "chain.jsonl: ends at event {end_id} after event {}",
            expected - 1
        ));
        bad += 1;
    }
    if end_chain != hex::encode(prev) && first_bad.is_none() {
        r.fail(format!(
            "chain.jsonl: the recomputed value after event {end_id} differs from its end line"
        ));
        bad += 1;
    }
    if by_event.get(&end_id) != Some(&end_chain.as_str()) {
        r.fail(format!("checkpoints.jsonl: no signed checkpoint at the segment's end (event {end_id}): dropped or forged"));
        bad += 1;
    }
    for id in events.keys() {
        if !seen.contains(id) {
            r.fail(format!(
                "events.jsonl: event {id} is not in the chain segment (added)"
            ));
            bad += 1;
        }
    }
    if let Some(m) = manifest {
        let c = &m["chain"];
        let files_say = [
            ("end", serde_json::json!(end_id)),
            ("end_chain", serde_json::json!(end_chain)),
            ("start_after", serde_json::json!(after)),
            ("start_source", serde_json::json!(source)),
            ("events", serde_json::json!(events.len())),
        ];
        for (field, actual) in files_say.iter().filter(|(f, v)| c[*f] != *v) {
            r.fail(format!(
                "manifest.json: chain.{field} is {}, chain.jsonl and events.jsonl say {actual}",
                c[field]
            ));
            bad += 1;
        }
    }
    if bad == 0 {
        r.pass(format!(
            "chain.jsonl: events {} to {end_id} link up ({} of the actor, {others} other visitors' as digests) and meet the signed checkpoint at event {end_id}",
            after + 1,
            seen.len()
        ));
    }
}

type Events = BTreeMap<i64, (EventLine, [u8; 32])>;

/// A CSV file of the bundle as rows of named fields; `Err` says why it does not parse.
fn csv_rows(
    files: &Files,
    name: &str,
    need: &[&str],
) -> Option<Result<Vec<HashMap<String, String>>, String>> {
    let bytes = files.get(name)?;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => return Some(Err(format!("{name}: does not parse ({e})"))),
    };
    if let Some(missing) = need.iter().find(|n| !header.iter().any(|h| h == *n)) {
        return Some(Err(format!("{name}: its header has no {missing} column")));
    }
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        match record {
            Ok(r) => rows.push(
                header
                    .iter()
                    .cloned()
                    .zip(r.iter().map(str::to_string))
                    .collect(),
            ),
            Err(e) => return Some(Err(format!("{name} line {}: does not parse ({e})", n + 2))),
        }
    }
    Some(Ok(rows))
}

/// The event ids of a CSV field (`"12 15 19"`), each required in `events.jsonl`; `token`, when
/// given, is what each of them must have fetched.
fn check_event_ids(
    field: &str,
    token: Option<&str>,
    events: &Events,
    at: &str,
    r: &mut Report,
) -> usize {
    let mut bad = 0;
    for id in field.split_whitespace() {
        let found = id.parse::<i64>().ok().and_then(|id| events.get(&id));
        let why = match (found, token) {
            (None, _) => Some("is not in events.jsonl"),
            (Some((e, _)), Some(t)) if e.token_text.as_deref() != Some(t) => {
                Some("fetched another token")
            }
            _ => None,
        };
        if let Some(why) = why {
            r.fail(format!("{at}: event {id:?} {why}"));
            bad += 1;
        }
    }
    bad
}

fn check_canaries(files: &Files, events: &Events, r: &mut Report) {
    const NEED: [&str; 12] = [
        "token",
        "file",
        "sha256",
        "identity_seed",
        "variant_seed",
        "size",
        "jpeg_quality",
        "phash",
        "dhash",
        "first_fetch_ms",
        "fetches",
        "event_ids",
    ];
    let rows = match csv_rows(files, "canaries/index.csv", &NEED) {
        None => return r.fail("canaries/index.csv: missing"),
        Some(Err(why)) => return r.fail(why),
        Some(Ok(rows)) => rows,
    };
    let mut bad = 0;
    let mut n = 0;
    let mut listed = BTreeSet::new();
    for row in &rows {
        let f = |k: &str| row[k].as_str();
        // A leading `'` is the spreadsheet guard of docs/evidence-format.md.
        let token = f("token").strip_prefix('\'').unwrap_or(f("token"));
        let (file, sha_hex) = (f("file"), f("sha256"));
        bad += check_event_ids(
            f("event_ids"),
            Some(token),
            events,
            &format!("canaries/index.csv, token {token:?}"),
            r,
        );
        let (Ok(t), Ok(identity), Ok(variant), Ok(size), Ok(quality)) = (
            token.parse::<Token>(),
            f("identity_seed").parse::<u64>(),
            f("variant_seed").parse::<u64>(),
            f("size").parse::<u32>(),
            f("jpeg_quality").parse::<u8>(),
        ) else {
            r.fail(format!(
                "canaries/index.csv: the line of {token:?} does not parse"
            ));
            bad += 1;
            continue;
        };
        if file.is_empty() {
            continue;
        }
        listed.insert(file.to_string());
        n += 1;
        let image = crate::canary::render::render_seeds(identity, variant, size);
        let again = crate::canary::marks::encode_jpeg(&image, &t, quality).unwrap_or_default();
        let hashes =
            crate::canary::hash::Scheme::new().hashes(&crate::canary::hash::Frame::of_rgb(&image));
        let drawn_hashes = (
            format!("{:016x}", hashes.phash),
            format!("{:016x}", hashes.dhash),
        );
        match files.get(file) {
            None => {
                r.fail(format!("{file}: missing"));
                bad += 1;
            }
            Some(b) if sha(b) != sha_hex || sha(&again) != sha_hex => {
                r.fail(format!(
                    "{file}: is not canary {token} as its seeds draw it"
                ));
                bad += 1;
            }
            Some(_)
                if !f("phash").is_empty()
                    && (f("phash"), f("dhash"))
                        != (drawn_hashes.0.as_str(), drawn_hashes.1.as_str()) =>
            {
                r.fail(format!("{file}: its seeds draw an image whose hashes differ from those stored when it was served"));
                bad += 1;
            }
            _ => {}
        }
    }
    for name in files.keys() {
        if name.starts_with("canaries/") && name != "canaries/index.csv" && !listed.contains(name) {
            r.fail(format!("{name}: not in canaries/index.csv"));
            bad += 1;
        }
    }
    if bad == 0 {
        r.pass(format!("canaries: {n} images re-rendered from their seeds, identical to the bundle's and to the hashes stored when served; every fetch listed is in events.jsonl"));
    }
}

/// `robots/SHA.txt`: each named by its SHA-256, and each version an event says it was served
/// present.
fn check_robots(files: &Files, events: &Events, r: &mut Report) {
    let mut bad = 0;
    let mut n = 0;
    for (name, bytes) in files.range("robots/".to_string()..) {
        let Some(file) = name.strip_prefix("robots/") else {
            break;
        };
        n += 1;
        if file.strip_suffix(".txt") != Some(sha(bytes).as_str()) {
            r.fail(format!("{name}: its SHA-256 is not its name (changed)"));
            bad += 1;
        }
    }
    for (id, (e, _)) in events {
        if let Some(h) = &e.robots_sha256 {
            if !files.contains_key(&format!("robots/{h}.txt")) {
                r.fail(format!(
                    "events.jsonl: event {id}: the robots.txt it was served (robots/{h}.txt) is not in the bundle"
                ));
                bad += 1;
            }
        }
    }
    if bad == 0 {
        r.pass(format!(
            "robots/: {n} robots.txt versions, each named by its SHA-256"
        ));
    }
}

fn check_site_images(files: &Files, events: &Events, r: &mut Report) {
    let rows = match csv_rows(files, "site-images.csv", &["path", "event_ids"]) {
        None => return r.fail("site-images.csv: missing"),
        Some(Err(why)) => return r.fail(why),
        Some(Ok(rows)) => rows,
    };
    let mut bad = 0;
    for row in &rows {
        let at = format!("site-images.csv, {:?}", row["path"]);
        bad += check_event_ids(&row["event_ids"], None, events, &at, r);
    }
    if bad == 0 {
        r.pass(format!(
            "site-images.csv: {} images, every fetch listed is in events.jsonl",
            rows.len()
        ));
    }
}
