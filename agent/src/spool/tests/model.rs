//! Random sequences of store, deliver and crash, checked against a model: the spool must hold
//! exactly the snapshots whose store returned Ok and that were neither delivered nor dropped, and
//! after every crash-and-reopen nothing torn is listed.

use std::collections::BTreeSet;

use super::*;

/// A small deterministic PRNG (xorshift64*), so that a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_operations_with_crashes_match_the_model() {
    for seed in 1..=20u64 {
        run(seed);
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let limits = Limits {
        max_files: 4,
        max_bytes: 64 << 20,
    };
    let fs = FaultyFs::new();
    let (dir, mut spool) = spool_with(fs.clone(), limits);
    // Snapshots that must be in the spool; snapshots that may be (a store that crashed after the
    // rename may or may not have made it).
    let mut model: BTreeSet<Uuid> = BTreeSet::new();
    let mut maybe: BTreeSet<Uuid> = BTreeSet::new();
    let mut dropped = 0usize;

    for step in 0..60 {
        match rng.below(10) {
            0..=4 => {
                let id = Uuid::now_v7();
                let fault = match rng.below(8) {
                    0 => Some(Fault::DiskFull),
                    1 => Some(Fault::CrashMidWrite),
                    2 => Some(Fault::CrashAfterRename),
                    _ => None,
                };
                if let Some(f) = fault {
                    fs.inject(f);
                }
                match spool.store(id, 0, &body(id, rng.below(200) as usize)) {
                    Ok(stored) => {
                        model.insert(id);
                        for d in &stored.dropped {
                            assert!(
                                model.remove(d) || maybe.remove(d),
                                "seed {seed} step {step}: dropped unknown {d}"
                            );
                        }
                        dropped += stored.dropped.len();
                    }
                    Err(_) if fault == Some(Fault::CrashAfterRename) => {
                        maybe.insert(id);
                    }
                    Err(_) => {}
                }
            }
            5..=7 => {
                // Deliver the oldest.
                if let Some(entry) = spool.entries().ok().and_then(|e| e.into_iter().next()) {
                    let record = spool
                        .load(&entry)
                        .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                    assert_eq!(record.body.len() as u64 + 36, entry.bytes);
                    spool.remove(entry.id).unwrap();
                    assert!(model.remove(&entry.id) || maybe.remove(&entry.id));
                }
            }
            _ => {
                // Crash and restart.
                fs.inject(Fault::CrashBeforeRename);
                let id = Uuid::now_v7();
                let _ = spool.store(id, 0, &body(id, 10));
                fs.restart();
                spool = Spool::open(dir.path(), limits, fs.clone()).unwrap();
            }
        }
        fs.restart();
        // Resolve the maybes: whatever is listed is whole.
        let listed: BTreeSet<Uuid> = entry_ids(&spool).into_iter().collect();
        for id in maybe.clone() {
            if !listed.contains(&id) {
                maybe.remove(&id);
            }
        }
        let expected: BTreeSet<Uuid> = model.union(&maybe).copied().collect();
        assert_eq!(listed, expected, "seed {seed} step {step}");
        for entry in spool.entries().unwrap() {
            spool
                .load(&entry)
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: torn entry: {e}"));
        }
    }
    let _ = dropped;
}
