//! `docs/config-reference.md` documents exactly the keys the config structs accept: a key added to
//! the code without its documentation fails here, and so does a documented key that the code no
//! longer has. The keys come from the structs' own `Deserialize` impls (`xtask::keys`); the
//! documented ones are the first column of the tables under each binary's heading.

use std::collections::BTreeSet;

fn documented(doc: &str, heading: &str) -> BTreeSet<String> {
    let mut in_section = false;
    let mut keys = BTreeSet::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            in_section = h.trim() == heading;
            continue;
        }
        if !in_section {
            continue;
        }
        // | `collector.url` | default | meaning |
        if let Some(rest) = line.strip_prefix("| `")
            && let Some((key, _)) = rest.split_once('`')
        {
            keys.insert(key.to_owned());
        }
    }
    keys
}

fn check(heading: &str, code: Vec<String>) {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/config-reference.md"
    ))
    .expect("docs/config-reference.md");
    let documented = documented(&doc, heading);
    let code: BTreeSet<String> = code.into_iter().collect();
    assert!(code.len() > 5, "the tracer found too few keys: {code:?}");
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/config-reference.md, section `## {heading}`:\n  keys in the code but not documented: \
         {undocumented:?}\n  documented keys the code does not have: {unknown:?}\n\
         (`cargo run -p xtask -- config-keys` lists the code's keys)"
    );
}

#[test]
fn agent_config_keys_are_all_documented() {
    check(
        "callhome-agent",
        xtask::keys::keys::<callhome_agent::config::Config>().unwrap(),
    );
}

#[test]
fn collector_config_keys_are_all_documented() {
    check(
        "callhome-collector",
        xtask::keys::keys::<callhome_collector::config::Config>().unwrap(),
    );
}

#[test]
fn the_doc_parser_sees_keys_only_in_their_section() {
    let doc = "## callhome-agent\n| `a.b` | 1 | x |\n|---|\n## callhome-collector\n| `c` | 2 | y |\n";
    assert_eq!(
        documented(doc, "callhome-agent"),
        BTreeSet::from(["a.b".to_owned()])
    );
    assert_eq!(
        documented(doc, "callhome-collector"),
        BTreeSet::from(["c".to_owned()])
    );
}
