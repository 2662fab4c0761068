//! Contracts and the effective tier of an org (SPEC §2, §3).
//!
//! An org is served at the *lowest* tier among its active contracts: CSS benefits need the same tier on
//! every product line, so a customer on Priority Plus for one line and Select for another gets Select.
//! No active contract means the org is lapsed and its agents are refused. Pure logic: no I/O here.

use std::fmt;
use std::str::FromStr;

use time::{Date, Duration, Month};

/// CSS support tiers, ordered from lowest to highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Select,
    Priority,
    PriorityPlus,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Select => "select",
            Tier::Priority => "priority",
            Tier::PriorityPlus => "priority-plus",
        }
    }
}

impl Tier {
    /// Best response target for a severity-1 case (SPEC §3): the deadline of a queue entry.
    pub fn severity1_response(self) -> Duration {
        match self {
            Tier::Select => Duration::minutes(30),
            Tier::Priority => Duration::minutes(15),
            Tier::PriorityPlus => Duration::minutes(10),
        }
    }

    /// Restoration commitment for a severity-1 case (non-platform); Select has none.
    pub fn severity1_restoration(self) -> Option<Duration> {
        match self {
            Tier::Select => None,
            Tier::Priority => Some(Duration::hours(6)),
            Tier::PriorityPlus => Some(Duration::hours(4)),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "select" => Ok(Tier::Select),
            "priority" => Ok(Tier::Priority),
            "priority-plus" | "priority_plus" | "priorityplus" => Ok(Tier::PriorityPlus),
            _ => Err(format!(
                "unknown tier `{s}`: expected select, priority or priority-plus"
            )),
        }
    }
}

/// The dates of one contract; both days are included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractTerm {
    pub tier: Tier,
    pub start: Date,
    pub end: Date,
}

impl ContractTerm {
    pub fn is_active(&self, today: Date) -> bool {
        self.start <= today && today <= self.end
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("contract end {end} is not after its start {start}")]
    EndNotAfterStart { start: Date, end: Date },
    #[error("contract from {start} to {end} is shorter than 1 year (CSS contracts run 1 to 5 years)")]
    TooShort { start: Date, end: Date },
    #[error("contract from {start} to {end} is longer than 5 years (CSS contracts run 1 to 5 years)")]
    TooLong { start: Date, end: Date },
}

/// Checks a contract's dates: the end after the start, and a term of 1 to 5 years. The end day is
/// included, and a day of slack either way accepts both `2026-01-01..2026-12-31` and
/// `2026-01-01..2027-01-01` as one year.
pub fn validate_contract(start: Date, end: Date) -> Result<(), ContractError> {
    if end <= start {
        return Err(ContractError::EndNotAfterStart { start, end });
    }
    let day = Duration::days(1);
    // The day after the last covered day, compared with the anniversaries of the start.
    let after_end = end.saturating_add(day);
    if after_end < add_years(start, 1).saturating_sub(day) {
        return Err(ContractError::TooShort { start, end });
    }
    if after_end > add_years(start, 5).saturating_add(day) {
        return Err(ContractError::TooLong { start, end });
    }
    Ok(())
}

/// The lowest tier among the contracts active on `today`; `None` when none is: the org is lapsed.
pub fn effective_tier<'a>(
    contracts: impl IntoIterator<Item = &'a ContractTerm>,
    today: Date,
) -> Option<Tier> {
    contracts
        .into_iter()
        .filter(|c| c.is_active(today))
        .map(|c| c.tier)
        .min()
}

/// The same day `years` later; 29 February becomes 28 February in a common year.
fn add_years(date: Date, years: i32) -> Date {
    let year = date.year() + years;
    Date::from_calendar_date(year, date.month(), date.day())
        .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
        .unwrap_or(Date::MAX)
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &format).map_err(|e| format!("invalid date `{s}` (expected YYYY-MM-DD): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn c(tier: Tier, start: Date, end: Date) -> ContractTerm {
        ContractTerm { tier, start, end }
    }

    #[test]
    fn tiers_are_ordered_and_parse() {
        assert!(Tier::Select < Tier::Priority && Tier::Priority < Tier::PriorityPlus);
        for t in [Tier::Select, Tier::Priority, Tier::PriorityPlus] {
            assert_eq!(t.as_str().parse::<Tier>(), Ok(t));
        }
        assert!("gold".parse::<Tier>().unwrap_err().contains("priority-plus"));
    }

    #[test]
    fn contract_dates_are_validated() {
        assert_eq!(
            validate_contract(date!(2026 - 01 - 01), date!(2027 - 12 - 31)),
            Ok(())
        );
        assert_eq!(
            validate_contract(date!(2026 - 01 - 01), date!(2026 - 12 - 31)),
            Ok(())
        );
        assert_eq!(
            validate_contract(date!(2026 - 01 - 01), date!(2027 - 01 - 01)),
            Ok(())
        );
        assert_eq!(
            validate_contract(date!(2026 - 01 - 01), date!(2030 - 12 - 31)),
            Ok(())
        );
        assert_eq!(
            validate_contract(date!(2026 - 01 - 01), date!(2031 - 01 - 01)),
            Ok(())
        );
        assert_eq!(
            validate_contract(date!(2024 - 02 - 29), date!(2025 - 02 - 28)),
            Ok(())
        );
        assert!(matches!(
            validate_contract(date!(2027 - 01 - 01), date!(2026 - 01 - 01)),
            Err(ContractError::EndNotAfterStart { .. })
        ));
        assert!(matches!(
            validate_contract(date!(2026 - 01 - 01), date!(2026 - 01 - 01)),
            Err(ContractError::EndNotAfterStart { .. })
        ));
        assert!(matches!(
            validate_contract(date!(2026 - 01 - 01), date!(2026 - 06 - 30)),
            Err(ContractError::TooShort { .. })
        ));
        assert!(matches!(
            validate_contract(date!(2026 - 01 - 01), date!(2031 - 06 - 30)),
            Err(ContractError::TooLong { .. })
        ));
    }

    #[test]
    fn active_includes_both_ends() {
        let k = c(Tier::Select, date!(2026 - 01 - 01), date!(2026 - 12 - 31));
        assert!(k.is_active(date!(2026 - 01 - 01)));
        assert!(k.is_active(date!(2026 - 12 - 31)));
        assert!(!k.is_active(date!(2025 - 12 - 31)));
        assert!(!k.is_active(date!(2027 - 01 - 01)));
    }

    #[test]
    fn lowest_active_tier_wins_across_product_lines() {
        let today = date!(2026 - 06 - 01);
        let contracts = [
            c(Tier::PriorityPlus, date!(2026 - 01 - 01), date!(2027 - 12 - 31)),
            c(Tier::Priority, date!(2025 - 01 - 01), date!(2027 - 12 - 31)),
        ];
        assert_eq!(effective_tier(&contracts, today), Some(Tier::Priority));
    }

    #[test]
    fn expired_contract_does_not_count() {
        let today = date!(2026 - 06 - 01);
        let contracts = [
            c(Tier::PriorityPlus, date!(2026 - 01 - 01), date!(2027 - 12 - 31)),
            c(Tier::Select, date!(2024 - 01 - 01), date!(2025 - 12 - 31)),
        ];
        assert_eq!(effective_tier(&contracts, today), Some(Tier::PriorityPlus));
    }

    #[test]
    fn all_expired_is_lapsed() {
        let today = date!(2026 - 06 - 01);
        let contracts = [
            c(Tier::PriorityPlus, date!(2023 - 01 - 01), date!(2024 - 12 - 31)),
            c(Tier::Select, date!(2024 - 01 - 01), date!(2025 - 12 - 31)),
        ];
        assert_eq!(effective_tier(&contracts, today), None);
        assert_eq!(effective_tier(&[], today), None);
    }

    #[test]
    fn future_contract_is_not_yet_active() {
        let contracts = [c(Tier::Priority, date!(2026 - 07 - 01), date!(2027 - 06 - 30))];
        assert_eq!(effective_tier(&contracts, date!(2026 - 06 - 30)), None);
        assert_eq!(
            effective_tier(&contracts, date!(2026 - 07 - 01)),
            Some(Tier::Priority)
        );
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(parse_date("2026-01-01"), Ok(date!(2026 - 01 - 01)));
        assert!(parse_date("2026-13-01").is_err());
        assert!(parse_date("01/01/2026").unwrap_err().contains("YYYY-MM-DD"));
    }
}
