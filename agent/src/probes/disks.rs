//! `disks` probe: space and inodes of every real mount.
//!
//! The mount list comes from `/proc/self/mounts` (the kernel's view for this process, fstab(5)
//! format with octal escapes); the figures from statvfs(3). Pseudo filesystems are skipped, as are
//! mounts hidden by a later mount on the same point and second mounts of the same device (bind mounts,
//! btrfs subvolumes), which `df` also shows once.

use std::collections::HashMap;

use callhome_shared::{DiskMount, DisksSection};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

const MOUNTS: &str = "/proc/self/mounts";

/// Filesystems with no disk space of their own: kernel interfaces, memory-backed, container layers,
/// read-only images (squashfs snaps are always 100 % full) and FUSE helpers.
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.snapfuse",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nfsd",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let text = ctx
        .read_text(MOUNTS)
        .map_err(|e| ProbeFailure::reading(MOUNTS, &e))?;
    let mut mounts = Vec::new();
    for entry in real_mounts(parse_mounts(&text)) {
        match ctx.source.statvfs(&entry.mount_point) {
            Ok(st) => {
                let usage = Usage {
                    fragment_size: st.block_size,
                    blocks: st.blocks,
                    blocks_available: st.blocks_available,
                    files: st.files,
                    files_free: st.files_free,
                };
                if let Some(mount) = disk_mount(&entry, &usage) {
                    mounts.push(mount);
                }
            }
            Err(error) => {
                tracing::warn!(mount_point = %entry.mount_point, %error, "statvfs failed: mount left out");
            }
        }
    }
    mounts.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    Ok(ProbeOutput::Section(Section::Disks(DisksSection { mounts })))
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountEntry {
    device: String,
    mount_point: String,
    fs_type: String,
    read_only: bool,
}

/// The statvfs figures the section needs.
#[derive(Debug, Clone, Copy)]
struct Usage {
    fragment_size: u64,
    blocks: u64,
    blocks_available: u64,
    files: u64,
    files_free: u64,
}

/// Parses `/proc/self/mounts`; lines that do not have the fields are skipped.
fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let device = unescape(fields.next()?);
            let mount_point = unescape(fields.next()?);
            let fs_type = unescape(fields.next()?);
            let options = fields.next()?;
            Some(MountEntry {
                device,
                mount_point,
                fs_type,
                read_only: options.split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash (`\040` and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_pseudo(fs_type: &str) -> bool {
    PSEUDO_FS.contains(&fs_type)
}

/// Keeps real filesystems, once each: the last mount on a mount point (it hides the earlier ones), and
/// for a device mounted several times the mount with the shortest path.
fn real_mounts(entries: Vec<MountEntry>) -> Vec<MountEntry> {
    let mut by_point: Vec<MountEntry> = Vec::new();
    for entry in entries.into_iter().filter(|e| !is_pseudo(&e.fs_type)) {
        by_point.retain(|e| e.mount_point != entry.mount_point);
        by_point.push(entry);
    }
    let mut by_device: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<MountEntry> = Vec::new();
    for entry in by_point {
        match by_device.get(&entry.device) {
            Some(&i) => {
                if entry.mount_point.len() < out[i].mount_point.len() {
                    out[i] = entry;
                }
            }
            None => {
                by_device.insert(entry.device.clone(), out.len());
                out.push(entry);
            }
        }
    }
    out
}

/// `part / total` in percent, rounded to one decimal; 0 when `total` is 0.
fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    // u64 -> f64 loses precision only past 2^53 bytes (8 PiB), far below a visible 0.1 %.
    let ratio = part as f64 / total as f64;
    (ratio * 1000.0).round() / 10.0
}

/// The section's entry for one mount; `None` for a filesystem that reports no size.
fn disk_mount(entry: &MountEntry, usage: &Usage) -> Option<DiskMount> {
    let total_bytes = usage.blocks.saturating_mul(usage.fragment_size);
    if total_bytes == 0 {
        return None;
    }
    let available_bytes = usage.blocks_available.saturating_mul(usage.fragment_size);
    // Filesystems without a fixed inode table (btrfs, some network filesystems) report 0 inodes.
    let has_inodes = usage.files > 0;
    Some(DiskMount {
        mount_point: entry.mount_point.clone(),
        device: entry.device.clone(),
        fs_type: entry.fs_type.clone(),
        read_only: entry.read_only,
        total_bytes,
        available_bytes,
        free_percent: percent(available_bytes, total_bytes),
        inodes_total: has_inodes.then_some(usage.files),
        inodes_free: has_inodes.then_some(usage.files_free),
        inodes_free_percent: has_inodes.then(|| percent(usage.files_free, usage.files)),
    })
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, _now: time::OffsetDateTime) {
    std::hint::black_box(real_mounts(parse_mounts(text)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a RHEL 9 VDA (trimmed), with a Docker overlay, a snap and a bind mount added.
    const MOUNTS_RHEL9: &str = "\
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
sysfs /sys sysfs rw,seclabel,nosuid,nodev,noexec,relatime 0 0
devtmpfs /dev devtmpfs rw,seclabel,nosuid,size=4096k,nr_inodes=1048576,mode=755,inode64 0 0
tmpfs /dev/shm tmpfs rw,seclabel,nosuid,nodev,inode64 0 0
devpts /dev/pts devpts rw,seclabel,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0
tmpfs /run tmpfs rw,seclabel,nosuid,nodev,size=1579752k,nr_inodes=819200,mode=755,inode64 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,seclabel,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
/dev/mapper/rhel-root / xfs rw,seclabel,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0
selinuxfs /sys/fs/selinux selinuxfs rw,nosuid,noexec,relatime 0 0
/dev/sda1 /boot xfs rw,seclabel,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0
/dev/mapper/rhel-home /home xfs rw,seclabel,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0
/dev/sdb1 /mnt/iso\\040images iso9660 ro,relatime,nojoliet,check=relaxed,map=binary,blocksize=2048 0 0
/dev/mapper/rhel-home /var/xdl/home xfs rw,seclabel,relatime,attr2,inode64,noquota 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw,relatime,lowerdir=/x,upperdir=/y,workdir=/z 0 0
/dev/loop0 /snap/core20/2105 squashfs ro,nodev,relatime,errors=continue 0 0
nfs01:/export/profiles /mnt/profiles nfs4 rw,relatime,vers=4.2,rsize=1048576,wsize=1048576 0 0
nsfs /run/netns/ns1 nsfs rw 0 0
tmpfs /run/user/1000 tmpfs rw,seclabel,nosuid,nodev,relatime,size=789872k,mode=700,uid=1000 0 0
";

    fn points(entries: &[MountEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.mount_point.as_str()).collect()
    }

    #[test]
    fn parses_fields_options_and_escapes() {
        let entries = parse_mounts(MOUNTS_RHEL9);
        assert_eq!(entries.len(), 18);
        let iso = entries.iter().find(|e| e.device == "/dev/sdb1").unwrap();
        assert_eq!(iso.mount_point, "/mnt/iso images");
        assert_eq!(iso.fs_type, "iso9660");
        assert!(iso.read_only);
        let root = entries.iter().find(|e| e.mount_point == "/").unwrap();
        assert_eq!(root.device, "/dev/mapper/rhel-root");
        assert!(!root.read_only, "`relatime` must not read as `ro`");
    }

    #[test]
    fn short_or_empty_lines_are_skipped() {
        assert!(parse_mounts("").is_empty());
        assert!(parse_mounts("garbage\n/dev/sda1 /boot\n").is_empty());
    }

    #[test]
    fn unescape_handles_all_kernel_escapes_and_leaves_the_rest() {
        assert_eq!(unescape(r"/a\040b\011c\012d\134e"), "/a b\tc\nd\\e");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
        assert_eq!(unescape(r"/not\999octal"), r"/not\999octal");
    }

    #[test]
    fn pseudo_filesystems_are_skipped() {
        for fs in [
            "proc", "sysfs", "tmpfs", "devtmpfs", "cgroup", "cgroup2", "overlay", "squashfs", "nsfs",
        ] {
            assert!(is_pseudo(fs), "{fs}");
        }
        for fs in ["ext4", "xfs", "btrfs", "nfs4", "cifs", "vfat", "zfs"] {
            assert!(!is_pseudo(fs), "{fs}");
        }
    }

    #[test]
    fn real_mounts_keep_each_filesystem_once() {
        let real = real_mounts(parse_mounts(MOUNTS_RHEL9));
        assert_eq!(
            points(&real),
            vec!["/", "/boot", "/home", "/mnt/iso images", "/mnt/profiles"]
        );
    }

    #[test]
    fn a_later_mount_hides_the_earlier_one_on_the_same_point() {
        let text = "/dev/sda2 /data ext4 rw 0 0\n/dev/sdc1 /data xfs ro 0 0\n";
        let real = real_mounts(parse_mounts(text));
        assert_eq!(real.len(), 1);
        assert_eq!(real[0].device, "/dev/sdc1");
        assert!(real[0].read_only);
    }

    #[test]
    fn a_device_mounted_twice_keeps_the_shortest_path() {
        let text = "/dev/sda2 /srv/a/b ext4 rw 0 0\n/dev/sda2 /srv ext4 rw 0 0\n";
        assert_eq!(points(&real_mounts(parse_mounts(text))), vec!["/srv"]);
    }

    #[test]
    fn percent_rounds_to_one_decimal() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(0, 100), 0.0);
        assert_eq!(percent(100, 100), 100.0);
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(2, 3), 66.7);
        assert_eq!(percent(1, 2000), 0.1);
        assert_eq!(percent(1, 20001), 0.0);
    }

    fn entry() -> MountEntry {
        MountEntry {
            device: "/dev/sda1".into(),
            mount_point: "/".into(),
            fs_type: "ext4".into(),
            read_only: false,
        }
    }

    #[test]
    fn disk_mount_computes_bytes_and_percentages() {
        let usage = Usage {
            fragment_size: 4096,
            blocks: 1000,
            blocks_available: 250,
            files: 800,
            files_free: 200,
        };
        let m = disk_mount(&entry(), &usage).unwrap();
        assert_eq!(m.total_bytes, 4_096_000);
        assert_eq!(m.available_bytes, 1_024_000);
        assert_eq!(m.free_percent, 25.0);
        assert_eq!(m.inodes_total, Some(800));
        assert_eq!(m.inodes_free, Some(200));
        assert_eq!(m.inodes_free_percent, Some(25.0));
    }

    #[test]
    fn no_inode_table_gives_none_and_no_size_gives_no_entry() {
        let mut usage = Usage {
            fragment_size: 4096,
            blocks: 10,
            blocks_available: 10,
            files: 0,
            files_free: 0,
        };
        let m = disk_mount(&entry(), &usage).unwrap();
        assert_eq!(
            (m.inodes_total, m.inodes_free, m.inodes_free_percent),
            (None, None, None)
        );
        usage.blocks = 0;
        assert_eq!(disk_mount(&entry(), &usage), None);
    }

    #[test]
    fn live_host_lists_mounts_without_pseudo_filesystems() {
        let ctx = crate::probes::testing::live();
        let Section::Disks(d) = crate::probes::testing::section(probe, &ctx) else {
            panic!("disks probe gave no disks section");
        };
        for m in &d.mounts {
            assert!(!is_pseudo(&m.fs_type), "{m:?}");
            assert!(
                m.total_bytes > 0 && (0.0..=100.0).contains(&m.free_percent),
                "{m:?}"
            );
        }
    }

    fn fixture_mounts(tree: &str) -> Vec<DiskMount> {
        let Section::Disks(d) =
            crate::probes::testing::section(probe, &crate::probes::testing::context(tree))
        else {
            panic!("disks probe gave no disks section");
        };
        d.mounts
    }

    #[test]
    fn healthy_fixture_has_its_real_mounts_only() {
        let mounts = fixture_mounts("rpm-healthy");
        let points: Vec<&str> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, ["/", "/boot", "/var"]);
        let root = &mounts[0];
        assert_eq!(
            (root.device.as_str(), root.fs_type.as_str()),
            ("/dev/mapper/rhel-root", "xfs")
        );
        assert_eq!(root.total_bytes, 13_107_200 * 4096);
        assert_eq!(root.free_percent, 62.5);
        assert_eq!(root.inodes_free_percent, Some(95.0));
    }

    #[test]
    fn full_root_disk_fixture_shows_three_percent_free() {
        let mounts = fixture_mounts("disk-full");
        let root = mounts.iter().find(|m| m.mount_point == "/").unwrap();
        assert_eq!(root.free_percent, 3.0);
        assert_eq!(root.available_bytes, 393_216 * 4096);
    }
}
