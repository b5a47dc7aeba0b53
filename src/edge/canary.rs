//! Canaries at the edge: minting a token per page view (identity of the client, fresh
//! variant), the markup planted in pages, trap galleries, and serving the canary image once
//! its fetch is committed.
//!
//! Rendering never runs on the async runtime: a background thread renders minted tokens ahead
//! of their first fetch (at most `canary.render_ahead_per_second`, so planting costs a page
//! view nothing), and a fetch that finds no rendering waiting renders on the blocking pool.
//! Hashes are computed with the rendering and stored with the fetch record: only a canary
//! that left the building can turn up elsewhere, so only those need to be in the index.

use super::bounded::Bounded;
use crate::canary::hash::{Frame, Hashes, Scheme};
use crate::canary::mint::{pool_identity, POOL_COUNTER};
use crate::canary::render::{render_seeds, RENDERER_VERSION};
use crate::canary::seal::{self, Sealed, Sealer};
use crate::canary::{marks, Token};
use crate::config::CanaryConfig;
use crate::metrics::Metrics;
use crate::record::{Mint, Record, Recorder};
use crate::store::{now_ms, tokens, Store, StoreError};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use rusqlite::Connection;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};

/// Tokens kept in memory for their first fetch; older ones are looked up in SQLite.
const MINTS_IN_MEMORY: usize = 262_144;
/// Clients whose identities are kept in memory.
const CLIENTS_IN_MEMORY: usize = 262_144;
/// Render-ahead jobs waiting at most; more are skipped (they render on first fetch).
const RENDER_QUEUE: usize = 256;

/// A canary as served, with the hashes of its image.
pub struct Rendered {
    pub jpeg: Bytes,
    pub hashes: Hashes,
}

pub struct Canaries {
    secret: [u8; 32],
    config: CanaryConfig,
    scheme: Scheme,
    scheme_id: i64,
    pool_next: AtomicU64,
    /// The pool slots and identity seeds of each client seen lately.
    identities: Mutex<Bounded<String, Vec<(u64, u64)>>>,
    sealer: Sealer,
    mints: Mutex<Bounded<Token, Mint>>,
    cache: Arc<Mutex<Bounded<Token, Arc<Rendered>>>>,
    ahead_limit: DefaultDirectRateLimiter,
    ahead_tx: mpsc::SyncSender<Mint>,
    /// Read connection for tokens no longer in memory.
    db: Mutex<Connection>,
    recorder: Recorder,
}

impl Canaries {
    pub fn new(
        data_dir: &Path,
        secret: [u8; 32],
        sealer: Sealer,
        config: CanaryConfig,
        jpeg_quality: u8,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Result<Canaries, StoreError> {
        let store = Store::open(data_dir)?;
        let scheme = Scheme::new();
        let scheme_id = tokens::scheme_id(store.conn(), scheme.name(), scheme.params())?;
        let pool_next = tokens::meta_u64(store.conn(), POOL_COUNTER)?.unwrap_or(0);
        let cache = Arc::new(Mutex::new(Bounded::new(config.cache_entries)));
        let (ahead_tx, ahead_rx) = mpsc::sync_channel::<Mint>(RENDER_QUEUE);
        {
            let cache = cache.clone();
            let scheme = Scheme::new();
            std::thread::Builder::new()
                .name("faceprobe-render".into())
                .spawn(move || {
                    if let Err(e) = super::sched::background() {
                        tracing::debug!(error = %e, "the render thread keeps its policy");
                    }
                    while let Ok(mint) = ahead_rx.recv() {
                        if let Some(r) = render(&scheme, &mint, jpeg_quality) {
                            lock(&cache).insert(mint.token, Arc::new(r));
                            metrics.canaries_rendered_ahead.fetch_add(1, Relaxed);
                        }
                    }
                })
                .map_err(|e| StoreError::Secret {
                    path: data_dir.to_path_buf(),
                    message: format!("cannot start the render thread: {e}"),
                })?;
        }
        let rate =
            NonZeroU32::new(config.render_ahead_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Canaries {
            secret,
            scheme,
            scheme_id,
            pool_next: AtomicU64::new(pool_next),
            identities: Mutex::new(Bounded::new(CLIENTS_IN_MEMORY)),
            sealer,
            mints: Mutex::new(Bounded::new(MINTS_IN_MEMORY)),
            cache,
            ahead_limit: RateLimiter::direct(Quota::per_second(rate)),
            ahead_tx,
            db: Mutex::new(store.into_conn()),
            recorder,
            config: CanaryConfig {
                jpeg_quality,
                ..config
            },
        })
    }

    /// The identities a client is shown (pool slot, identity seed); a client seen for the
    /// first time gets the next slots of the pool.
    fn identities_for(&self, client_key: &str) -> Vec<(u64, u64)> {
        let key = client_key.to_string();
        if let Some(ids) = lock(&self.identities).get(&key) {
            return ids.clone();
        }
        // Seen before a restart (or evicted from memory): the same identities again. One
        // indexed read, once per client per process.
        if let Ok(known) = tokens::client_pool(&lock(&self.db), &key) {
            if !known.is_empty() {
                lock(&self.identities).insert(key, known.clone());
                return known;
            }
        }
        let n = u64::from(self.config.identities_per_client);
        let first = self.pool_next.fetch_add(n, Relaxed);
        let assigned: Vec<(u64, u64)> = (first..first + n)
            .map(|i| {
                let slot = i % self.config.identity_pool_size;
                (slot, pool_identity(&self.secret, slot))
            })
            .collect();
        lock(&self.identities).insert(key.clone(), assigned.clone());
        self.recorder.try_send(Record::Identities {
            client_key: key,
            assigned: assigned.clone(),
            pool_next: first + n,
            ts_ms: now_ms(),
        });
        assigned
    }

    /// Mints a token for a page view (or a gallery page, with its parent). Sealed (any
    /// replica of the deployment serves it) unless what it must carry does not fit: a client
    /// key not made by the edge, a pool slot past 32 bits, a gallery deeper than 255.
    pub fn mint(&self, client_key: &str, parent: Option<&Mint>) -> Mint {
        let ids = self.identities_for(client_key);
        let mut rng = rand::rng();
        let (slot, identity_seed) = ids[rng.random_range(0..ids.len())];
        let depth = parent.map(|p| p.depth + 1).unwrap_or(0);
        let created_ms = now_ms();
        let mut variant_seed: u64 = rng.random();
        let sealed = match (
            seal::client_bytes(client_key),
            u32::try_from(slot),
            u8::try_from(depth),
        ) {
            (Some(client), Ok(pool_slot), Ok(depth)) => {
                variant_seed &= (1 << 48) - 1;
                Some(self.sealer.seal(&Sealed {
                    created_ms,
                    variant_seed,
                    pool_slot,
                    client,
                    replica: self.sealer.replica(),
                    depth,
                }))
            }
            _ => None,
        };
        let mint = Mint {
            token: sealed.unwrap_or_else(|| Token::minted_at(created_ms)),
            identity_seed,
            variant_seed,
            size: self.config.size,
            renderer: RENDERER_VERSION,
            created_ms,
            client_key: client_key.to_string(),
            parent: parent.map(|p| p.token),
            depth,
        };
        lock(&self.mints).insert(mint.token, mint.clone());
        if self.ahead_limit.check().is_ok() {
            let _ = self.ahead_tx.try_send(mint.clone());
        }
        mint
    }

    /// A token of this deployment: from memory, opened when sealed (minted by any replica),
    /// else from SQLite (blocking; call off the runtime). `None` for a token this deployment
    /// never issued, such as a sealed token that does not open (altered, made up, another
    /// deployment's).
    pub fn lookup_blocking(&self, token: &Token) -> Result<Option<Mint>, StoreError> {
        if let Some(m) = lock(&self.mints).get(token) {
            return Ok(Some(m.clone()));
        }
        if seal::is_sealed(token) {
            return Ok(self.sealer.open(token).map(|s| self.unsealed(*token, &s)));
        }
        let row = tokens::by_token(&lock(&self.db), token)?;
        Ok(row.map(|r| Mint {
            token: r.token,
            identity_seed: r.identity_seed,
            variant_seed: r.variant_seed,
            size: r.size,
            renderer: r.renderer,
            created_ms: r.created_ms,
            client_key: r.client_key,
            parent: r.parent_token,
            depth: r.depth,
        }))
    }

    /// The mint a sealed token carries. Its parent gallery is not carried: the minting
    /// replica's record has it.
    fn unsealed(&self, token: Token, s: &Sealed) -> Mint {
        Mint {
            token,
            identity_seed: pool_identity(&self.secret, u64::from(s.pool_slot)),
            variant_seed: s.variant_seed,
            size: self.config.size,
            renderer: seal::FORMAT_RENDERER,
            created_ms: s.created_ms,
            client_key: s.client_key(),
            parent: None,
            depth: u32::from(s.depth),
        }
    }

    /// The canary as served: rendered ahead, or now (blocking; call off the runtime).
    pub fn rendered_blocking(&self, mint: &Mint) -> Option<Arc<Rendered>> {
        if let Some(r) = lock(&self.cache).get(&mint.token) {
            return Some(r.clone());
        }
        let r = Arc::new(render(&self.scheme, mint, self.config.jpeg_quality)?);
        lock(&self.cache).insert(mint.token, r.clone());
        Some(r)
    }

    pub fn scheme_id(&self) -> i64 {
        self.scheme_id
    }

    /// The markup planted before `</body>`: never rendered (`hidden` and `display:none`, so
    /// neither eyes, screen readers nor keyboards meet it); the lazy image is never loaded by
    /// a browser, an HTML-scraping harvester takes it; the trap link is `nofollow` and
    /// disallowed by robots.txt.
    pub fn markup(token: &Token) -> String {
        format!(
            "<div hidden style=\"display:none\" aria-hidden=\"true\">\
             <img loading=\"lazy\" src=\"/_fp/c/{token}.jpg\" alt=\"\">\
             <a href=\"/_fp/g/{token}\" rel=\"nofollow\" tabindex=\"-1\">Portrait gallery</a></div>"
        )
    }

    /// A trap gallery page: canaries shown as ordinary portraits, and deeper galleries.
    pub fn gallery(&self, client_key: &str, parent: &Mint) -> (String, Vec<Mint>) {
        let mut mints = Vec::new();
        let mut body = String::new();
        for _ in 0..self.config.gallery_canaries {
            let m = self.mint(client_key, Some(parent));
            body.push_str(&format!(
                "<figure><img src=\"/_fp/c/{t}.jpg\" width=\"{s}\" height=\"{s}\" alt=\"Portrait\">\
                 <figcaption>Portrait {t}</figcaption></figure>\n",
                t = m.token,
                s = m.size
            ));
            mints.push(m);
        }
        body.push_str("<nav>");
        for i in 0..self.config.gallery_links {
            let m = self.mint(client_key, Some(parent));
            body.push_str(&format!(
                "<a href=\"/_fp/g/{}\" rel=\"nofollow\">More portraits ({})</a> ",
                m.token,
                i + 1
            ));
            mints.push(m);
        }
        body.push_str("</nav>");
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"robots\" content=\"noindex, nofollow, noai, noimageai\">\
             <title>Portrait gallery</title></head>\n<body>\n<h1>Portrait gallery</h1>\n\
             <p>Synthetic canary images of people who do not exist. No consent to biometric \
             processing; data mining prohibited. / Images synthétiques de personnes qui \
             n'existent pas. Aucun consentement au traitement biométrique ; fouille de données \
             interdite.</p>\n{body}\n</body></html>\n"
        );
        (html, mints)
    }
}

fn render(scheme: &Scheme, mint: &Mint, quality: u8) -> Option<Rendered> {
    if mint.renderer != RENDERER_VERSION {
        return None;
    }
    let image = render_seeds(mint.identity_seed, mint.variant_seed, mint.size);
    let jpeg = marks::encode_jpeg(&image, &mint.token, quality).ok()?;
    let hashes = scheme.hashes(&Frame::of_rgb(&image));
    Some(Rendered {
        jpeg: Bytes::from(jpeg),
        hashes,
    })
}

/// Locks a mutex, recovering from poisoning: every value under these locks stays valid
/// whatever a panicking holder was doing.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RecordConfig;

    fn canaries(dir: &Path) -> (Canaries, Recorder, crate::record::WriterHandle) {
        let metrics = Arc::new(Metrics::default());
        let config = RecordConfig {
            synchronous: crate::config::Synchronous::Normal,
            ..RecordConfig::default()
        };
        let (rec, writer) = crate::record::start(dir, &config, [5; 32], metrics.clone()).unwrap();
        let c = Canaries::new(
            dir,
            [5; 32],
            Sealer::new(&[5; 32], 1),
            CanaryConfig::default(),
            90,
            rec.clone(),
            metrics,
        )
        .unwrap();
        (c, rec, writer)
    }

    #[test]
    fn a_client_keeps_its_identities_across_a_restart_and_new_clients_get_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (c, rec, writer) = canaries(dir.path());
        let first: Vec<u64> = (0..20).map(|_| c.mint("c:a", None).identity_seed).collect();
        assert!(
            !seal::is_sealed(&c.mint("c:a", None).token),
            "c:a cannot be sealed"
        );
        let b = c.mint("c:b", None).identity_seed;
        assert!(
            !first.contains(&b),
            "a new client is shown identities no other client has"
        );
        rec.flush_blocking().unwrap();
        drop((c, rec));
        writer.join();
        let (c, rec, writer) = canaries(dir.path());
        let again = c.mint("c:a", None).identity_seed;
        assert!(first.contains(&again), "same identities after a restart");
        let new = c.mint("c:new", None).identity_seed;
        assert!(
            !first.contains(&new) && new != b,
            "the pool counter survived the restart"
        );
        drop((c, rec));
        writer.join();
    }

    #[test]
    fn gallery_tokens_record_their_parent_and_depth() {
        let dir = tempfile::tempdir().unwrap();
        let (c, rec, writer) = canaries(dir.path());
        let root = c.mint("c:a", None);
        let (html, mints) = c.gallery("c:a", &root);
        assert_eq!(mints.len(), 7);
        assert!(mints
            .iter()
            .all(|m| m.parent == Some(root.token) && m.depth == 1));
        for m in &mints {
            assert!(html.contains(&m.token.to_string()));
        }
        let deeper = c.gallery("c:a", &mints[6]).1;
        assert!(deeper.iter().all(|m| m.depth == 2));
        drop((c, rec));
        writer.join();
    }
}
