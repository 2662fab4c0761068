//! The catalog as Markdown (`docs/rules.md`), generated from the entries themselves so the document
//! cannot drift from the code: `shared/tests/rules_doc.rs` fails when the file is out of date and
//! rewrites it with `UPDATE_DOCS=1`.

use std::fmt::Write as _;

use super::{CATALOG_VERSION, RuleInfo, Scope, catalog, host::MIN_SUPPORTED_AGENT_VERSION};

const INTRO: &str = "\
Every rule callhome evaluates, with the wording a finding carries. Host rules judge one snapshot \
(the agent's `check` runs them locally; the collector on every snapshot it stores); fleet rules judge \
an environment's hosts together and trend rules one host's history (both on the collector only).

How to read an entry:

- **Id** (`AREA-TOPIC-NNN`) is stable forever: suppressions and finding history key on it. A rule \
whose meaning changes gets a new id; a retired id is never reused.
- **Severity** is how bad a finding is (`critical`, `high`, `medium`, `low`, `info`); critical \
findings of Priority and Priority Plus orgs enter the TAM queue. **Likelihood** is how likely the \
condition turns into an incident, **impact** how bad that incident would be.
- **Title** is the finding's one-line summary; `{name}` placeholders are filled from the evidence \
field of that name.
- **Evidence** lists the fields every finding of the rule reports: the values that made it fire.
- A rule whose inputs are absent from a snapshot (probe disabled, failed, or value unknown) is \
*skipped*: it neither fires nor counts as healthy. Failed probes are themselves a finding \
(`PROBE-ERR-001`).
- A finding is identified on its host by its rule and its *subject* (the mount point, process, \
certificate... it is about; empty for host-wide findings).

**Catalog version.** `CATALOG_VERSION` changes whenever a rule is added, removed, or changes what it \
fires on. Every evaluation records the version it ran with, and when the collector starts with a new \
version it re-evaluates the latest snapshot of every host, so findings and scores always reflect the \
catalog in force.";

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Host => "host",
        Scope::Fleet => "fleet",
        Scope::Trend => "trend",
    }
}

/// A table cell: pipes would end the cell, newlines the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Web references as links; repository paths as code (a relative link would break from `docs/`).
fn reference(r: &str) -> String {
    if r.starts_with("https://") || r.starts_with("http://") {
        format!("<{r}>")
    } else {
        format!("`{r}` (in this repository)")
    }
}

fn entry(out: &mut String, r: &RuleInfo) {
    let evidence: Vec<String> = r.evidence.iter().map(|e| format!("`{e}`")).collect();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "### {id}\n\n\
         | scope | severity | likelihood | impact |\n\
         |---|---|---|---|\n\
         | {scope} | **{severity}** | {likelihood} | {impact} |\n\n\
         **Title:** {title}\n\n\
         **Why it matters:** {rationale}\n\n\
         **Remediation:** {remediation}\n\n\
         **Reference:** {reference}\n\n\
         **Evidence:** {evidence}\n\n",
        id = r.id,
        scope = scope_name(r.scope),
        severity = r.severity,
        likelihood = r.likelihood.as_str(),
        impact = r.impact.as_str(),
        title = format_args!("`{}`", r.title),
        rationale = r.rationale,
        remediation = r.remediation,
        reference = reference(r.reference),
        evidence = evidence.join(", "),
    );
}

/// `docs/rules.md`: an introduction, a summary table, then every rule by scope in catalog order.
pub fn catalog_markdown() -> String {
    let rules: Vec<&RuleInfo> = catalog().collect();
    let mut out = String::new();
    out.push_str("# Rule catalog\n\n");
    out.push_str(
        "<!-- Generated from the rule catalog (`shared/src/rules/`) by `shared/src/rules/doc.rs`; \
         do not edit. `UPDATE_DOCS=1 cargo test -p callhome-shared --test rules_doc` rewrites it. -->\n\n",
    );
    let _ = write!(
        out,
        "Catalog version **{CATALOG_VERSION}**: {} rules. Oldest supported agent: \
         **{MIN_SUPPORTED_AGENT_VERSION}** (`AGENT-VER-001`).\n\n{INTRO}\n\n",
        rules.len()
    );
    out.push_str("## Summary\n\n| id | scope | severity | title |\n|---|---|---|---|\n");
    for r in &rules {
        let _ = writeln!(
            out,
            "| [{id}](#{anchor}) | {scope} | {severity} | {title} |",
            id = r.id,
            anchor = r.id.to_ascii_lowercase(),
            scope = scope_name(r.scope),
            severity = r.severity,
            title = cell(r.title),
        );
    }
    out.push('\n');
    for (scope, heading) in [
        (Scope::Host, "Host rules"),
        (Scope::Fleet, "Fleet rules"),
        (Scope::Trend, "Trend rules"),
    ] {
        let of_scope: Vec<&&RuleInfo> = rules.iter().filter(|r| r.scope == scope).collect();
        if of_scope.is_empty() {
            continue;
        }
        let _ = write!(out, "## {heading}\n\n");
        for r in of_scope {
            entry(&mut out, r);
        }
    }
    // One trailing newline, as editors leave it.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_an_entry_and_a_summary_row() {
        let md = catalog_markdown();
        for r in catalog() {
            assert!(md.contains(&format!("\n### {}\n", r.id)), "no entry for {}", r.id);
            assert!(
                md.contains(&format!("| [{}](#", r.id)),
                "no summary row for {}",
                r.id
            );
        }
        assert!(md.contains(CATALOG_VERSION));
        assert!(md.ends_with('\n') && !md.ends_with("\n\n"));
    }

    #[test]
    fn cells_and_references_are_escaped() {
        assert_eq!(cell("a | b\nc"), "a \\| b c");
        assert_eq!(reference("https://x.org/a"), "<https://x.org/a>");
        assert_eq!(
            reference("docs/runbook.md"),
            "`docs/runbook.md` (in this repository)"
        );
    }
}
