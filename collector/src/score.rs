//! Risk scores (placeholder until the scoring module lands: same API and formula as docs/scoring.md).

use callhome_shared::rules::Severity;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreItem {
    pub host: Option<Uuid>,
    pub rule: String,
    pub subject: String,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub host: Option<Uuid>,
    pub rule: String,
    pub subject: String,
    pub severity: Severity,
    pub share: f64,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub value: f64,
    pub contributions: Vec<Contribution>,
}

fn mass(s: Severity) -> f64 {
    let w = match s {
        Severity::Critical => 0.5,
        Severity::High => 0.25,
        Severity::Medium => 0.1,
        Severity::Low => 0.03,
        Severity::Info => 0.0,
    };
    -(1.0_f64 - w).ln()
}

fn finish(parts: Vec<(&ScoreItem, f64)>) -> Score {
    let total: f64 = parts.iter().map(|(_, m)| m).sum();
    let value = (100.0 * (1.0 - (-total).exp()) * 10.0).round() / 10.0;
    let mut contributions: Vec<Contribution> = parts
        .into_iter()
        .filter(|(_, m)| *m > 0.0)
        .map(|(i, m)| Contribution {
            host: i.host,
            rule: i.rule.clone(),
            subject: i.subject.clone(),
            severity: i.severity,
            share: m / total,
            points: value * m / total,
        })
        .collect();
    contributions.sort_by(|a, b| b.share.total_cmp(&a.share));
    Score { value, contributions }
}

pub fn score_host(items: &[ScoreItem]) -> Score {
    finish(items.iter().map(|i| (i, mass(i.severity))).collect())
}

pub fn score_fleet(hosts: &[Uuid], items: &[ScoreItem]) -> Score {
    let n = hosts.len().max(1) as f64;
    let mut worst: Option<(f64, Uuid)> = None;
    for h in hosts {
        let m: f64 = items
            .iter()
            .filter(|i| i.host == Some(*h))
            .map(|i| mass(i.severity))
            .sum();
        if worst.is_none_or(|(wm, wh)| m > wm || (m == wm && *h < wh)) {
            worst = Some((m, *h));
        }
    }
    let worst_host = worst.map(|(_, h)| h);
    finish(
        items
            .iter()
            .map(|i| {
                let m = mass(i.severity);
                let part = match i.host {
                    None => m,
                    Some(h) => 0.4 * m / n + if Some(h) == worst_host { 0.6 * m } else { 0.0 },
                };
                (i, part)
            })
            .collect(),
    )
}
