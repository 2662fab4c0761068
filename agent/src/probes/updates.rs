//! `updates` probe: pending reboot and pending (security) updates, from local state only.
//!
//! The package family comes from os-release(5) `ID`/`ID_LIKE`.
//! - Debian family: `/var/run/reboot-required` (written by update-notifier-common's and
//!   unattended-upgrades' hooks when an update needs a reboot; its mtime is when) and
//!   `/var/run/reboot-required.pkgs`; pending updates from `apt list --upgradable`, whose lines name
//!   the suites of the new version (`jammy-security`, `bookworm-security`): it reads the local
//!   package lists and never downloads.
//! - RPM family: `needs-restarting -r` (dnf-utils; exit 1 = reboot needed, 0 = not), and the
//!   installed kernels (`rpm -q kernel` with their install times) against the running one
//!   (`/proc/sys/kernel/osrelease`); pending security updates from
//!   `dnf -q --cacheonly updateinfo list --security` (`--cacheonly`: a probe never reaches the
//!   network; without a metadata cache dnf fails and the count is `None`).
//!
//! A tool that is missing, fails or runs out of the probe's time leaves its figure `None`: the
//! section still reports what the others said. dnf runs last because it is the slowest.
//!
//! The pending-update figures depend only on the package database and the local repository
//! metadata, and computing them is most of a live collect's time (about a second for `apt list` in
//! a Docker image without apt's binary cache). On the live host they are cached in
//! `STATE_DIR/cache/updates.json` under a fingerprint of those inputs (size and mtime of each file
//! and directory listed in [`DPKG_INPUTS`] / [`RPM_INPUTS`], and of the entries of the directories)
//! and reused while it is unchanged, for at most `[updates] max_cache_age_secs` (a repository can
//! publish without the local metadata showing it until its next refresh). The reboot figures are
//! cheap and always read live. The section says which run computed the figures
//! (`pending_computed_at`, `pending_from_cache`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;
use std::time::{Duration, Instant};

use callhome_shared::UpdatesSection;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::cache::ResultCache;
use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};
use crate::source::CommandOutput;

const MAX_PACKAGES: usize = 20;

/// Time kept back from a slow package tool for the probe to return its section.
const RESERVE: Duration = Duration::from_millis(300);

/// `apt list --upgradable` reads the same local lists as `apt-get -s upgrade` without running the
/// solver: 0.35 s against 2.7 s for 80 pending upgrades here (both with apt's package cache), which
/// is what keeps a live collect short.
const APT_UPGRADABLE: &[&str] = &["apt", "list", "--upgradable"];
const NEEDS_RESTARTING: &[&str] = &["needs-restarting", "-r"];
const RPM_KERNELS: &[&str] = &[
    "rpm",
    "-q",
    "kernel",
    "--qf",
    "%{VERSION}-%{RELEASE}.%{ARCH} %{INSTALLTIME}\\n",
];
const DNF_SECURITY: &[&str] = &["dnf", "-q", "--cacheonly", "updateinfo", "list", "--security"];

/// What `apt list --upgradable` answers from: the package database, the downloaded package lists,
/// and the sources, pins and options that select among them. Directories count with their entries.
const DPKG_INPUTS: &[&str] = &[
    "/var/lib/dpkg/status",
    "/var/lib/apt/lists",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d",
    "/etc/apt/preferences",
    "/etc/apt/preferences.d",
    "/etc/apt/apt.conf.d",
];
/// What `dnf --cacheonly updateinfo` answers from: the rpm database (its old and its
/// `/usr/lib/sysimage` place), dnf's (or yum's) metadata cache, and the repositories' definitions.
const RPM_INPUTS: &[&str] = &[
    "/var/lib/rpm",
    "/usr/lib/sysimage/rpm",
    "/var/cache/dnf",
    "/var/cache/yum",
    "/etc/yum.repos.d",
    "/etc/dnf/dnf.conf",
];

/// The pending-update figures, as cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    all: Option<u64>,
    security: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Dpkg,
    Rpm,
}

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let os = ctx
        .read_text("/etc/os-release")
        .or_else(|_| ctx.read_text("/usr/lib/os-release"))
        .unwrap_or_default();
    let Some(family) = family_of(&os) else {
        return Ok(ProbeOutput::NoData);
    };
    let running_kernel = ctx
        .read_text("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let mut section = UpdatesSection {
        running_kernel,
        ..UpdatesSection::default()
    };
    match family {
        Family::Dpkg => debian(ctx, &mut section),
        Family::Rpm => rpm(ctx, &mut section),
    }
    Ok(ProbeOutput::Section(Section::Updates(section)))
}

fn family_of(os_release: &str) -> Option<Family> {
    let os = super::system::parse_os_release(os_release);
    let ids: Vec<&str> = ["ID", "ID_LIKE"]
        .iter()
        .filter_map(|k| os.get(*k))
        .flat_map(|v| v.split_whitespace())
        .collect();
    if ids.iter().any(|id| matches!(*id, "debian" | "ubuntu")) {
        Some(Family::Dpkg)
    } else if ids.iter().any(|id| {
        matches!(
            *id,
            "rhel" | "fedora" | "centos" | "rocky" | "almalinux" | "ol" | "suse" | "sles"
        )
    }) {
        Some(Family::Rpm)
    } else {
        None
    }
}

fn debian(ctx: &ProbeContext, s: &mut UpdatesSection) {
    s.package_family = Some("dpkg".into());
    // /var/run is a symlink to /run on every current distribution; a tree may hold either.
    let flag = ["/var/run/reboot-required", "/run/reboot-required"]
        .iter()
        .map(|p| ctx.source.metadata(p))
        .find(|m| !matches!(m, Err(e) if e.kind() == io::ErrorKind::NotFound));
    match flag {
        None => s.reboot_required = Some(false),
        Some(Ok(meta)) => {
            s.reboot_required = Some(true);
            s.reboot_required_since = meta.modified;
            let pkgs = ctx
                .read_text("/var/run/reboot-required.pkgs")
                .or_else(|_| ctx.read_text("/run/reboot-required.pkgs"))
                .unwrap_or_default();
            s.reboot_packages = bounded_unique(pkgs.lines().map(str::trim));
        }
        Some(Err(_)) => {}
    }
    pending(ctx, Family::Dpkg, s, || {
        let out = run_slow(ctx, APT_UPGRADABLE).filter(|o| o.success())?;
        let (all, security) = parse_apt_upgradable(&out.stdout_text());
        Some(Pending {
            all: Some(all),
            security: Some(security),
        })
    });
}

fn rpm(ctx: &ProbeContext, s: &mut UpdatesSection) {
    s.package_family = Some("rpm".into());
    let kernels = ctx
        .run(RPM_KERNELS)
        .ok()
        .filter(|o| o.success())
        .map(|o| parse_rpm_kernels(&o.stdout_text()))
        .unwrap_or_default();
    let newest = kernels.iter().max_by_key(|(_, installed)| *installed).cloned();
    let newer_kernel_waits = match (&newest, &s.running_kernel) {
        (Some((newest, _)), Some(running)) => Some(newest != running),
        _ => None,
    };
    s.newest_kernel = newest.as_ref().map(|(k, _)| k.clone());

    let needs_restarting = ctx.run(NEEDS_RESTARTING).ok().and_then(|o| match o.status {
        Some(0) => Some((false, Vec::new())),
        Some(1) => Some((true, parse_needs_restarting(&o.stdout_text()))),
        _ => None,
    });
    match needs_restarting {
        Some((required, packages)) => {
            s.reboot_required = Some(required);
            s.reboot_packages = bounded_unique(packages.iter().map(String::as_str));
        }
        None => s.reboot_required = newer_kernel_waits,
    }
    if s.reboot_required == Some(true) && newer_kernel_waits == Some(true) {
        s.reboot_required_since = newest.map(|(_, installed)| installed);
    }
    pending(ctx, Family::Rpm, s, || {
        let out = run_slow(ctx, DNF_SECURITY).filter(|o| o.success())?;
        Some(Pending {
            all: None,
            security: Some(parse_dnf_security(&out.stdout_text())),
        })
    });
}

/// Fills the pending figures from the cache when it holds them for the current inputs, else from
/// `compute` (the package tool), caching what it found. `compute` gives `None` when the tool had no
/// answer: nothing is cached then, so the next run asks again.
fn pending(
    ctx: &ProbeContext,
    family: Family,
    s: &mut UpdatesSection,
    compute: impl FnOnce() -> Option<Pending>,
) {
    let max_age = Duration::from_secs(ctx.config.updates.max_cache_age_secs);
    let cache = ctx
        .cache_dir
        .as_deref()
        .filter(|_| !max_age.is_zero())
        .map(|dir| ResultCache::new(dir, "updates"));
    let before = cache.as_ref().and_then(|_| fingerprint(ctx, family));
    if let (Some(cache), Some(fp)) = (&cache, &before)
        && let Some(hit) = cache.load::<Pending>(fp, ctx.now(), max_age)
    {
        tracing::debug!(path = %cache.path().display(), "pending updates from the cache");
        set_pending(s, hit.value, hit.computed_at, true);
        return;
    }
    let computed_at = ctx.now();
    let Some(found) = compute() else {
        return;
    };
    set_pending(s, found, computed_at, false);
    // The inputs must not have changed while the tool ran (an `apt update` at the same moment), or
    // the figures may belong to neither state; the next run computes them again then.
    if let (Some(cache), Some(fp)) = (&cache, &before) {
        if fingerprint(ctx, family).as_ref() != Some(fp) {
            tracing::debug!("package inputs changed while the tool ran: not cached");
        } else if let Err(error) = cache.store(fp, computed_at, &found) {
            tracing::debug!(%error, "cannot cache the pending updates");
        }
    }
}

fn set_pending(s: &mut UpdatesSection, p: Pending, computed_at: OffsetDateTime, from_cache: bool) {
    s.pending_updates = p.all;
    s.pending_security_updates = p.security;
    s.pending_computed_at = Some(computed_at);
    s.pending_from_cache = from_cache;
}

/// A digest of the size and modification time of every input of the family's package tool (and of
/// the entries of those that are directories), and of the tool's command line. `None` when an input
/// exists but cannot be examined: then nothing can be known to be unchanged.
fn fingerprint(ctx: &ProbeContext, family: Family) -> Option<String> {
    let (inputs, argv) = match family {
        Family::Dpkg => (DPKG_INPUTS, APT_UPGRADABLE),
        Family::Rpm => (RPM_INPUTS, DNF_SECURITY),
    };
    let stamp = |m: &crate::source::Metadata| {
        let mtime = m.modified.map_or(0, OffsetDateTime::unix_timestamp_nanos);
        format!("{} {} {mtime}", u8::from(m.is_dir), m.len)
    };
    let mut text = argv.join(" ");
    for path in inputs {
        let meta = match ctx.source.metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = write!(text, "\n{path} absent");
                continue;
            }
            Err(error) => {
                tracing::debug!(path, %error, "package input unreadable: no cache");
                return None;
            }
        };
        let _ = write!(text, "\n{path} {}", stamp(&meta));
        if meta.is_dir {
            let entries = ctx.source.list_dir(path).ok()?;
            for entry in entries {
                let _ = write!(text, "\n{path}/{} {}", entry.name, stamp(&entry.metadata));
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    Some(digest.as_ref().iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    }))
}

/// Runs a slow package tool with the probe's remaining time minus [`RESERVE`], so that a tool that
/// runs out of time costs only its own figure, not the section. (apt rebuilds its package cache on
/// every run where the cache is disabled, as in Docker images: seconds instead of a fraction.)
fn run_slow(ctx: &ProbeContext, argv: &[&str]) -> Option<CommandOutput> {
    let left = ctx.deadline.saturating_duration_since(Instant::now());
    let budget = left.checked_sub(RESERVE)?;
    match ctx.source.run(argv, budget) {
        Ok(out) => Some(out),
        Err(error) => {
            tracing::debug!(command = argv[0], %error, "package tool gave no answer");
            None
        }
    }
}

fn bounded_unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .filter(|p| !p.is_empty() && seen.insert(*p))
        .take(MAX_PACKAGES)
        .map(str::to_string)
        .collect()
}

/// `apt list --upgradable`: `NAME/SUITE[,SUITE...] VERSION ARCH [upgradable from: OLD]` per package
/// (after a `Listing...` line). A package counts as a security update when one of the suites that
/// carries its new version is a `-security` suite (`jammy-security`, `bookworm-security`).
fn parse_apt_upgradable(text: &str) -> (u64, u64) {
    let mut all = 0;
    let mut security = 0;
    for line in text.lines().filter(|l| l.contains("[upgradable from:")) {
        let Some((_, rest)) = line.split_once('/') else {
            continue;
        };
        all += 1;
        let suites = rest.split_whitespace().next().unwrap_or_default();
        if suites
            .split(',')
            .any(|suite| suite.to_ascii_lowercase().ends_with("-security"))
        {
            security += 1;
        }
    }
    (all, security)
}

/// `rpm -q kernel --qf '%{VERSION}-%{RELEASE}.%{ARCH} %{INSTALLTIME}\n'`: `version-release.arch`
/// and install time (seconds since the epoch), one line per installed kernel. ("package kernel is
/// not installed" lines do not parse and are skipped.)
fn parse_rpm_kernels(text: &str) -> Vec<(String, OffsetDateTime)> {
    text.lines()
        .filter_map(|line| {
            let (name, installed) = line.trim().rsplit_once(' ')?;
            let installed = OffsetDateTime::from_unix_timestamp(installed.parse().ok()?).ok()?;
            (!name.contains(' ')).then(|| (name.to_string(), installed))
        })
        .collect()
}

/// `needs-restarting -r` exit 1 lists what changed as `  * kernel` lines.
fn parse_needs_restarting(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("* "))
        .map(|p| p.trim().to_string())
        .collect()
}

/// `dnf updateinfo list --security`: `ADVISORY SEVERITY/Sec. PACKAGE-NEVRA` per advisory and
/// package; the count is of distinct packages.
fn parse_dnf_security(text: &str) -> u64 {
    let packages: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let advisory = cols.next()?;
            let kind = cols.next()?;
            let package = cols.next()?;
            (advisory.contains('-') && kind.contains("Sec")).then_some(package)
        })
        .collect();
    packages.len() as u64
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, _now: OffsetDateTime) {
    std::hint::black_box(family_of(text));
    std::hint::black_box(parse_apt_upgradable(text));
    std::hint::black_box(parse_rpm_kernels(text));
    std::hint::black_box(parse_needs_restarting(text));
    std::hint::black_box(parse_dnf_security(text));
    std::hint::black_box(bounded_unique(text.lines()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;
    use time::macros::datetime;

    const APT_JAMMY: &str = "\
Listing...
libssl3/jammy-updates,jammy-security 3.0.2-0ubuntu1.18 amd64 [upgradable from: 3.0.2-0ubuntu1.15]
openssl/jammy-updates,jammy-security 3.0.2-0ubuntu1.18 amd64 [upgradable from: 3.0.2-0ubuntu1.15]
tzdata/jammy-updates 2024a-0ubuntu0.22.04.1 all [upgradable from: 2024a-0ubuntu0.22.04]
";

    #[test]
    fn apt_upgradable_counts_packages_and_security_suites() {
        assert_eq!(parse_apt_upgradable(APT_JAMMY), (3, 2));
        let bookworm =
            "Listing...\nlibc6/stable-security 2.36-9+deb12u4 amd64 [upgradable from: 2.36-9+deb12u3]\n";
        assert_eq!(parse_apt_upgradable(bookworm), (1, 1));
        assert_eq!(parse_apt_upgradable("Listing...\n"), (0, 0));
        // A package named like a security suite is not a security update by itself.
        assert_eq!(
            parse_apt_upgradable("x-security-tools/stable 2 all [upgradable from: 1]\n"),
            (1, 0)
        );
    }

    #[test]
    fn rpm_kernel_list_and_needs_restarting() {
        let kernels = parse_rpm_kernels(
            "5.14.0-427.13.1.el9_4.x86_64 1713343959\n5.14.0-427.42.1.el9_4.x86_64 1795000000\npackage kernel-rt is not installed\n",
        );
        assert_eq!(kernels.len(), 2);
        assert_eq!(kernels[1].0, "5.14.0-427.42.1.el9_4.x86_64");
        assert_eq!(
            parse_needs_restarting(
                "Core libraries or services have been updated since boot-up:\n  * kernel\n  * systemd\n\nReboot is required to fully utilize these updates.\nMore information: https://access.redhat.com/solutions/27943\n"
            ),
            vec!["kernel", "systemd"]
        );
    }

    #[test]
    fn dnf_security_counts_distinct_packages() {
        let text = "\
RHSA-2024:9315 Important/Sec. kernel-5.14.0-427.42.1.el9_4.x86_64
RHSA-2024:9315 Important/Sec. kernel-core-5.14.0-427.42.1.el9_4.x86_64
RHSA-2024:9401 Moderate/Sec.  kernel-core-5.14.0-427.42.1.el9_4.x86_64
RHSA-2024:8856 Low/Sec.       openssl-libs-1:3.0.7-28.el9_4.x86_64
Error: Cache-only enabled but no cache for 'rhel-9-for-x86_64-baseos-rpms'
";
        assert_eq!(parse_dnf_security(text), 3);
        assert_eq!(parse_dnf_security(""), 0);
    }

    #[test]
    fn os_release_decides_the_family() {
        assert_eq!(family_of("ID=ubuntu\nID_LIKE=debian\n"), Some(Family::Dpkg));
        assert_eq!(family_of("ID=\"rhel\"\nID_LIKE=\"fedora\"\n"), Some(Family::Rpm));
        assert_eq!(
            family_of("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            Some(Family::Rpm)
        );
        assert_eq!(family_of("ID=alpine\n"), None);
    }

    #[test]
    fn rpm_healthy_runs_its_newest_kernel_and_has_no_pending_security_update() {
        let Section::Updates(s) = testing::section(probe, &testing::context("rpm-healthy")) else {
            panic!()
        };
        assert_eq!(s.package_family.as_deref(), Some("rpm"));
        assert_eq!(s.reboot_required, Some(false));
        assert_eq!(s.reboot_required_since, None);
        assert_eq!(s.newest_kernel, s.running_kernel);
        assert_eq!(s.pending_security_updates, Some(0));
        assert_eq!(s.pending_updates, None);
    }

    #[test]
    fn disk_full_waits_for_a_reboot_into_a_newer_kernel_and_dnf_has_no_cache() {
        let Section::Updates(s) = testing::section(probe, &testing::context("disk-full")) else {
            panic!()
        };
        assert_eq!(s.reboot_required, Some(true));
        assert_eq!(s.reboot_packages, vec!["kernel", "linux-firmware"]);
        assert_eq!(s.running_kernel.as_deref(), Some("5.14.0-427.13.1.el9_4.x86_64"));
        assert_eq!(s.newest_kernel.as_deref(), Some("5.14.0-427.42.1.el9_4.x86_64"));
        assert_eq!(s.reboot_required_since, Some(datetime!(2026-11-12 03:12:45 UTC)));
        assert_eq!(s.pending_security_updates, None);
    }

    #[test]
    fn deb_healthy_has_no_reboot_flag_and_two_plain_updates() {
        let Section::Updates(s) = testing::section(probe, &testing::context("deb-healthy")) else {
            panic!()
        };
        assert_eq!(s.package_family.as_deref(), Some("dpkg"));
        assert_eq!(s.reboot_required, Some(false));
        assert_eq!(
            (s.pending_updates, s.pending_security_updates),
            (Some(2), Some(0))
        );
        assert_eq!(s.newest_kernel, None);
    }

    #[test]
    fn debian_reboot_flag_gives_since_and_packages() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            ".callhome/capture.json",
            r#"{"captured_at": "2026-11-20T09:00:00Z"}"#,
        );
        write(
            ".callhome/files.json",
            r#"{"/var/run/reboot-required": {"len": 32, "is_dir": false, "modified": "2026-11-14T06:25:03Z"}}"#,
        );
        write("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        write("var/run/reboot-required", "*** System restart required ***\n");
        write(
            "var/run/reboot-required.pkgs",
            "linux-image-6.1.0-27-amd64\nlibc6\nlibc6\n",
        );
        let key = crate::source::command_key(APT_UPGRADABLE);
        write(&format!(".callhome/commands/{key}/stdout"), APT_JAMMY);
        let ctx = testing::context(root.to_str().unwrap());
        let Section::Updates(s) = testing::section(probe, &ctx) else {
            panic!()
        };
        assert_eq!(s.reboot_required, Some(true));
        assert_eq!(s.reboot_required_since, Some(datetime!(2026-11-14 06:25:03 UTC)));
        assert_eq!(s.reboot_packages, vec!["linux-image-6.1.0-27-amd64", "libc6"]);
        assert_eq!(
            (s.pending_updates, s.pending_security_updates),
            (Some(3), Some(2))
        );
    }

    /// A Debian tree whose package inputs have the given dpkg status size and whose apt answers
    /// `apt_stdout`, captured at `at`, with the cache in `cache`. Times and sizes come from
    /// files.json, so that only what a test changes changes.
    fn debian_tree(
        root: &std::path::Path,
        cache: &std::path::Path,
        at: &str,
        status_len: u64,
        apt_stdout: &str,
    ) -> ProbeContext {
        let write = |path: &str, text: &str| {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(".callhome/capture.json", &format!(r#"{{"captured_at": "{at}"}}"#));
        write(
            ".callhome/files.json",
            &format!(
                r#"{{
  "/var/lib/dpkg/status": {{"len": {status_len}, "is_dir": false, "modified": "2026-11-18T06:00:00Z"}},
  "/var/lib/apt/lists": {{"len": 4096, "is_dir": true, "modified": "2026-11-19T06:00:00Z"}},
  "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages": {{"len": 9000, "is_dir": false, "modified": "2026-11-19T06:00:00Z"}}
}}"#
            ),
        );
        write("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        write("var/lib/dpkg/status", "Package: libc6\n");
        write(
            "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages",
            "Package: libc6\n",
        );
        let key = crate::source::command_key(APT_UPGRADABLE);
        write(&format!(".callhome/commands/{key}/stdout"), apt_stdout);
        ProbeContext {
            source: std::sync::Arc::new(crate::source::Tree::open(root).unwrap()),
            cache_dir: Some(cache.to_path_buf()),
            ..testing::context("rpm-healthy")
        }
    }

    fn updates(ctx: &ProbeContext) -> UpdatesSection {
        let Section::Updates(s) = testing::section(probe, ctx) else {
            panic!()
        };
        s
    }

    const APT_ONE: &str =
        "Listing...\nlibc6/stable-security 2.36-9+deb12u4 amd64 [upgradable from: 2.36-9+deb12u3]\n";

    #[test]
    fn pending_updates_are_cached_until_the_package_inputs_change() {
        let (tree, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let at = "2026-11-20T09:00:00Z";
        let first = updates(&debian_tree(tree.path(), cache.path(), at, 100, APT_JAMMY));
        assert_eq!(
            (first.pending_updates, first.pending_security_updates),
            (Some(3), Some(2))
        );
        assert_eq!(
            first.pending_computed_at,
            Some(datetime!(2026-11-20 09:00:00 UTC))
        );
        assert!(!first.pending_from_cache);

        // apt would now say otherwise, but nothing it reads has changed: it is not asked.
        let ctx = debian_tree(tree.path(), cache.path(), "2026-11-20T10:00:00Z", 100, APT_ONE);
        let hit = updates(&ctx);
        assert!(hit.pending_from_cache);
        assert_eq!(
            (hit.pending_updates, hit.pending_security_updates),
            (Some(3), Some(2))
        );
        assert_eq!(hit.pending_computed_at, first.pending_computed_at);
        // The reboot figures are read live, whatever the cache holds.
        assert_eq!(hit.reboot_required, Some(false));

        // A package installed: the database changed, apt is asked again and the cache follows.
        let ctx = debian_tree(tree.path(), cache.path(), "2026-11-20T11:00:00Z", 180, APT_ONE);
        let changed = updates(&ctx);
        assert!(!changed.pending_from_cache);
        assert_eq!(
            (changed.pending_updates, changed.pending_security_updates),
            (Some(1), Some(1))
        );
        assert_eq!(
            changed.pending_computed_at,
            Some(datetime!(2026-11-20 11:00:00 UTC))
        );
        assert!(updates(&ctx).pending_from_cache);
    }

    #[test]
    fn a_cached_answer_older_than_the_maximum_age_is_computed_again() {
        let (tree, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        updates(&debian_tree(
            tree.path(),
            cache.path(),
            "2026-11-20T09:00:00Z",
            100,
            APT_JAMMY,
        ));
        let day_later = debian_tree(tree.path(), cache.path(), "2026-11-21T08:59:00Z", 100, APT_ONE);
        assert!(updates(&day_later).pending_from_cache);
        let expired = debian_tree(tree.path(), cache.path(), "2026-11-21T09:01:00Z", 100, APT_ONE);
        let s = updates(&expired);
        assert!(!s.pending_from_cache);
        assert_eq!(s.pending_updates, Some(1));

        // A maximum age of 0 turns the cache off: apt is asked every time.
        let config = crate::config::Config::from_toml("[updates]\nmax_cache_age_secs = 0\n").unwrap();
        let off = ProbeContext {
            config: std::sync::Arc::new(config),
            ..debian_tree(tree.path(), cache.path(), "2026-11-21T09:02:00Z", 100, APT_JAMMY)
        };
        let s = updates(&off);
        assert!(!s.pending_from_cache);
        assert_eq!(s.pending_updates, Some(3));
    }

    #[test]
    fn a_corrupt_cache_file_is_ignored_and_rewritten() {
        let (tree, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(cache.path().join("updates.json"), "{\"format\": 1, \"fing").unwrap();
        let ctx = debian_tree(tree.path(), cache.path(), "2026-11-20T09:00:00Z", 100, APT_JAMMY);
        let s = updates(&ctx);
        assert!(!s.pending_from_cache);
        assert_eq!(s.pending_updates, Some(3));
        assert!(updates(&ctx).pending_from_cache);
    }

    #[test]
    fn without_an_answer_nothing_is_cached() {
        let (tree, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ctx = debian_tree(tree.path(), cache.path(), "2026-11-20T09:00:00Z", 100, APT_JAMMY);
        let key = crate::source::command_key(APT_UPGRADABLE);
        std::fs::write(
            tree.path().join(format!(".callhome/commands/{key}/status")),
            "100",
        )
        .unwrap();
        let s = updates(&ctx);
        assert_eq!((s.pending_updates, s.pending_computed_at), (None, None));
        assert!(!cache.path().join("updates.json").exists());
    }

    #[test]
    fn the_fingerprint_follows_the_package_inputs() {
        let (tree, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let at = "2026-11-20T09:00:00Z";
        let fp = |ctx: &ProbeContext, family| fingerprint(ctx, family).unwrap();
        let ctx = debian_tree(tree.path(), cache.path(), at, 100, APT_JAMMY);
        let base = fp(&ctx, Family::Dpkg);
        assert_eq!(base.len(), 64);
        assert_eq!(
            fp(
                &debian_tree(tree.path(), cache.path(), at, 100, APT_ONE),
                Family::Dpkg
            ),
            base
        );
        assert_ne!(fp(&ctx, Family::Rpm), base);
        // A new package list (an added repository, an `apt update`).
        let lists = tree.path().join("var/lib/apt/lists");
        std::fs::write(
            lists.join("deb.debian.org_debian_dists_bookworm-updates_InRelease"),
            "x",
        )
        .unwrap();
        let ctx = debian_tree(tree.path(), cache.path(), at, 100, APT_JAMMY);
        let with_list = fp(&ctx, Family::Dpkg);
        assert_ne!(with_list, base);
        // A new pin in a configuration directory.
        std::fs::create_dir_all(tree.path().join("etc/apt/preferences.d")).unwrap();
        std::fs::write(tree.path().join("etc/apt/preferences.d/pin"), "Package: *\n").unwrap();
        assert_ne!(fp(&ctx, Family::Dpkg), with_list);
    }

    #[test]
    fn fixtures_never_use_the_cache() {
        let s = updates(&testing::context("deb-healthy"));
        assert!(!s.pending_from_cache);
        assert_eq!(s.pending_computed_at, Some(testing::context("deb-healthy").now()));
    }
}
