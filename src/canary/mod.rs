//! Canary faces: who they are (identity), how each page view differs (variant), how they are
//! drawn (render), marked (marks), hashed (hash), minted as tokens (mint) and traced back
//! from a found image (index, matcher).
//!
//! Images are never stored: a token's seeds re-render its image exactly, which is what lets
//! `match` verify a candidate and the evidence bundle reproduce what a harvester took.

pub mod align;
pub mod eval;
mod features;
mod hair;
pub mod hash;
pub mod identity;
pub mod index;
pub mod marks;
pub mod matcher;
pub mod mint;
mod palette;
pub mod render;
pub mod seal;
mod texture;
pub mod variant;

/// Tokens are the store's rows' keys; minted here, defined there.
pub use crate::store::token::{self, Token};
pub use identity::Identity;
pub use variant::Variant;
