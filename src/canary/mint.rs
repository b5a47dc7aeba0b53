//! Minting tokens: choosing the identity a client is shown, a fresh variant, and recording
//! the token with its seeds and hashes.
//!
//! Identities come from a rotating pool keyed by the deployment secret: a client seen for the
//! first time is given the next slots, which no other client holds until the pool wraps
//! around. So a face that later turns up in a face search engine points to few clients.

use super::hash::{Frame, Hashes, Scheme};
use super::render::{render_seeds, RENDERER_VERSION};
use super::Token;
use crate::config::CanaryConfig;
use crate::store::{now_ms, tokens, StoreError};
use image::RgbImage;
use rand::Rng;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// Meta key of the next pool slot to hand out.
pub const POOL_COUNTER: &str = "identity_pool_next";

/// The identity seed held by one slot of the pool of the deployment with `secret`.
pub fn pool_identity(secret: &[u8; 32], slot: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(secret)
        .chain_update(b"faceprobe identity pool")
        .chain_update(slot.to_le_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(b)
}

/// A freshly minted token, with its image as served (before JPEG) and its hashes.
pub struct Minted {
    pub id: i64,
    pub token: Token,
    pub identity_seed: u64,
    pub variant_seed: u64,
    pub hashes: Hashes,
    pub image: RgbImage,
}

/// What a token is minted for.
pub struct MintRequest<'a> {
    pub client_key: &'a str,
    /// `cli` or `edge`: who minted it.
    pub minted_by: &'a str,
    pub minting_event: Option<i64>,
    /// A given identity (reproducible renders); otherwise one of the client's.
    pub identity_seed: Option<u64>,
    /// A given variant; otherwise a random one.
    pub variant_seed: Option<u64>,
    pub size: u32,
}

/// Mints tokens against one store connection.
pub struct Minter {
    secret: [u8; 32],
    config: CanaryConfig,
    scheme: Scheme,
    scheme_id: i64,
}

impl Minter {
    pub fn new(
        conn: &Connection,
        secret: [u8; 32],
        config: CanaryConfig,
    ) -> Result<Minter, StoreError> {
        let scheme = Scheme::new();
        let scheme_id = tokens::scheme_id(conn, scheme.name(), scheme.params())?;
        Ok(Minter {
            secret,
            config,
            scheme,
            scheme_id,
        })
    }

    /// The hash scheme tokens are hashed under.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The identity seed held by one slot of the pool.
    pub fn pool_identity(&self, slot: u64) -> u64 {
        pool_identity(&self.secret, slot)
    }

    /// The identities a client is shown, giving it fresh ones from the pool on first sight.
    /// Run inside a transaction when several minters may share the store.
    pub fn identities_for(
        &self,
        conn: &Connection,
        client_key: &str,
    ) -> Result<Vec<u64>, StoreError> {
        let known = tokens::client_identities(conn, client_key)?;
        if !known.is_empty() {
            return Ok(known);
        }
        let next = tokens::meta_u64(conn, POOL_COUNTER)?.unwrap_or(0);
        let now = now_ms();
        let mut seeds = Vec::new();
        for i in 0..u64::from(self.config.identities_per_client) {
            let slot = (next + i) % self.config.identity_pool_size;
            let seed = self.pool_identity(slot);
            tokens::assign_identity(conn, client_key, seed, slot, now)?;
            seeds.push(seed);
        }
        let advanced = next + u64::from(self.config.identities_per_client);
        tokens::set_meta(conn, POOL_COUNTER, &advanced.to_string())?;
        Ok(seeds)
    }

    /// Mints one token: picks identity and variant, renders, hashes and records it.
    pub fn mint(&self, conn: &Connection, req: &MintRequest) -> Result<Minted, StoreError> {
        let mut rng = rand::rng();
        let identity_seed = match req.identity_seed {
            Some(s) => s,
            None => {
                let ids = self.identities_for(conn, req.client_key)?;
                ids[rng.random_range(0..ids.len())]
            }
        };
        let variant_seed = req.variant_seed.unwrap_or_else(|| rng.random());
        let image = render_seeds(identity_seed, variant_seed, req.size);
        let hashes = self.scheme.hashes(&Frame::of_rgb(&image));
        let token = Token::random();
        let id = tokens::insert(
            conn,
            &tokens::NewToken {
                token,
                identity_seed,
                variant_seed,
                size: req.size,
                renderer: RENDERER_VERSION,
                created_ms: now_ms(),
                client_key: req.client_key,
                minted_by: req.minted_by,
                minting_event: req.minting_event,
                hashes: Some((self.scheme_id, hashes)),
                parent_token: None,
                depth: 0,
            },
        )?;
        Ok(Minted {
            id,
            token,
            identity_seed,
            variant_seed,
            hashes,
            image,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn minter(store: &Store, pool: u64) -> Minter {
        let config = CanaryConfig {
            identity_pool_size: pool,
            identities_per_client: 2,
            ..CanaryConfig::default()
        };
        Minter::new(store.conn(), [7u8; 32], config).unwrap()
    }

    #[test]
    fn new_clients_get_identities_no_other_client_has() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = minter(&store, 1000);
        let a = m.identities_for(store.conn(), "a").unwrap();
        let b = m.identities_for(store.conn(), "b").unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|s| !b.contains(s)));
        assert_eq!(m.identities_for(store.conn(), "a").unwrap(), a);
    }

    #[test]
    fn pool_rotates_after_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = minter(&store, 4);
        let a = m.identities_for(store.conn(), "a").unwrap();
        let b = m.identities_for(store.conn(), "b").unwrap();
        let c = m.identities_for(store.conn(), "c").unwrap();
        assert!(a.iter().all(|s| !b.contains(s)));
        assert_eq!(c, a, "the oldest slots come round again");
    }

    #[test]
    fn minted_token_is_stored_with_seeds_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = minter(&store, 100);
        let req = MintRequest {
            client_key: "cli",
            minted_by: "cli",
            minting_event: None,
            identity_seed: None,
            variant_seed: None,
            size: 64,
        };
        let minted = m.mint(store.conn(), &req).unwrap();
        let row = tokens::by_token(store.conn(), &minted.token)
            .unwrap()
            .unwrap();
        assert_eq!(row.identity_seed, minted.identity_seed);
        assert_eq!(row.variant_seed, minted.variant_seed);
        assert!(m
            .identities_for(store.conn(), "cli")
            .unwrap()
            .contains(&row.identity_seed));
        let mut seen = Vec::new();
        tokens::for_each_hash(
            store.conn(),
            m.scheme_id,
            RENDERER_VERSION,
            |id, p, d, c| seen.push((id, p, d, c)),
        )
        .unwrap();
        let h = minted.hashes;
        assert_eq!(seen, vec![(minted.id, h.phash, h.dhash, h.center_phash)]);
    }
}
