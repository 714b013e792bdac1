//! One module per group of subcommands.
pub mod data;
pub mod gan;
pub mod judge;
pub mod map;
pub mod reproduce;
