//! One file per command.

pub mod clients;
pub mod config;
pub mod db;
pub mod evidence;
pub mod fleet;
pub mod key;
pub mod matching;
pub mod render;
pub mod serve;
