//! Risk scores (0 to 100) for a host, an environment and an org, from their open, unsuppressed
//! findings. The formula and why it has the properties the product needs are in `docs/scoring.md`;
//! the property tests below check them.
//!
//! In short: each finding carries a risk mass `-ln(1 - w)` (`w` its severity's weight), masses add up
//! per host, a scope's mass mixes its worst host with the mean over all its hosts (breadth) plus its
//! environment-level findings, and the score is `100 * (1 - exp(-mass))`.

use std::collections::{BTreeMap, BTreeSet};

use callhome_shared::rules::Severity;
use serde::Serialize;
use uuid::Uuid;

/// How much of the scope's mass follows its worst host; the rest follows the mean over all hosts.
const WORST_SHARE: f64 = 0.6;
const MEAN_SHARE: f64 = 1.0 - WORST_SHARE;

/// One open, unsuppressed finding as the score sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreItem {
    /// `None`: an environment-level finding (fleet rules such as mixed VDA versions).
    pub host: Option<Uuid>,
    pub rule: String,
    pub subject: String,
    pub severity: Severity,
}

/// What one finding adds to a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub host: Option<Uuid>,
    pub rule: String,
    pub subject: String,
    pub severity: Severity,
    /// Fraction of the score's risk mass; all shares of a score sum to 1.
    pub share: f64,
    /// `share * value`: the score points this finding accounts for.
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// 0 (no known risk) to 100, rounded to 0.1; never rounded down to 0 while there is risk.
    pub value: f64,
    /// Every finding with a positive weight, largest share first. Empty when `value` is 0.
    pub contributions: Vec<Contribution>,
}

impl Score {
    fn zero() -> Score {
        Score {
            value: 0.0,
            contributions: Vec::new(),
        }
    }
}

/// The probability-like weight of one finding of this severity (see `docs/scoring.md`).
pub fn severity_weight(severity: Severity) -> f64 {
    match severity {
        Severity::Critical => 0.5,
        Severity::High => 0.25,
        Severity::Medium => 0.1,
        Severity::Low => 0.03,
        Severity::Info => 0.0,
    }
}

/// A finding's risk mass `-ln(1 - w)`: masses add where weights would compound.
pub fn risk_mass(severity: Severity) -> f64 {
    -(-severity_weight(severity)).ln_1p()
}

/// `100 * (1 - exp(-mass))`, rounded to 0.1, but at least 0.1 for any positive mass so that 0 keeps
/// meaning "no known risk". Both steps are non-decreasing, so monotonicity survives the rounding.
fn value_of(mass: f64) -> f64 {
    if mass <= 0.0 {
        return 0.0;
    }
    let raw = -100.0 * (-mass).exp_m1();
    ((raw * 10.0).round() / 10.0).clamp(0.1, 100.0)
}

/// One host's score: every item counts as this host's (the caller passes the host's findings).
pub fn score_host(items: &[ScoreItem]) -> Score {
    let mass: f64 = items.iter().map(|i| risk_mass(i.severity)).sum();
    if mass <= 0.0 {
        return Score::zero();
    }
    let value = value_of(mass);
    let contributions = items
        .iter()
        .filter(|i| risk_mass(i.severity) > 0.0)
        .map(|i| contribution(i, risk_mass(i.severity) / mass, value))
        .collect();
    finish(value, contributions)
}

/// An environment or an org: `hosts` lists every host counted (also those with no finding: breadth),
/// `items` the open, unsuppressed findings of those hosts (host Some) and of the scope (host None).
/// Items of a host not in `hosts` are ignored: the caller's scope decides which hosts count.
pub fn score_fleet(hosts: &[Uuid], items: &[ScoreItem]) -> Score {
    let masses = fleet_masses(hosts, items);
    if masses.total <= 0.0 {
        return Score::zero();
    }
    let value = value_of(masses.total);
    let n = masses.hosts as f64;
    let contributions = items
        .iter()
        .filter_map(|item| {
            let l = risk_mass(item.severity);
            if l <= 0.0 {
                return None;
            }
            let part = match item.host {
                None => l,
                Some(h) if masses.per_host.contains_key(&h) => {
                    let worst = if masses.worst == Some(h) {
                        WORST_SHARE * l
                    } else {
                        0.0
                    };
                    MEAN_SHARE * l / n + worst
                }
                Some(_) => return None,
            };
            Some(contribution(item, part / masses.total, value))
        })
        .collect();
    finish(value, contributions)
}

/// The masses a fleet score is made of.
#[derive(Debug)]
struct FleetMasses {
    /// Mass of each listed host (0 for hosts without a finding).
    per_host: BTreeMap<Uuid, f64>,
    /// Number of distinct listed hosts.
    hosts: usize,
    /// The host with the largest mass, the smallest id among equals; `None` without hosts.
    worst: Option<Uuid>,
    /// `0.6 * max + 0.4 * mean + env`: the scope's mass.
    total: f64,
}

fn fleet_masses(hosts: &[Uuid], items: &[ScoreItem]) -> FleetMasses {
    let listed: BTreeSet<Uuid> = hosts.iter().copied().collect();
    let mut per_host: BTreeMap<Uuid, f64> = listed.iter().map(|h| (*h, 0.0)).collect();
    let mut env = 0.0;
    for item in items {
        let l = risk_mass(item.severity);
        match item.host {
            None => env += l,
            Some(h) => {
                if let Some(m) = per_host.get_mut(&h) {
                    *m += l;
                }
            }
        }
    }
    // Ascending ids: a strict `>` keeps the smallest id among equal masses.
    let mut worst: Option<(Uuid, f64)> = None;
    for (h, m) in &per_host {
        if worst.is_none_or(|(_, w)| *m > w) {
            worst = Some((*h, *m));
        }
    }
    let n = per_host.len();
    let host_part = match worst {
        Some((_, max)) => {
            let mean = per_host.values().sum::<f64>() / n as f64;
            WORST_SHARE * max + MEAN_SHARE * mean
        }
        None => 0.0,
    };
    FleetMasses {
        total: host_part + env,
        worst: worst.map(|(h, _)| h),
        hosts: n,
        per_host,
    }
}

fn contribution(item: &ScoreItem, share: f64, value: f64) -> Contribution {
    Contribution {
        host: item.host,
        rule: item.rule.clone(),
        subject: item.subject.clone(),
        severity: item.severity,
        share,
        points: share * value,
    }
}

/// Largest share first; then most severe, rule, subject, host, so that the order is deterministic.
fn finish(value: f64, mut contributions: Vec<Contribution>) -> Score {
    contributions.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| b.severity.cmp(&a.severity))
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.host.cmp(&b.host))
    });
    Score { value, contributions }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn host(n: u128) -> Uuid {
        Uuid::from_u128(0x0193_4a2b_0000_7000_8000_0000_0000_0000 + n)
    }

    fn item(host_n: Option<u128>, rule: &str, subject: &str, severity: Severity) -> ScoreItem {
        ScoreItem {
            host: host_n.map(host),
            rule: rule.to_owned(),
            subject: subject.to_owned(),
            severity,
        }
    }

    fn approx(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn shares_sum_to_one(s: &Score) {
        if s.value > 0.0 {
            let sum: f64 = s.contributions.iter().map(|c| c.share).sum();
            assert!(approx(sum, 1.0), "shares sum to {sum}: {s:#?}");
            let points: f64 = s.contributions.iter().map(|c| c.points).sum();
            assert!(
                (points - s.value).abs() < 1e-6,
                "points {points} vs value {}",
                s.value
            );
            assert!(s.contributions.iter().all(|c| c.share >= 0.0));
            assert!(s.contributions.windows(2).all(|w| w[0].share >= w[1].share));
        } else {
            assert!(s.contributions.is_empty());
        }
    }

    /// Every item with a positive weight (of a listed host, or env-level) appears in the contributions.
    fn explains(s: &Score, hosts: Option<&[Uuid]>, items: &[ScoreItem]) {
        let key = |h: Option<Uuid>, r: &str, sub: &str, sev: Severity| (h, r.to_owned(), sub.to_owned(), sev);
        let mut expected: Vec<_> = items
            .iter()
            .filter(|i| severity_weight(i.severity) > 0.0)
            .filter(|i| match (hosts, i.host) {
                (Some(hs), Some(h)) => hs.contains(&h),
                _ => true,
            })
            .map(|i| key(i.host, &i.rule, &i.subject, i.severity))
            .collect();
        let mut got: Vec<_> = s
            .contributions
            .iter()
            .map(|c| key(c.host, &c.rule, &c.subject, c.severity))
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn no_finding_is_zero_and_info_weighs_nothing() {
        assert_eq!(score_host(&[]), Score::zero());
        assert_eq!(
            score_host(&[item(Some(1), "X-Y-001", "", Severity::Info)]),
            Score::zero()
        );
        assert_eq!(score_fleet(&[host(1), host(2)], &[]), Score::zero());
        assert_eq!(score_fleet(&[], &[]), Score::zero());
    }

    #[test]
    fn one_finding_scores_its_weight() {
        for (sev, want) in [
            (Severity::Critical, 50.0),
            (Severity::High, 25.0),
            (Severity::Medium, 10.0),
            (Severity::Low, 3.0),
        ] {
            let s = score_host(&[item(Some(1), "X-Y-001", "", sev)]);
            assert_eq!(s.value, want, "{sev}");
            assert_eq!(s.contributions.len(), 1);
            assert!(approx(s.contributions[0].share, 1.0));
        }
        // Two criticals compound like independent chances: 1 - 0.5 * 0.5.
        let two = [
            item(Some(1), "A-B-001", "", Severity::Critical),
            item(Some(1), "A-B-002", "", Severity::Critical),
        ];
        assert_eq!(score_host(&two).value, 75.0);
    }

    #[test]
    fn a_tiny_risk_never_rounds_to_zero() {
        assert_eq!(value_of(1e-6), 0.1);
        assert_eq!(value_of(0.0), 0.0);
        assert_eq!(value_of(1e3), 100.0);
        // The smallest fleet score there is: one low on one host of many still shows its worst host.
        let hosts: Vec<Uuid> = (0..1000).map(host).collect();
        let s = score_fleet(&hosts, &[item(Some(7), "X-Y-001", "", Severity::Low)]);
        assert_eq!(s.value, 1.8);
        shares_sum_to_one(&s);
    }

    #[test]
    fn items_of_unlisted_hosts_are_ignored() {
        let s = score_fleet(&[host(1)], &[item(Some(2), "X-Y-001", "", Severity::Critical)]);
        assert_eq!(s, Score::zero());
    }

    #[test]
    fn worst_host_ties_go_to_the_smallest_id() {
        let items = [
            item(Some(2), "X-Y-001", "", Severity::High),
            item(Some(1), "X-Y-001", "", Severity::High),
        ];
        let s = score_fleet(&[host(2), host(1)], &items);
        let first = &s.contributions[0];
        assert_eq!(first.host, Some(host(1)));
        assert!(approx(first.share, (0.6 + 0.2) / 1.0));
    }

    /// The worked example of `docs/scoring.md`: environment `prod-eu` with three hosts.
    /// vda01: ctxvda down (critical), /var 7 % free (high).
    /// vda02: clock unsynchronised (medium), pending security updates (low).
    /// vda03: stale (FLEET-STALE-001, high).
    /// environment: mixed VDA versions (medium).
    /// The org adds environment `dr` with one healthy host, vda11.
    fn fixture() -> (Vec<Uuid>, Vec<ScoreItem>) {
        let hosts = vec![host(1), host(2), host(3)];
        let items = vec![
            item(Some(1), "VDA-SVC-001", "ctxvda", Severity::Critical),
            item(Some(1), "DISK-FREE-001", "/var", Severity::High),
            item(Some(2), "TIME-SYNC-002", "", Severity::Medium),
            item(Some(2), "PKG-SEC-001", "", Severity::Low),
            item(Some(3), "FLEET-STALE-001", "", Severity::High),
            item(None, "FLEET-VERSION-001", "", Severity::Medium),
        ];
        (hosts, items)
    }

    #[test]
    fn golden_scores_of_the_fixture_environment() {
        let (hosts, items) = fixture();
        let of =
            |h: Uuid| -> Vec<ScoreItem> { items.iter().filter(|i| i.host == Some(h)).cloned().collect() };
        assert_eq!(score_host(&of(host(1))).value, 62.5);
        assert_eq!(score_host(&of(host(2))).value, 12.7);
        assert_eq!(score_host(&of(host(3))).value, 25.0);

        let env = score_fleet(&hosts, &items);
        assert_eq!(env.value, 58.6);
        let top: Vec<(&str, f64)> = env
            .contributions
            .iter()
            .map(|c| (c.rule.as_str(), (c.share * 1000.0).round() / 1000.0))
            .collect();
        assert_eq!(
            top,
            [
                ("VDA-SVC-001", 0.577),
                ("DISK-FREE-001", 0.239),
                ("FLEET-VERSION-001", 0.120),
                ("FLEET-STALE-001", 0.044),
                ("TIME-SYNC-002", 0.016),
                ("PKG-SEC-001", 0.005),
            ]
        );
        shares_sum_to_one(&env);

        let mut org_hosts = hosts.clone();
        org_hosts.push(host(11));
        let org = score_fleet(&org_hosts, &items);
        assert_eq!(org.value, 56.6);
        shares_sum_to_one(&org);
    }

    fn severity() -> impl Strategy<Value = Severity> {
        prop_oneof![
            Just(Severity::Critical),
            Just(Severity::High),
            Just(Severity::Medium),
            Just(Severity::Low),
            Just(Severity::Info),
        ]
    }

    /// A scope of 1 to 8 hosts and up to 24 findings, on its hosts or the environment (`None`).
    fn scope() -> impl Strategy<Value = (Vec<Uuid>, Vec<ScoreItem>)> {
        (1u128..=8).prop_flat_map(|n| {
            let finding = (proptest::option::weighted(0.85, 0..n), 0u8..6, severity())
                .prop_map(|(h, r, sev)| item(h, &format!("AREA-TOPIC-{r:03}"), &format!("s{r}"), sev));
            (
                Just((0..n).map(host).collect()),
                proptest::collection::vec(finding, 0..24),
            )
        })
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn bounded((hosts, items) in scope()) {
            for s in [score_host(&items), score_fleet(&hosts, &items)] {
                prop_assert!((0.0..=100.0).contains(&s.value), "{}", s.value);
            }
        }

        #[test]
        fn monotone((hosts, items) in scope(), extra_host in proptest::option::of(0u128..8), sev in severity()) {
            let extra_host = extra_host.filter(|h| *h < hosts.len() as u128);
            let mut more = items.clone();
            more.push(item(extra_host, "NEW-FINDING-001", "x", sev));
            prop_assert!(score_host(&more).value >= score_host(&items).value);
            prop_assert!(score_fleet(&hosts, &more).value >= score_fleet(&hosts, &items).value);
            // The unrounded mass grows strictly with any finding of positive weight.
            if severity_weight(sev) > 0.0 {
                prop_assert!(fleet_masses(&hosts, &more).total > fleet_masses(&hosts, &items).total);
            }
        }

        #[test]
        fn shares_are_complete_and_explain_the_score((hosts, items) in scope()) {
            let h = score_host(&items);
            shares_sum_to_one(&h);
            explains(&h, None, &items);
            let f = score_fleet(&hosts, &items);
            shares_sum_to_one(&f);
            explains(&f, Some(&hosts), &items);
        }

        #[test]
        fn breadth_raises_the_fleet_score((hosts, items) in scope(), sev in severity(), k in 1usize..8) {
            prop_assume!(severity_weight(sev) > 0.0 && k < hosts.len());
            let spread = |on: usize| -> Vec<ScoreItem> {
                let mut all = items.clone();
                all.extend((0..on).map(|i| item(Some(i as u128), "SAME-RULE-001", "", sev)));
                all
            };
            let (fewer, more) = (spread(k), spread(k + 1));
            prop_assert!(fleet_masses(&hosts, &more).total > fleet_masses(&hosts, &fewer).total);
            prop_assert!(score_fleet(&hosts, &more).value >= score_fleet(&hosts, &fewer).value);
        }

        /// The worst case dominates: one critical on one host outranks any number of hosts with one
        /// low each, whatever the size of the environment.
        #[test]
        fn one_critical_outranks_many_single_lows(n in 1u128..500, m in 1u128..500) {
            let m = m.min(n);
            let hosts: Vec<Uuid> = (0..n).map(host).collect();
            let critical = score_fleet(&hosts, &[item(Some(n - 1), "VDA-SVC-001", "ctxvda", Severity::Critical)]);
            let lows: Vec<ScoreItem> = (0..m).map(|i| item(Some(i), "PKG-SEC-001", "", Severity::Low)).collect();
            prop_assert!(critical.value > score_fleet(&hosts, &lows).value);
        }
    }

    #[test]
    fn breadth_shows_in_the_rounded_value_at_realistic_sizes() {
        let hosts: Vec<Uuid> = (0..10).map(host).collect();
        let on = |k: u128| -> Vec<ScoreItem> {
            (0..k)
                .map(|i| item(Some(i), "DISK-FREE-001", "/", Severity::High))
                .collect()
        };
        let values: Vec<f64> = (1..=10).map(|k| score_fleet(&hosts, &on(k)).value).collect();
        assert!(values.windows(2).all(|w| w[1] > w[0]), "{values:?}");
    }
}
