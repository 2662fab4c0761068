use super::*;
use crate::spool::{HealthBook, LoadError};

#[test]
fn a_full_disk_is_an_error_that_leaves_the_spool_as_it_was() {
    let fs = FaultyFs::new();
    let (dir, spool) = spool_with(fs.clone(), ROOMY);
    let ids = ids(2);
    spool.store(ids[0], 0, &body(ids[0], 0)).unwrap();
    fs.inject(Fault::DiskFull);
    let err = spool.store(ids[1], 0, &body(ids[1], 0)).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains(&ids[1].to_string()), "{err}");
    assert_eq!(entry_ids(&spool), vec![ids[0]]);
    // No temporary file left behind.
    assert_eq!(files_under(&dir.path().join("spool")).len(), 1);
    // And the next store works.
    spool.store(ids[1], 0, &body(ids[1], 0)).unwrap();
    assert_eq!(entry_ids(&spool), ids);
}

#[test]
fn a_crash_mid_write_leaves_no_entry_and_the_next_open_cleans_up() {
    for fault in [Fault::CrashMidWrite, Fault::CrashBeforeRename] {
        let fs = FaultyFs::new();
        let (dir, spool) = spool_with(fs.clone(), ROOMY);
        let ids = ids(2);
        spool.store(ids[0], 0, &body(ids[0], 100)).unwrap();
        fs.inject(fault);
        spool.store(ids[1], 0, &body(ids[1], 100)).unwrap_err();
        let leftovers: Vec<_> = files_under(&dir.path().join("spool"))
            .into_iter()
            .filter(|p| p.to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "{fault:?}: the dead process left its temporary file"
        );

        fs.restart();
        let spool = Spool::open(dir.path(), ROOMY, fs.clone()).unwrap();
        assert_eq!(entry_ids(&spool), vec![ids[0]], "{fault:?}");
        assert_eq!(files_under(&dir.path().join("spool")).len(), 1, "{fault:?}");
        spool.load(&spool.entries().unwrap()[0]).unwrap();
    }
}

#[test]
fn a_crash_after_the_rename_keeps_the_whole_snapshot() {
    let fs = FaultyFs::new();
    let (dir, spool) = spool_with(fs.clone(), ROOMY);
    let id = Uuid::now_v7();
    fs.inject(Fault::CrashAfterRename);
    spool.store(id, 0, &body(id, 100)).unwrap_err();
    fs.restart();
    let spool = Spool::open(dir.path(), ROOMY, fs).unwrap();
    let entries = spool.entries().unwrap();
    assert_eq!(spool.load(&entries[0]).unwrap().body, body(id, 100));
}

#[test]
fn corrupt_files_are_quarantined_with_their_reason() {
    let (dir, spool) = spool_with(Arc::new(OsFs::default()), ROOMY);
    let ids = ids(4);
    for &id in &ids {
        spool.store(id, 0, &body(id, 50)).unwrap();
    }
    let path = |id: Uuid| dir.path().join(format!("spool/{id}.snap"));
    // 0: a flipped bit; 1: torn; 2: a body that is not zstd (valid CRC); 3: fine.
    let mut bytes = std::fs::read(path(ids[0])).unwrap();
    bytes[40] ^= 1;
    std::fs::write(path(ids[0]), bytes).unwrap();
    let bytes = std::fs::read(path(ids[1])).unwrap();
    std::fs::write(path(ids[1]), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(
        path(ids[2]),
        crate::spool::format::encode(ids[2], 0, b"{not zstd"),
    )
    .unwrap();

    let mut book = HealthBook::open(Arc::new(OsFs::default()), dir.path());
    let mut good = Vec::new();
    for entry in spool.entries().unwrap() {
        match spool.load(&entry) {
            Ok(record) => good.push(record.id),
            Err(LoadError::Corrupt(reason)) => {
                assert!(spool.quarantine(entry.id, &reason).unwrap());
                book.quarantined(1);
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(good, vec![ids[3]]);
    assert_eq!(entry_ids(&spool), vec![ids[3]]);
    assert_eq!(book.record().quarantined_total, 3);
    let q = spool.quarantined().unwrap();
    let reasons: Vec<(&str, &str)> = q.iter().map(|q| (q.file.as_str(), q.reason.as_str())).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].1.contains("checksum mismatch"), "{reasons:?}");
    assert!(reasons[1].1.contains("checksum mismatch"), "{reasons:?}");
    assert!(reasons[2].1.contains("not valid zstd"), "{reasons:?}");
    // Quarantining what is already gone is not an error.
    assert!(!spool.quarantine(ids[0], "again").unwrap());
}

#[test]
fn a_body_naming_another_snapshot_is_corrupt() {
    let (dir, spool) = spool_with(Arc::new(OsFs::default()), ROOMY);
    let ids = ids(2);
    std::fs::write(
        dir.path().join(format!("spool/{}.snap", ids[0])),
        crate::spool::format::encode(ids[0], 0, &body(ids[1], 0)),
    )
    .unwrap();
    let err = spool.load(&spool.entries().unwrap()[0]).unwrap_err();
    assert!(err.to_string().contains("body holds snapshot"), "{err}");
}

#[test]
fn foreign_files_are_not_entries() {
    let (dir, spool) = spool_with(Arc::new(OsFs::default()), ROOMY);
    let id = Uuid::now_v7();
    spool.store(id, 0, &body(id, 0)).unwrap();
    for name in ["notes.txt", "x.snap", &format!("{}.snap", id.simple())] {
        std::fs::write(dir.path().join("spool").join(name), b"?").unwrap();
    }
    assert_eq!(entry_ids(&spool), vec![id]);
}
