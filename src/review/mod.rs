//! The review dashboard on the admin listener: operators see what was flagged, confirm or
//! dismiss it, match found images and export cases, in the browser. It reads the store and
//! writes only reviews, cases, found images and the allow-list; it never touches the request
//! path. (So far: access control, `access`.)

pub mod access;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the dashboard could not start; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(
        "serve.admin_listen = {0} is not a loopback address and no admin token is given: set \
         the environment variable {env}, or [review] token_file = \"PATH\" (the token on its \
         first line), or keep admin_listen on 127.0.0.1",
        env = access::TOKEN_ENV
    )]
    NoToken(SocketAddr),
    #[error("the admin token is too short: use 16 characters or more")]
    ShortToken,
    #[error("admin token file {path}: {message}")]
    TokenFile { path: PathBuf, message: String },
}
