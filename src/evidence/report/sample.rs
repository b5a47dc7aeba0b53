//! A realistic report for the tests and for looking at the output: a harvester announcing
//! `img2dataset/1.5`, a cluster of three addresses, 300 requests over 40 minutes.

use std::collections::BTreeMap;

use super::model::*;

const T0: i64 = 1_796_289_245_000; // 2026-12-03 09:14:05 UTC
const MIN: i64 = 60_000;

/// A deterministic base64url string of `n` characters.
fn token(seed: u64, n: usize) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ABC[(x % 64) as usize] as char
        })
        .collect()
}

fn hex(seed: u64, n: usize) -> String {
    token(seed, n)
        .bytes()
        .map(|b| char::from(b"0123456789abcdef"[(b % 16) as usize]))
        .collect()
}

pub(crate) fn report() -> Report {
    let first = T0;
    let last = T0 + 40 * MIN;
    let canaries: Vec<Canary> = (0..42u64)
        .map(|i| {
            let tok = token(i + 1, 30);
            let at = T0 + 90_000 + i as i64 * 52_000;
            Canary {
                file: format!("canaries/{tok}.jpg"),
                token: tok,
                first_fetch_ms: at,
                fetches: if i % 11 == 3 { 2 } else { 1 },
                event_ids: vec![1100 + i as i64 * 7],
                depth: if i < 12 { 0 } else { 1 + ((i - 12) / 5) as u32 },
                minted_ms: at - 2_000,
                minted_for_actor: !(i == 30 || i == 31 || i == 40),
                phash: hex(i + 100, 16),
                dhash: hex(i + 200, 16),
            }
        })
        .collect();
    let site_images = (0..18u64)
        .map(|i| SiteImage {
            path: format!("/albums/2026/fete-de-quartier/IMG_{:04}.jpg", 2041 + i * 3),
            fetches: 5,
            first_ms: T0 + 40_000 + i as i64 * 61_000,
            last_ms: T0 + 20 * MIN + i as i64 * 70_000,
            bytes: 180_000 + (i * 37_919) % 260_000,
        })
        .collect::<Vec<_>>();
    let site_images_bytes = site_images.iter().map(|s| s.bytes).sum();
    let timeline = (0..40i64)
        .map(|i| {
            let w = |a: i64, b: i64| ((i * a + b) % 5) as u64;
            Bucket {
                start_ms: T0 + i * MIN,
                end_ms: T0 + (i + 1) * MIN,
                pages: 1 + w(3, 1) / 2,
                site_images: if i < 36 { 2 + w(2, 3) / 3 } else { 0 },
                canaries: 1 + w(7, 2) / 4,
                traps: if i > 8 { 2 + w(1, 4) / 2 } else { 0 },
                robots: u64::from(i == 0 || i == 14 || i == 29),
                other: u64::from(i % 9 == 4),
            }
        })
        .collect();
    Report {
        bundle_id: "evidence-20261203-1a2b3c4d".into(),
        created_ms: T0 + 48 * MIN + 6_000,
        tool_version: "0.1.0".into(),
        deployment: Deployment {
            site: "https://photos.example.org".into(),
            operator: "Association Photo-Club de Belleville".into(),
            contact: "dpo@photos.example.org".into(),
            mode: "proxy".into(),
            checkpoint_minutes: 10,
            raw_ip_hours: 72,
            instance: String::new(),
        },
        actor: Actor {
            key: "k:3f9c2a7e41b08d55c6e1aa90".into(),
            kind: "cluster".into(),
            level: Some("harvester".into()),
            score: 87.5,
            crawler: Some("img2dataset".into()),
            addresses: vec![
                Address {
                    address: "203.0.113.7".into(),
                    raw: true,
                    requests: 212,
                    first_ms: first,
                    last_ms: last,
                },
                Address {
                    address: "203.0.113.9".into(),
                    raw: true,
                    requests: 61,
                    first_ms: first + 6 * MIN,
                    last_ms: last - 3 * MIN,
                },
                Address {
                    address: "ip:9a4c07d2e5b13f68a0c4d19e7b2f5a83".into(),
                    raw: false,
                    requests: 27,
                    first_ms: first + 11 * MIN,
                    last_ms: first + 25 * MIN,
                },
            ],
            agents: vec![
                Agent {
                    agent: "img2dataset/1.5".into(),
                    requests: 288,
                },
                Agent {
                    agent: "python-requests/2.31.0".into(),
                    requests: 12,
                },
            ],
            members: vec![
                "c:5d1e8a03b7c24f9e6a0b3c71".into(),
                "c:a87f2c19d04e63b5f1c8e2d0".into(),
                "c:0c6b9e4f27a1d853e9f0b6a4".into(),
            ],
            first_ms: first,
            last_ms: last,
        },
        activity: Activity {
            requests: 300,
            pages: 60,
            site_images: 90,
            canaries: 46,
            distinct_canaries: 42,
            traps: 89,
            max_trap_depth: 7,
            robots_fetches: 3,
            robots_violations: 60,
            assets: 0,
            other: 12,
            first_ms: first,
            last_ms: last,
        },
        timeline,
        robots: vec![RobotsVersion {
            sha256: hex(7, 64),
            first_served_ms: T0 - 86_400_000 * 12,
            fetched_ms: vec![T0, T0 + 14 * MIN + 3_000, T0 + 29 * MIN + 41_000],
            lines: vec![
                RobotsLine {
                    number: 1,
                    text: "User-agent: *".into(),
                    broken: 0,
                },
                RobotsLine {
                    number: 2,
                    text: "Disallow: /_fp/".into(),
                    broken: 60,
                },
                RobotsLine {
                    number: 3,
                    text: "Disallow: /private/".into(),
                    broken: 0,
                },
            ],
        }],
        opt_outs: vec![
            OptOut {
                signal: "robots_txt".into(),
                value: "Disallow: /_fp/".into(),
                served: 3,
                ignored: 60,
                first_served_ms: Some(T0),
            },
            OptOut {
                signal: "x_robots_tag".into(),
                value: "noai, noimageai".into(),
                served: 150,
                ignored: 287,
                first_served_ms: Some(T0 + 12_000),
            },
            OptOut {
                signal: "tdm_reservation".into(),
                value: "1".into(),
                served: 150,
                ignored: 287,
                first_served_ms: Some(T0 + 12_000),
            },
        ],
        canaries,
        site_images,
        site_images_total: 18,
        site_images_bytes,
        reasons: vec![
            Reason {
                signal: "canary_fetched".into(),
                score: 30.0,
                count: 42,
                detail: "42 canaries fetched".into(),
                event_ids: vec![1100],
            },
            Reason {
                signal: "robots_read_then_disallowed".into(),
                score: 20.0,
                count: 60,
                detail: "read robots.txt at 09:14:05, then 60 disallowed requests".into(),
                event_ids: vec![1020],
            },
            Reason {
                signal: "gallery_depth".into(),
                score: 12.0,
                count: 7,
                detail: "trap gallery depth 7".into(),
                event_ids: vec![],
            },
            Reason {
                signal: "opt_out_ignored".into(),
                score: 10.0,
                count: 287,
                detail: "287 requests after noai".into(),
                event_ids: vec![],
            },
            Reason {
                signal: "known_agent".into(),
                score: 8.0,
                count: 288,
                detail: "agent names img2dataset".into(),
                event_ids: vec![],
            },
            Reason {
                signal: "no_render".into(),
                score: 4.5,
                count: 1,
                detail: "0 stylesheets, 0 scripts for 60 pages".into(),
                event_ids: vec![],
            },
            Reason {
                signal: "cluster_addresses".into(),
                score: 3.0,
                count: 3,
                detail: "3 addresses, same header order".into(),
                event_ids: vec![],
            },
        ],
        history: vec![
            HistoryEntry {
                ts_ms: T0 + 2 * MIN,
                level: Some("watch".into()),
                score: 14.0,
                note: "level reached".into(),
            },
            HistoryEntry {
                ts_ms: T0 + 7 * MIN,
                level: Some("suspect".into()),
                score: 41.0,
                note: "level reached".into(),
            },
            HistoryEntry {
                ts_ms: T0 + 13 * MIN,
                level: Some("harvester".into()),
                score: 72.5,
                note: "level reached".into(),
            },
            HistoryEntry {
                ts_ms: T0 + 46 * MIN,
                level: Some("harvester".into()),
                score: 87.5,
                note: "confirmed by admin: bulk download of the albums".into(),
            },
            HistoryEntry {
                ts_ms: T0 + 48 * MIN,
                level: Some("harvester".into()),
                score: 87.5,
                note: "evidence bundle built".into(),
            },
        ],
        found: vec![Found {
            file: "found/laion-subset-000417.jpg".into(),
            matched: true,
            token: Some(token(6, 30)),
            confidence: 0.97,
            method: "hash".into(),
            fetch_event_ids: vec![1135],
            by_actor: true,
        }],
        integrity: Integrity {
            events: 300,
            chain_start_after: 1018,
            chain_end: 1561,
            chain_start_source: "checkpoint".into(),
            other_events_as_digests: 243,
            checkpoints: 5,
            end_chain: hex(99, 64),
            end_checkpoint_ms: T0 + 46 * MIN,
            key_fingerprint: format!("SHA256:{}", token(5, 43)),
            public_key: format!(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} faceprobe@photos.example.org",
                token(4, 43)
            ),
            key_url: "https://photos.example.org/.well-known/faceprobe-key.pub".into(),
        },
    }
}

/// A JPEG for every canary: a simple synthetic face, different for each token.
pub(crate) fn images(r: &Report) -> BTreeMap<String, Vec<u8>> {
    r.canaries
        .iter()
        .enumerate()
        .map(|(i, c)| (c.file.clone(), face(i as u32)))
        .collect()
}

pub(crate) fn face(seed: u32) -> Vec<u8> {
    let s = seed as f32;
    let bg = [
        150.0 + (s * 37.0) % 90.0,
        160.0 + (s * 53.0) % 80.0,
        170.0 + (s * 29.0) % 70.0,
    ];
    let skin = [
        200.0 - (s * 17.0) % 90.0,
        160.0 - (s * 13.0) % 70.0,
        130.0 - (s * 11.0) % 60.0,
    ];
    let hair = [
        40.0 + (s * 23.0) % 120.0,
        30.0 + (s * 19.0) % 80.0,
        20.0 + (s * 7.0) % 40.0,
    ];
    let img = image::RgbImage::from_fn(256, 256, |x, y| {
        let (x, y) = (x as f32, y as f32);
        let inside = |cx: f32, cy: f32, rx: f32, ry: f32| {
            ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) <= 1.0
        };
        let c = if inside(128.0, 112.0, 78.0, 86.0) && y < 92.0 - (s % 3.0) * 6.0 {
            hair
        } else if inside(96.0, 118.0, 9.0, 6.0) || inside(160.0, 118.0, 9.0, 6.0) {
            [40.0, 35.0, 30.0]
        } else if inside(128.0, 180.0, 24.0, 6.0 + s % 4.0) && y > 178.0 {
            [150.0, 70.0, 70.0]
        } else if inside(128.0, 132.0, 64.0, 82.0) {
            let shade = 1.0 - (x - 128.0).abs() / 400.0;
            [skin[0] * shade, skin[1] * shade, skin[2] * shade]
        } else if y > 222.0 && inside(128.0, 290.0, 120.0, 80.0) {
            [hair[2] + 60.0, hair[1] + 40.0, hair[0] + 40.0]
        } else {
            let g = 1.0 - y / 900.0;
            [bg[0] * g, bg[1] * g, bg[2] * g]
        };
        image::Rgb([c[0] as u8, c[1] as u8, c[2] as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encoding an in-memory RGB image cannot fail");
    out
}

/// Strings a client could send to break a renderer out of text.
pub(crate) const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "#set page(width: 1pt)",
    "\"]) #panic(\"x\")",
    "back\\slash\\\\ $ math $ *bold* _em_ `raw` @ref <lbl> // c /* c */",
    "ctl\u{0}\u{1}\u{7}\u{8}\u{9}\u{a}\u{d}\u{1b}\u{1f}end",
    "rtl\u{202e}txt.exe",
    "line\u{2028}sep\u{2029}para",
];

/// The sample report with hostile strings in every client field.
pub(crate) fn hostile() -> Report {
    let mut r = report();
    let long = "A".repeat(4096);
    r.actor.agents = HOSTILE
        .iter()
        .map(|s| Agent {
            agent: s.to_string(),
            requests: 3,
        })
        .chain(std::iter::once(Agent {
            agent: long.clone(),
            requests: 1,
        }))
        .collect();
    r.actor.key = "c:<script>alert(1)</script>".into();
    r.actor.addresses[0].address = "#set page(width: 1pt)".into();
    r.site_images[0].path = format!("/{long}");
    r.site_images[1].path = "/\"]) #panic(\"x\")/<script>alert(1)</script>.jpg".into();
    r.history[0].note = "$ math $ *bold* \\ \u{202e}".into();
    r.deployment.operator = "*Opérateur* #panic(\"x\")".into();
    r.robots[0].lines[0].text = "User-agent: <script>alert(1)</script> #panic(\"x\")".into();
    r.bundle_id = "evidence-<b>-#panic".into();
    r
}
