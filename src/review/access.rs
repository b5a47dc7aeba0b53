//! Who may use the dashboard: the admin token (given, or made at first start and kept only
//! as its SHA-256), the sessions a login opens (an unguessable id in an `HttpOnly`,
//! `SameSite=Strict` cookie, a CSRF token of their own, an expiry), and the rate limit on
//! login attempts. It never stores or logs a token or a session id in the clear.

use super::ReviewError;
use crate::config::Config;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The file beside the database that keeps the SHA-256 of a token faceprobe made.
pub const TOKEN_HASH_FILE: &str = "admin-token.sha256";
/// The environment variable that gives the admin token.
pub const TOKEN_ENV: &str = "FACEPROBE_ADMIN_TOKEN";
/// The session cookie's name.
pub const COOKIE: &str = "fp_session";
/// Sessions kept at most: a flood of logins cannot grow memory without bound.
const MAX_SESSIONS: usize = 1024;

/// Where the token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Env,
    File,
    Config,
    /// Made at an earlier first start; only its hash is kept.
    Stored,
    /// Made now; `Access::new` returns it once, to be printed.
    Made,
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// Their name as given at login: recorded with every review and bundle.
    pub reviewer: String,
    /// The token every form of this session carries.
    pub csrf: String,
    expires: Instant,
}

pub struct Access {
    token_sha256: [u8; 32],
    pub source: Source,
    ttl: Duration,
    /// By the SHA-256 of the session id: a dump of memory holds no usable cookie.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    logins: DefaultKeyedRateLimiter<IpAddr>,
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// A random URL-safe string of `bytes` random bytes.
pub fn random(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

impl Access {
    /// Finds the token (environment, `review.token_file`, `review.token`, the stored hash,
    /// or a new one) and refuses a non-loopback admin listener without a given token.
    /// Returns the new token when one was made: it is shown once and never again.
    pub fn new(config: &Config) -> Result<(Access, Option<String>), ReviewError> {
        let r = &config.review;
        let given = match std::env::var(TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => Some((t.trim().to_string(), Source::Env)),
            _ => None,
        };
        let given = match (given, &r.token_file) {
            (Some(g), _) => Some(g),
            (None, Some(path)) => Some((read_token_file(path)?, Source::File)),
            (None, None) if !r.token.is_empty() => {
                Some((r.token.trim().to_string(), Source::Config))
            }
            (None, None) => None,
        };
        let addr = config.serve.admin_listen;
        if given.is_none() && !addr.ip().is_loopback() {
            return Err(ReviewError::NoToken(addr));
        }
        if let Some((t, _)) = &given {
            if t.len() < 16 {
                return Err(ReviewError::ShortToken);
            }
        }
        let hash_file = config.store.data_dir.join(TOKEN_HASH_FILE);
        let (token_sha256, source, made) = match given {
            Some((t, source)) => (sha256(&t), source, None),
            None => match read_hash_file(&hash_file)? {
                Some(h) => (h, Source::Stored, None),
                None => {
                    let t = random(24);
                    write_hash_file(&hash_file, &sha256(&t))?;
                    (sha256(&t), Source::Made, Some(t))
                }
            },
        };
        let per_minute = NonZeroU32::new(r.login_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok((
            Access {
                token_sha256,
                source,
                ttl: Duration::from_secs(r.session_hours * 3600),
                sessions: Mutex::new(HashMap::new()),
                logins: RateLimiter::keyed(Quota::per_minute(per_minute)),
            },
            made,
        ))
    }

    /// Whether one more login attempt from `peer` is allowed now.
    pub fn may_try(&self, peer: SocketAddr) -> bool {
        self.logins.check_key(&peer.ip()).is_ok()
    }

    /// Checks a token; on success opens a session and returns its id (the cookie's value).
    pub fn login(&self, token: &str, reviewer: &str) -> Option<String> {
        // Both sides are SHA-256 digests: comparing them leaks nothing about the token.
        if sha256(token.trim()) != self.token_sha256 {
            return None;
        }
        let id = random(32);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            // The one closest to expiring goes.
            if let Some(k) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
            {
                sessions.remove(&k);
            }
        }
        sessions.insert(
            sha256(&id),
            Session {
                reviewer: reviewer.to_string(),
                csrf: random(24),
                expires: now + self.ttl,
            },
        );
        Some(id)
    }

    /// The live session of a cookie value.
    pub fn session(&self, id: &str) -> Option<Session> {
        let key = sha256(id);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn logout(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(&sha256(id));
    }

    /// Seconds a session lasts (the cookie's Max-Age).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }
}

impl Session {
    /// Whether a form's CSRF field is this session's.
    pub fn csrf_ok(&self, given: &str) -> bool {
        csrf_ok(&self.csrf, given)
    }
}

/// Whether a form's CSRF field is `expected`; compared as SHA-256 digests, so the time it
/// takes says nothing about the token.
pub fn csrf_ok(expected: &str, given: &str) -> bool {
    !given.is_empty() && sha256(given) == sha256(expected)
}

fn read_token_file(path: &Path) -> Result<String, ReviewError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReviewError::TokenFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let t = text.lines().next().unwrap_or("").trim().to_string();
    if t.is_empty() {
        return Err(ReviewError::TokenFile {
            path: path.to_path_buf(),
            message: "it is empty; put the token on its first line".into(),
        });
    }
    Ok(t)
}

fn read_hash_file(path: &Path) -> Result<Option<[u8; 32]>, ReviewError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ReviewError::TokenFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
    match bytes {
        Some(b) => Ok(Some(b.try_into().unwrap_or([0; 32]))),
        None => Err(ReviewError::TokenFile {
            path: path.to_path_buf(),
            message: "not a SHA-256 in hex; delete the file and restart for a new token".into(),
        }),
    }
}

fn write_hash_file(path: &Path, hash: &[u8; 32]) -> Result<(), ReviewError> {
    let err = |e: std::io::Error| ReviewError::TokenFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, format!("{}\n", hex::encode(hash))).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, admin: &str) -> Config {
        let mut c = Config::default();
        c.store.data_dir = dir.to_path_buf();
        c.serve.admin_listen = admin.parse().unwrap();
        c
    }

    #[test]
    fn a_token_made_at_first_start_is_kept_hashed_and_opens_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), "127.0.0.1:8089");
        let (a, made) = Access::new(&c).unwrap();
        let token = made.expect("a token is made at first start");
        assert_eq!(a.source, Source::Made);
        let stored = std::fs::read_to_string(dir.path().join(TOKEN_HASH_FILE)).unwrap();
        assert!(!stored.contains(&token));
        assert_eq!(stored.trim(), hex::encode(sha256(&token)));
        // The next start reads the hash and shows nothing.
        let (b, again) = Access::new(&c).unwrap();
        assert!(again.is_none() && b.source == Source::Stored);
        assert!(b.login("wrong-token-wrong-token", "x").is_none());
        let id = b.login(&token, "Alice").unwrap();
        let s = b.session(&id).unwrap();
        assert_eq!(s.reviewer, "Alice");
        assert!(s.csrf_ok(&s.csrf) && !s.csrf_ok("") && !s.csrf_ok("nope"));
        b.logout(&id);
        assert!(b.session(&id).is_none());
    }

    #[test]
    fn a_public_admin_listener_needs_a_given_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), "0.0.0.0:8089");
        let err = Access::new(&c).err().expect("refused");
        let text = err.to_string();
        assert!(
            text.contains("0.0.0.0:8089") && text.contains(TOKEN_ENV),
            "{text}"
        );
        let file = dir.path().join("token");
        std::fs::write(&file, "a-long-enough-admin-token\n").unwrap();
        c.review.token_file = Some(file);
        let (a, made) = Access::new(&c).unwrap();
        assert!(made.is_none() && a.source == Source::File);
        assert!(a.login("a-long-enough-admin-token", "ops").is_some());
    }

    #[test]
    fn login_attempts_are_limited_per_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), "127.0.0.1:8089");
        c.review.login_per_minute = 3;
        let (a, _) = Access::new(&c).unwrap();
        let one: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let two: SocketAddr = "192.0.2.2:5000".parse().unwrap();
        assert!((0..3).all(|_| a.may_try(one)));
        assert!(!a.may_try(one));
        assert!(a.may_try(two));
    }
}
