use super::*;
use crate::spool::format;

#[test]
fn stored_snapshots_list_oldest_first_and_load_back_exactly() {
    let (_dir, spool) = spool_with(Arc::new(OsFs::default()), ROOMY);
    let ids = ids(5);
    // Stored out of order: the listing is by id, which is the order taken.
    for &i in &[3, 0, 4, 1, 2] {
        spool.store(ids[i], i as u64, &body(ids[i], 10)).unwrap();
    }
    assert_eq!(entry_ids(&spool), ids);
    for (i, entry) in spool.entries().unwrap().iter().enumerate() {
        let record = spool.load(entry).unwrap();
        assert_eq!(record.id, ids[i]);
        assert_eq!(record.dropped_mark, i as u64);
        assert_eq!(record.body, body(ids[i], 10));
    }
}

#[test]
fn removed_entries_are_gone_and_removing_twice_is_fine() {
    let (_dir, spool) = spool_with(Arc::new(OsFs::default()), ROOMY);
    let ids = ids(3);
    for &id in &ids {
        spool.store(id, 0, &body(id, 0)).unwrap();
    }
    spool.remove(ids[1]).unwrap();
    spool.remove(ids[1]).unwrap();
    assert_eq!(entry_ids(&spool), vec![ids[0], ids[2]]);
    let gone = super::super::Entry { id: ids[1], bytes: 0 };
    assert!(matches!(spool.load(&gone), Err(crate::spool::LoadError::Gone)));
}

#[test]
fn files_are_private_and_no_temporary_file_remains() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, spool) = spool_with(Arc::new(OsFs::default()), ROOMY);
    let id = Uuid::now_v7();
    spool.store(id, 0, &body(id, 0)).unwrap();
    let files = files_under(dir.path());
    assert_eq!(
        files,
        HashSet::from([PathBuf::from(format!("spool/{id}.snap"))]),
        "{files:?}"
    );
    let mode = std::fs::metadata(dir.path().join(format!("spool/{id}.snap")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

#[test]
fn the_age_of_an_entry_comes_from_its_uuid_v7() {
    let (_dir, spool) = spool_with(Arc::new(OsFs::default()), ROOMY);
    let id = Uuid::now_v7();
    spool.store(id, 0, &body(id, 0)).unwrap();
    let taken = spool.entries().unwrap()[0].taken_at().unwrap();
    let age = time::OffsetDateTime::now_utc() - taken;
    assert!(
        age >= time::Duration::ZERO && age < time::Duration::seconds(5),
        "{age}"
    );
}

#[test]
fn format_round_trips_and_names_what_is_wrong() {
    let id = Uuid::now_v7();
    let bytes = format::encode(id, 7, b"body");
    let record = format::decode(&bytes).unwrap();
    assert_eq!(
        (record.id, record.dropped_mark, record.body.as_slice()),
        (id, 7, &b"body"[..])
    );

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bytes[..20].to_vec(), "truncated"),
        (
            b"GARBAGE!".iter().chain(&bytes[8..]).copied().collect(),
            "bad magic",
        ),
        (
            {
                let mut b = bytes.clone();
                b[7] = 2;
                b
            },
            "version 2",
        ),
        (
            {
                let mut b = bytes.clone();
                let last = b.len() - 1;
                b[last] ^= 0x40;
                b
            },
            "checksum mismatch",
        ),
        (bytes[..bytes.len() - 1].to_vec(), "checksum mismatch"),
    ];
    for (bad, expected) in cases {
        let err = format::decode(&bad).unwrap_err();
        assert!(err.contains(expected), "{err} (expected {expected})");
    }
}
