//! Build-time helpers shared by the `xtask` binary and its tests.

pub mod keys;
