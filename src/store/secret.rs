//! The per-deployment secret: 32 random bytes created at first run, readable only by owner.
//!
//! It keys everything that must not be guessable from outside: the identity seeds of the
//! canary pool now, and the IP pseudonyms of the recorder. Losing it breaks nothing stored,
//! but new identities and pseudonyms would no longer line up with old ones.

use super::StoreError;
use std::io::Write;
use std::path::Path;

const FILE: &str = "secret.key";

/// Loads the secret from `given` (`store.secret_file`) when set, else from `dir`, creating it
/// there (mode 0600) on first use. A given file is never created.
pub fn load_or_create(dir: &Path, given: Option<&Path>) -> Result<[u8; 32], StoreError> {
    if let Some(path) = given {
        return load_given(path);
    }
    let path = dir.join(FILE);
    let err = |message: String| StoreError::Secret {
        path: path.clone(),
        message,
    };
    match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|b: Vec<u8>| {
            err(format!(
                "holds {} bytes, expected 32; restore it from backup or delete it to start a new deployment",
                b.len()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            rand::fill(&mut secret);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path).map_err(|e| err(e.to_string()))?;
            file.write_all(&secret)
                .and_then(|()| file.sync_all())
                .map_err(|e| err(e.to_string()))?;
            Ok(secret)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// A secret given in a file: 32 bytes as they are, or written as 64 hex digits (with or
/// without a final newline), as `openssl rand -hex 32` writes one.
fn load_given(path: &Path) -> Result<[u8; 32], StoreError> {
    let err = |message: String| StoreError::Secret {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| {
        err(format!(
            "{e} (store.secret_file names it; give a file of 32 bytes or 64 hex digits)"
        ))
    })?;
    let hex_digits = std::str::from_utf8(&bytes)
        .ok()
        .map(str::trim)
        .filter(|t| t.len() == 64)
        .and_then(|t| hex::decode(t).ok());
    hex_digits
        .unwrap_or(bytes)
        .try_into()
        .map_err(|b: Vec<u8>| {
            err(format!(
                "holds {} bytes, expected 32 bytes or 64 hex digits (make one with `openssl rand -hex 32`)",
                b.len()
            ))
        })
}

/// The keyed pseudonym of an address: `ip:` and 32 hex digits of HMAC-SHA256(key, address).
/// Stable for one deployment, so grouping still works once the address is gone.
pub fn pseudonym(key: &[u8; 32], ip: &str) -> String {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(ip.as_bytes());
    format!("ip:{}", hex::encode(&mac.finalize().into_bytes()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), None).unwrap();
        let b = load_or_create(dir.path(), None).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn truncated_secret_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), [1u8; 5]).unwrap();
        let err = load_or_create(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("expected 32"), "{err}");
    }

    #[test]
    fn a_given_secret_is_read_raw_or_as_hex_and_never_made() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [7u8; 32]).unwrap();
        assert_eq!(load_or_create(dir.path(), Some(&raw)).unwrap(), [7u8; 32]);
        let text = dir.path().join("hex");
        std::fs::write(&text, format!("{}\n", "0a".repeat(32))).unwrap();
        assert_eq!(load_or_create(dir.path(), Some(&text)).unwrap(), [10u8; 32]);
        let missing = dir.path().join("missing");
        let err = load_or_create(dir.path(), Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.secret_file"), "{err}");
        assert!(
            !missing.exists() && !dir.path().join(FILE).exists(),
            "nothing is made"
        );
        std::fs::write(&text, "abc").unwrap();
        let err = load_or_create(dir.path(), Some(&text))
            .unwrap_err()
            .to_string();
        assert!(err.contains("openssl rand -hex 32"), "{err}");
    }
}
