//! `rules list`: the rule catalog the collector evaluates, as a table (id, severity, scope, title) or,
//! with `--json`, every entry in full with the catalog version.

use anyhow::Context as _;
use callhome_shared::rules::{CATALOG_VERSION, RuleInfo, Scope, catalog};
use clap::Subcommand;
use serde::Serialize;

use crate::cli::Output;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List every rule of the catalog (host, fleet, trend).
    List(Output),
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct CatalogDocument<'a> {
    pub catalog_version: &'static str,
    pub rules: Vec<&'a RuleInfo>,
}

pub fn run(cmd: &RulesCommand) -> anyhow::Result<()> {
    let RulesCommand::List(output) = cmd;
    let rules: Vec<&RuleInfo> = catalog().collect();
    if output.json {
        let doc = CatalogDocument {
            catalog_version: CATALOG_VERSION,
            rules,
        };
        let mut text = serde_json::to_string_pretty(&doc).context("encoding the rule catalog")?;
        text.push('\n');
        emit(&text)
    } else {
        emit(&table(&rules))?;
        eprintln!("catalog {CATALOG_VERSION}: {} rules", rules.len());
        Ok(())
    }
}

/// Writes to stdout; a reader that hung up (`| head`) is not an error, unlike with `print!`.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Host => "host",
        Scope::Fleet => "fleet",
        Scope::Trend => "trend",
    }
}

/// ID, SEVERITY, SCOPE and TITLE, columns padded to their widest cell (the title, last, is not).
pub fn table(rules: &[&RuleInfo]) -> String {
    let rows: Vec<[&str; 4]> = rules
        .iter()
        .map(|r| [r.id, r.severity.as_str(), scope_name(r.scope), r.title])
        .collect();
    let header = ["ID", "SEVERITY", "SCOPE", "TITLE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let [id, severity, scope, title] = row;
        let line = format!(
            "{id:<w0$}  {severity:<w1$}  {scope:<w2$}  {title}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use callhome_shared::rules::{Rating, Severity};

    const fn rule(id: &'static str, severity: Severity, scope: Scope, title: &'static str) -> RuleInfo {
        RuleInfo {
            id,
            scope,
            severity,
            likelihood: Rating::Low,
            impact: Rating::Low,
            title,
            rationale: "r",
            remediation: "m",
            reference: "https://example.invalid",
            evidence: &[],
        }
    }

    #[test]
    fn rules_table_aligns_columns() {
        let a = rule(
            "DISK-FREE-002",
            Severity::Critical,
            Scope::Host,
            "{mount_point} is full",
        );
        let b = rule("FLEET-VER-001", Severity::Low, Scope::Fleet, "Mixed versions");
        assert_eq!(
            table(&[&a, &b]),
            "ID             SEVERITY  SCOPE  TITLE\n\
             DISK-FREE-002  critical  host   {mount_point} is full\n\
             FLEET-VER-001  low       fleet  Mixed versions\n"
        );
    }

    #[test]
    fn rules_table_lists_the_whole_catalog() {
        let rules: Vec<&RuleInfo> = catalog().collect();
        let text = table(&rules);
        assert_eq!(text.lines().count(), rules.len() + 1);
        for r in &rules {
            assert!(text.lines().any(|l| l.starts_with(r.id)), "{} missing", r.id);
        }
    }

    #[test]
    fn rules_json_carries_full_entries() {
        let doc = CatalogDocument {
            catalog_version: CATALOG_VERSION,
            rules: catalog().collect(),
        };
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["catalog_version"], CATALOG_VERSION);
        let first = &v["rules"][0];
        for key in [
            "id",
            "scope",
            "severity",
            "likelihood",
            "impact",
            "title",
            "rationale",
            "remediation",
            "reference",
            "evidence",
        ] {
            assert!(first.get(key).is_some(), "rules[0] lacks {key}: {first}");
        }
    }
}
