//! A downgrade the database cannot take: `serve` (and every admin command) on a database whose
//! schema is newer than the binary refuses to start, exits 78 (EX_CONFIG: the unit's
//! RestartPreventExitStatus, so systemd does not loop) and says what to do.

use std::process::Command;

fn collector(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_callhome-collector"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("CALLHOME_LOG", "warn")
        .output()
        .expect("run callhome-collector")
}

#[test]
fn a_database_newer_than_the_binary_is_refused_with_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    // A current database, then its schema version moved past what this binary knows, as a newer
    // collector's migration would leave it.
    let made = collector(dir.path(), &["org", "list"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let db = dir.path().join("callhome.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    conn.pragma_update(None, "user_version", current + 1).unwrap();
    drop(conn);

    for args in [&["serve", "--listen", "127.0.0.1:0"][..], &["org", "list"][..]] {
        let out = collector(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {stderr}");
        let expected = format!(
            "database schema version {} is newer than this collector supports ({current}): upgrade the collector",
            current + 1
        );
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
    // Refused before anything was written: the version is still the newer one.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let after: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(after, current + 1);
}
