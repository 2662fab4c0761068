//! What the org, host and report pages share: store errors as page answers, severities and tiers as
//! shown, score changes as arrows, and JSON (evidence, snapshot sections) as readable fields and
//! tables rather than raw text.

use std::collections::BTreeMap;

use callhome_shared::rules::Severity;
use serde_json::Value;

use crate::diff::{Change, ChangeKind};
use crate::http::AppError;
use crate::store::StoreError;

/// An unknown org, host or snapshot is the very 404 another org's gets.
pub fn store_error(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound(_) => AppError::NotFound,
        other => other.into(),
    }
}

pub fn tier_label(tier: Option<&str>) -> &'static str {
    match tier {
        Some("priority-plus") => "Priority Plus",
        Some("priority") => "Priority",
        Some("select") => "Select",
        Some(_) => "Other",
        None => "No active contract",
    }
}

pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "High",
        Severity::Medium => "Medium",
        Severity::Low => "Low",
        Severity::Info => "Info",
    }
}

/// A score as shown: one decimal, or a dash when there is none.
pub fn score_text(score: Option<f64>) -> String {
    score.map_or_else(|| "–".to_owned(), |s| format!("{s:.1}"))
}

/// A change of risk score over a period. A higher score is more risk: up is bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// `▲ 4.2`, `▼ 1.0`, `= 0`, or `–` when unknown.
    pub text: String,
    /// `worse`, `better`, `same` or `unknown`, for the colour.
    pub class: &'static str,
    pub label: String,
}

impl Delta {
    pub fn new(change: Option<f64>, days: u32) -> Delta {
        match change {
            Some(c) if c > 0.05 => Delta {
                text: format!("▲ {c:.1}"),
                class: "worse",
                label: format!("risk up {c:.1} in {days} days"),
            },
            Some(c) if c < -0.05 => Delta {
                text: format!("▼ {:.1}", -c),
                class: "better",
                label: format!("risk down {:.1} in {days} days", -c),
            },
            Some(_) => Delta {
                text: "= 0".to_owned(),
                class: "same",
                label: format!("no change in {days} days"),
            },
            None => Delta {
                text: "–".to_owned(),
                class: "unknown",
                label: format!("no score {days} days ago"),
            },
        }
    }
}

/// A JSON value in one line: strings bare, scalars as written, structures as compact JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.iter().all(is_scalar) => {
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// A finding's evidence as key/value pairs, in key order.
pub fn evidence_fields(evidence: &Value) -> Vec<(String, String)> {
    match evidence {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), value_text(v))).collect(),
        Value::Null => Vec::new(),
        other => vec![("value".to_owned(), value_text(other))],
    }
}

/// A part of a section as shown: key/value fields, or a table of like objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Fields(Vec<(String, String)>),
    Table {
        title: String,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// A snapshot section as shown: its blocks, and the JSON as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionView {
    pub name: String,
    pub blocks: Vec<Block>,
    pub raw: String,
}

/// Turns a section's JSON into blocks: nested objects are flattened into dotted keys, lists of
/// objects (units, mounts, certificates) become tables with one column per key.
pub fn section_view(name: &str, value: &Value) -> SectionView {
    let mut fields = Vec::new();
    let mut tables = Vec::new();
    flatten("", value, &mut fields, &mut tables);
    let mut blocks = Vec::new();
    if !fields.is_empty() {
        blocks.push(Block::Fields(fields));
    }
    blocks.extend(tables);
    SectionView {
        name: name.to_owned(),
        blocks,
        raw: serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()),
    }
}

fn flatten(prefix: &str, value: &Value, fields: &mut Vec<(String, String)>, tables: &mut Vec<Block>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&key(k), v, fields, tables);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            tables.push(table(prefix, items));
        }
        other => fields.push((
            if prefix.is_empty() {
                "value".to_owned()
            } else {
                prefix.to_owned()
            },
            value_text(other),
        )),
    }
}

fn table(title: &str, items: &[Value]) -> Block {
    let mut columns: Vec<String> = Vec::new();
    for item in items {
        if let Value::Object(map) = item {
            for k in map.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let rows = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| item.get(c).map_or_else(String::new, value_text))
                .collect()
        })
        .collect();
    Block::Table {
        title: title.to_owned(),
        columns,
        rows,
    }
}

/// A change of a diff as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    pub section: &'static str,
    pub item: String,
    pub field: &'static str,
    pub kind: &'static str,
    pub before: String,
    pub after: String,
}

pub fn change_rows(changes: &[Change]) -> Vec<ChangeRow> {
    changes
        .iter()
        .map(|c| ChangeRow {
            section: c.section,
            item: c.item.clone(),
            field: c.field,
            kind: match c.kind {
                ChangeKind::Added => "added",
                ChangeKind::Removed => "removed",
                ChangeKind::Changed => "changed",
            },
            before: c.before.clone().unwrap_or_else(|| "–".to_owned()),
            after: c.after.clone().unwrap_or_else(|| "–".to_owned()),
        })
        .collect()
}

/// Counts by severity, worst first, with every severity present (zeros included).
pub fn severity_counts<'a>(severities: impl Iterator<Item = &'a Severity>) -> Vec<(&'static str, usize)> {
    let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
    for s in severities {
        *counts.entry(*s).or_default() += 1;
    }
    [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ]
    .into_iter()
    .map(|s| (severity_label(s), counts.get(&s).copied().unwrap_or(0)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sections_read_as_fields_and_tables() {
        let v = json!({
            "version": "2407",
            "config": {"ListenPort": 80, "tls": true},
            "units": [{"name": "ctxvda", "state": "failed"}, {"name": "ctxjproxy", "state": "active", "since": null}],
            "ports": [80, 443]
        });
        let s = section_view("vda", &v);
        assert_eq!(
            s.blocks[0],
            Block::Fields(vec![
                ("config.ListenPort".into(), "80".into()),
                ("config.tls".into(), "yes".into()),
                ("ports".into(), "80, 443".into()),
                ("version".into(), "2407".into()),
            ])
        );
        assert_eq!(
            s.blocks[1],
            Block::Table {
                title: "units".into(),
                columns: vec!["name".into(), "state".into(), "since".into()],
                rows: vec![
                    vec!["ctxvda".into(), "failed".into(), String::new()],
                    vec!["ctxjproxy".into(), "active".into(), "–".into()],
                ],
            }
        );
        assert!(s.raw.contains("\"ListenPort\": 80"));
        assert_eq!(section_view("x", &json!([{"a": 1}])).blocks.len(), 1);
    }

    #[test]
    fn deltas_say_up_is_worse() {
        assert_eq!(Delta::new(Some(4.24), 7).class, "worse");
        assert_eq!(Delta::new(Some(4.24), 7).text, "▲ 4.2");
        assert_eq!(Delta::new(Some(-1.0), 30).text, "▼ 1.0");
        assert_eq!(Delta::new(Some(0.0), 30).class, "same");
        assert_eq!(Delta::new(None, 30).class, "unknown");
    }
}
