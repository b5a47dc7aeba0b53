//! Evidence: the signed bundle a data-protection authority can read and check without
//! faceprobe (`evidence build`, `evidence verify`).
//!
//! It reads the store (events, the chain, checkpoints, tokens, flags) and writes only cases,
//! holds and the record of each build. It never discloses another visitor: their events enter
//! a bundle as 32-byte digests, nothing else of theirs.

pub mod bundle;
pub mod case;
pub mod events;
pub mod files;
pub mod found;
pub mod report;
pub mod robots;
pub mod segment;
pub mod verify;

use std::path::PathBuf;

/// Why a bundle could not be built or read; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("no client or cluster {0:?} in the store; `faceprobe clients` lists them")]
    UnknownActor(String),
    #[error("{0}")]
    NoEvents(String),
    #[error("{0} exists; remove it or give another --out")]
    Exists(PathBuf),
    #[error("found image: {0}")]
    Found(String),
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Bundle(String),
    #[error("report: {0}")]
    Report(String),
    #[error(transparent)]
    Key(#[from] crate::store::signing::KeyError),
    #[error("cannot write: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<crate::store::StoreError> for EvidenceError {
    fn from(e: crate::store::StoreError) -> EvidenceError {
        EvidenceError::Store(e.to_string())
    }
}

impl From<rusqlite::Error> for EvidenceError {
    fn from(e: rusqlite::Error) -> EvidenceError {
        EvidenceError::Store(format!("database error: {e}"))
    }
}

impl From<report::ReportError> for EvidenceError {
    fn from(e: report::ReportError) -> EvidenceError {
        EvidenceError::Report(e.to_string())
    }
}

/// One CSV field (RFC 4180), with a value a client controlled kept from being read as a
/// spreadsheet formula (a leading `=`, `+`, `-` or `@` gets a `'`).
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("/a.jpg"), "/a.jpg");
        assert_eq!(csv_field("/a,b"), "\"/a,b\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-x"), "'-x");
    }
}
