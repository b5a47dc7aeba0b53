//! Detection.

pub mod alert;
