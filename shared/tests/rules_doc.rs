//! `docs/rules.md` is the catalog as `catalog_markdown` renders it. After a catalog change, rewrite it
//! with `UPDATE_DOCS=1 cargo test -p callhome-shared --test rules_doc` and commit the result.

use std::path::PathBuf;

use callhome_shared::rules::doc::catalog_markdown;

#[test]
fn rules_doc_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/rules.md");
    let expected = catalog_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is out of date with the rule catalog: run `UPDATE_DOCS=1 cargo test -p callhome-shared \
         --test rules_doc` and commit it",
        path.display()
    );
}
