//! Host rules: one area per file, every rule registered in [`HOST_RULES`], in catalog order.

use super::HostRule;

mod time;

/// Every host rule, grouped by area. The order is the catalog's order (docs, `rules list`).
pub static HOST_RULES: &[HostRule] = &[time::SKEW_OVER_KERBEROS];
