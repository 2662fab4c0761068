use super::*;

#[test]
fn over_max_files_the_oldest_are_dropped_and_reported() {
    let limits = Limits {
        max_files: 3,
        max_bytes: 64 << 20,
    };
    let (_dir, spool) = spool_with(Arc::new(OsFs::default()), limits);
    let ids = ids(6);
    let mut dropped = Vec::new();
    for &id in &ids {
        dropped.extend(spool.store(id, 0, &body(id, 0)).unwrap().dropped);
    }
    assert_eq!(dropped, ids[..3].to_vec());
    assert_eq!(entry_ids(&spool), ids[3..].to_vec());
}

#[test]
fn over_max_bytes_the_oldest_are_dropped_until_it_fits() {
    let id0 = Uuid::now_v7();
    let one = crate::spool::format::encode(id0, 0, &body(id0, 0)).len() as u64;
    let limits = Limits {
        max_files: 1000,
        max_bytes: one * 2 + one / 2,
    };
    let (_dir, spool) = spool_with(Arc::new(OsFs::default()), limits);
    let ids = ids(5);
    let mut dropped = 0;
    for &id in &ids {
        dropped += spool.store(id, 0, &body(id, 0)).unwrap().dropped.len();
    }
    assert_eq!(dropped, 3);
    assert_eq!(entry_ids(&spool), ids[3..].to_vec());
    let bytes: u64 = spool.entries().unwrap().iter().map(|e| e.bytes).sum();
    assert!(bytes <= limits.max_bytes);
}

#[test]
fn a_snapshot_larger_than_the_whole_budget_is_kept_alone() {
    let limits = Limits {
        max_files: 10,
        max_bytes: 100,
    };
    let (_dir, spool) = spool_with(Arc::new(OsFs::default()), limits);
    let ids = ids(2);
    spool.store(ids[0], 0, &body(ids[0], 1000)).unwrap();
    let stored = spool.store(ids[1], 0, &body(ids[1], 1000)).unwrap();
    assert_eq!(stored.dropped, vec![ids[0]]);
    assert_eq!(entry_ids(&spool), vec![ids[1]]);
}

#[test]
fn drops_are_reported_once_by_the_next_delivered_snapshot() {
    use crate::spool::HealthBook;
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn SpoolFs> = Arc::new(OsFs::default());
    let mut book = HealthBook::open(Arc::clone(&fs), dir.path());
    let now = time::OffsetDateTime::now_utc();

    book.dropped(2);
    // A snapshot taken now carries mark 2 and reports 2.
    let mark = book.record().dropped_total;
    assert_eq!(book.record().dropped_unreported(), 2);
    // One more drop before it is delivered: that one is still unreported afterwards.
    book.dropped(1);
    book.delivered(mark, now);
    assert_eq!(book.record().dropped_unreported(), 1);
    // A late delivery of an older snapshot (smaller mark) does not bring counts back.
    book.delivered(0, now);
    assert_eq!(book.record().dropped_unreported(), 1);

    // The counts survive a restart.
    let again = HealthBook::open(fs, dir.path());
    assert_eq!(again.record(), book.record());
    assert_eq!(again.record().last_delivery, Some(now));
}
