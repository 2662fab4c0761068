//! Area DISK: space, inodes and writability of the mounts the VDA and the OS write to. A full `/var`
//! stops logging, session state and package updates; a full `/tmp` stops new sessions (X authority
//! files and sockets live there).

use std::collections::BTreeSet;

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::sections::DiskMount;
use crate::snapshot::Snapshot;

/// The mounts judged, when mounted separately; anything else on the host is not the VDA's concern.
pub const WATCHED_MOUNTS: &[&str] = &["/", "/var", "/tmp", "/var/log", "/opt"];
/// Free space (for unprivileged writers) under which DISK-FREE-001 fires, in percent.
pub const FREE_LOW_PERCENT: f64 = 10.0;
/// Free space under which DISK-FREE-002 fires instead, in percent.
pub const FREE_CRITICAL_PERCENT: f64 = 5.0;
/// Free inodes under which DISK-INODE-001 fires, in percent.
pub const INODES_LOW_PERCENT: f64 = 10.0;

const DF_REFERENCE: &str = "https://man7.org/linux/man-pages/man3/statvfs.3.html";

pub const FREE_LOW: HostRule = HostRule {
    info: RuleInfo {
        id: "DISK-FREE-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::Medium,
        impact: Rating::High,
        title: "Only {free_percent} % free on {mount_point}",
        rationale: "Under 10 % free, a log burst or a package update fills the file system within hours; \
            a full `/`, `/var` or `/tmp` stops session launches, VDA logging and registration state.",
        remediation: "Find what grows (`du -xh --max-depth=2 MOUNT | sort -h`), rotate or delete old \
            logs and core files, clean the package cache (`dnf clean all` / `apt-get clean`), or grow \
            the file system.",
        reference: DF_REFERENCE,
        evidence: &["mount_point", "free_percent", "available_bytes", "total_bytes"],
    },
    eval: free_low,
};

pub const FREE_CRITICAL: HostRule = HostRule {
    info: RuleInfo {
        id: "DISK-FREE-002",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "{mount_point} is nearly full: {free_percent} % free",
        rationale: "Under 5 % free, services that do not run as root are a few writes away from \
            ENOSPC: new sessions fail, the VDA cannot write its logs or state, and updates abort half way.",
        remediation: "Free space now: delete rotated logs and old core dumps (`coredumpctl list`, \
            `/var/crash`), clean the package cache, then find the cause (`du -xh --max-depth=2 MOUNT`) \
            and grow the file system if the growth is legitimate.",
        reference: DF_REFERENCE,
        evidence: &["mount_point", "free_percent", "available_bytes", "total_bytes"],
    },
    eval: free_critical,
};

pub const INODES_LOW: HostRule = HostRule {
    info: RuleInfo {
        id: "DISK-INODE-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::Medium,
        impact: Rating::High,
        title: "Only {inodes_free_percent} % of inodes free on {mount_point}",
        rationale: "A file system out of inodes refuses new files however much space it has left: \
            session sockets, temporary files and logs can no longer be created.",
        remediation: "Find the directories with the most files (`find MOUNT -xdev -type f | cut -d/ -f2-3 \
            | sort | uniq -c | sort -n`), usually leftover session or cache files, and remove them.",
        reference: DF_REFERENCE,
        evidence: &[
            "mount_point",
            "inodes_free_percent",
            "inodes_free",
            "inodes_total",
        ],
    },
    eval: inodes_low,
};

pub const READ_ONLY: HostRule = HostRule {
    info: RuleInfo {
        id: "DISK-RO-001",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "{mount_point} is mounted read-only",
        rationale: "A system mount that turned read-only (usually the kernel remounting it after an I/O \
            or file-system error) stops every write: logons, logging and VDA registration fail.",
        remediation: "Check the kernel log for the cause (`journalctl -k | grep -iE 'remount|I/O error'`), \
            repair the file system (`fsck` or `xfs_repair` from rescue mode) and the storage, then \
            remount read-write or reboot.",
        reference: "https://man7.org/linux/man-pages/man8/mount.8.html",
        evidence: &["mount_point", "device", "fs_type"],
    },
    eval: read_only,
};

/// The watched mounts present, each once (a bind mount can list a mount point twice); `None` when
/// the section is absent or lists none of them.
fn watched(s: &Snapshot) -> Option<Vec<&DiskMount>> {
    let disks = s.sections.disks.as_ref()?;
    let mut seen = BTreeSet::new();
    let mounts: Vec<&DiskMount> = disks
        .mounts
        .iter()
        .filter(|m| WATCHED_MOUNTS.contains(&m.mount_point.as_str()) && seen.insert(&m.mount_point))
        .collect();
    (!mounts.is_empty()).then_some(mounts)
}

fn space_hit(m: &DiskMount) -> Hit {
    Hit::about(m.mount_point.clone())
        .with("mount_point", m.mount_point.clone())
        .with("free_percent", m.free_percent)
        .with("available_bytes", m.available_bytes)
        .with("total_bytes", m.total_bytes)
}

fn judge(s: &Snapshot, fires: impl Fn(&DiskMount) -> Option<Hit>) -> Outcome {
    match watched(s) {
        Some(mounts) => Outcome::Hits(mounts.into_iter().filter_map(fires).collect()),
        None => Outcome::Skipped,
    }
}

fn free_low(s: &Snapshot) -> Outcome {
    // The band [5, 10): under 5 % is DISK-FREE-002's, so one mount never gets both findings.
    judge(s, |m| {
        (m.total_bytes > 0 && m.free_percent < FREE_LOW_PERCENT && m.free_percent >= FREE_CRITICAL_PERCENT)
            .then(|| space_hit(m))
    })
}

fn free_critical(s: &Snapshot) -> Outcome {
    judge(s, |m| {
        (m.total_bytes > 0 && m.free_percent < FREE_CRITICAL_PERCENT).then(|| space_hit(m))
    })
}

fn inodes_low(s: &Snapshot) -> Outcome {
    let Some(mounts) = watched(s) else {
        return Outcome::Skipped;
    };
    // File systems without a fixed inode table (btrfs) report 0 inodes: nothing to run out of.
    let judged: Vec<(&DiskMount, u64, u64, f64)> = mounts
        .into_iter()
        .filter_map(|m| match (m.inodes_total, m.inodes_free, m.inodes_free_percent) {
            (Some(total), Some(free), Some(pct)) if total > 0 => Some((m, total, free, pct)),
            _ => None,
        })
        .collect();
    if judged.is_empty() {
        return Outcome::Skipped;
    }
    Outcome::Hits(
        judged
            .into_iter()
            .filter(|(_, _, _, pct)| *pct < INODES_LOW_PERCENT)
            .map(|(m, total, free, pct)| {
                Hit::about(m.mount_point.clone())
                    .with("mount_point", m.mount_point.clone())
                    .with("inodes_free_percent", pct)
                    .with("inodes_free", free)
                    .with("inodes_total", total)
            })
            .collect(),
    )
}

fn read_only(s: &Snapshot) -> Outcome {
    judge(s, |m| {
        m.read_only.then(|| {
            Hit::about(m.mount_point.clone())
                .with("mount_point", m.mount_point.clone())
                .with("device", m.device.clone())
                .with("fs_type", m.fs_type.clone())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, fires_all, passes, skipped, snapshot_with};
    use crate::sections::DisksSection;

    const GIB: u64 = 1 << 30;

    fn mount(point: &str, free_percent: f64) -> DiskMount {
        let total = 100 * GIB;
        DiskMount {
            mount_point: point.to_owned(),
            device: "/dev/mapper/rhel-root".to_owned(),
            fs_type: "xfs".to_owned(),
            read_only: false,
            total_bytes: total,
            available_bytes: (total as f64 * free_percent / 100.0) as u64,
            free_percent,
            inodes_total: Some(1_000_000),
            inodes_free: Some(500_000),
            inodes_free_percent: Some(50.0),
        }
    }

    fn disks(mounts: Vec<DiskMount>) -> Snapshot {
        snapshot_with(|s| s.disks = Some(DisksSection { mounts }))
    }

    #[test]
    fn low_space_fires_between_five_and_ten_percent() {
        let s = disks(vec![mount("/", 40.0), mount("/var", 7.5), mount("/home", 1.0)]);
        let f = fires(&FREE_LOW, &s);
        assert_eq!(f.subject, "/var");
        assert_eq!(f.title, "Only 7.5 % free on /var");
        passes(&FREE_CRITICAL, &s);
    }

    #[test]
    fn critical_space_fires_alone_under_five_percent() {
        let s = disks(vec![mount("/", 4.9), mount("/tmp", 3.0), mount("/var", 12.0)]);
        let found = fires_all(&FREE_CRITICAL, &s);
        let subjects: Vec<&str> = found.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(subjects, ["/", "/tmp"]);
        assert_eq!(found[0].title, "/ is nearly full: 4.9 % free");
        passes(&FREE_LOW, &s);
    }

    #[test]
    fn space_passes_when_plenty_and_ignores_unwatched_mounts() {
        let s = disks(vec![mount("/", 10.0), mount("/data", 0.5)]);
        passes(&FREE_LOW, &s);
        passes(&FREE_CRITICAL, &s);
    }

    #[test]
    fn skipped_without_disks_or_watched_mounts() {
        for rule in [&FREE_LOW, &FREE_CRITICAL, &INODES_LOW, &READ_ONLY] {
            skipped(rule, &snapshot_with(|_| {}));
            skipped(rule, &disks(vec![mount("/data", 50.0)]));
        }
    }

    #[test]
    fn inodes_fire_under_ten_percent() {
        let mut m = mount("/var", 50.0);
        m.inodes_free = Some(50_000);
        m.inodes_free_percent = Some(5.0);
        let f = fires(&INODES_LOW, &disks(vec![mount("/", 50.0), m]));
        assert_eq!(f.subject, "/var");
        assert_eq!(f.title, "Only 5.0 % of inodes free on /var");
        passes(&INODES_LOW, &disks(vec![mount("/", 50.0)]));
    }

    #[test]
    fn inodes_skipped_when_no_mount_has_an_inode_table() {
        let mut m = mount("/", 50.0);
        m.inodes_total = Some(0);
        m.inodes_free = Some(0);
        m.inodes_free_percent = Some(0.0);
        skipped(&INODES_LOW, &disks(vec![m]));
    }

    #[test]
    fn read_only_mount_fires() {
        let mut m = mount("/", 50.0);
        m.read_only = true;
        let f = fires(&READ_ONLY, &disks(vec![m, mount("/tmp", 50.0)]));
        assert_eq!(f.title, "/ is mounted read-only");
        assert_eq!(f.evidence["fs_type"], "xfs");
        passes(&READ_ONLY, &disks(vec![mount("/", 50.0)]));
    }
}
