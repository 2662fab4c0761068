//! What changed between two snapshots of one host: the start of a root-cause analysis.
//!
//! Pure: two typed snapshots in, a list of typed changes out. Only facts a TAM would act on are
//! compared (packages, configuration, service and listener states, certificates, updates, time
//! sync, identity, disks, agent); counters and timestamps that move on every run (log counts, uptime,
//! `since`, `days_left`) are left out, and disk space only counts past [`DISK_FREE_THRESHOLD_POINTS`],
//! so that an empty diff means "nothing that matters changed".
//!
//! A section one snapshot has and the other lacks is one change (`field` = `section`) and is not
//! compared further: its probe found nothing, failed or was disabled, which the values say.

use std::collections::{BTreeMap, BTreeSet};

use callhome_shared::sections::{
    CertificatesSection, ControllersSection, DisksSection, IdentitySection, ListenersSection, ServiceUnit,
    ServicesSection, SystemSection, TimesyncSection, UpdatesSection, VdaSection,
};
use callhome_shared::{ProbeOutcome, Snapshot};
use serde::Serialize;

/// Free space on a mount must move by at least this many percentage points to count as a change.
pub const DISK_FREE_THRESHOLD_POINTS: f64 = 5.0;
/// A total size must move by more than this share to count as a resize (filesystems round).
const DISK_RESIZE_SHARE: f64 = 0.01;
/// A clock offset must move by at least this much to count (it wanders by milliseconds every run).
const TIME_OFFSET_THRESHOLD_MS: f64 = 1000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One difference: in `section`, the `field` of `item` went from `before` to `after` (`None`: not
/// there, or not known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub section: &'static str,
    /// The object within the section: a unit, a mount, a port, a certificate; empty for the
    /// section's own values.
    pub item: String,
    pub field: &'static str,
    pub kind: ChangeKind,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The changes from `before` to `after`, in a stable order (section by section, as listed in the
/// module note).
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut d = Diff::default();
    host(&mut d, before, after);
    let (b, a) = (&before.sections, &after.sections);
    let probe = |s: &Snapshot, name: &str| s.probes.get(name).map(|p| outcome(p.outcome));
    macro_rules! section {
        ($name:literal, $field:ident, $f:expr) => {
            match (&b.$field, &a.$field) {
                (Some(x), Some(y)) => $f(&mut d, x, y),
                (None, None) => {}
                (x, y) => d.push(
                    $name,
                    "",
                    "section",
                    x.as_ref()
                        .map(|_| "reported".to_owned())
                        .or_else(|| probe(before, $name).map(|o| format!("not reported ({o})"))),
                    y.as_ref()
                        .map(|_| "reported".to_owned())
                        .or_else(|| probe(after, $name).map(|o| format!("not reported ({o})")))
                        .or_else(|| Some("not reported".to_owned())),
                ),
            }
        };
    }
    section!("system", system, system);
    section!("vda", vda, vda);
    section!("controllers", controllers, controllers);
    section!("services", services, services);
    section!("listeners", listeners, listeners);
    section!("certificates", certificates, certificates);
    section!("updates", updates, updates);
    section!("timesync", timesync, timesync);
    section!("identity", identity, identity);
    section!("disks", disks, disks);
    // Sections compared for presence only: their content is counts and recent events.
    section!(
        "memory_pressure",
        memory_pressure,
        |_: &mut Diff, _: &_, _: &_| {}
    );
    section!("crashes", crashes, |_: &mut Diff, _: &_, _: &_| {});
    section!("logs", logs, |_: &mut Diff, _: &_, _: &_| {});
    d.changes
}

#[derive(Debug, Default)]
struct Diff {
    changes: Vec<Change>,
}

impl Diff {
    fn push(
        &mut self,
        section: &'static str,
        item: impl Into<String>,
        field: &'static str,
        before: Option<String>,
        after: Option<String>,
    ) {
        if before == after {
            return;
        }
        let kind = match (&before, &after) {
            (None, Some(_)) => ChangeKind::Added,
            (Some(_), None) => ChangeKind::Removed,
            _ => ChangeKind::Changed,
        };
        self.changes.push(Change {
            section,
            item: item.into(),
            field,
            kind,
            before,
            after,
        });
    }

    /// A value that is always there (a `None` would read as "added"/"removed").
    fn value(&mut self, section: &'static str, item: &str, field: &'static str, b: String, a: String) {
        if b != a {
            self.changes.push(Change {
                section,
                item: item.to_owned(),
                field,
                kind: ChangeKind::Changed,
                before: Some(b),
                after: Some(a),
            });
        }
    }

    /// An optional value: `None` shows as "unknown", so "was false, now unknown" is a change, not
    /// a removal.
    fn known<T: ToString>(
        &mut self,
        section: &'static str,
        item: &str,
        field: &'static str,
        b: Option<T>,
        a: Option<T>,
    ) {
        self.value(section, item, field, known(b), known(a));
    }
}

fn outcome(o: ProbeOutcome) -> &'static str {
    match o {
        ProbeOutcome::Ok => "ok",
        ProbeOutcome::NoData => "no data",
        ProbeOutcome::Failed => "failed",
        ProbeOutcome::TimedOut => "timed out",
    }
}

fn known<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(", ")
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn host(d: &mut Diff, b: &Snapshot, a: &Snapshot) {
    d.value(
        "host",
        "",
        "hostname",
        b.host.hostname.clone(),
        a.host.hostname.clone(),
    );
    d.value(
        "host",
        "",
        "role",
        b.host.role.to_string(),
        a.host.role.to_string(),
    );
    d.value("host", "", "os", b.host.os.clone(), a.host.os.clone());
    d.value("host", "", "kernel", b.host.kernel.clone(), a.host.kernel.clone());
    d.value(
        "agent",
        "",
        "version",
        b.agent.version.clone(),
        a.agent.version.clone(),
    );
}

fn system(d: &mut Diff, b: &SystemSection, a: &SystemSection) {
    d.value(
        "system",
        "",
        "cpu_count",
        b.cpu_count.to_string(),
        a.cpu_count.to_string(),
    );
    let gib = |x: u64| format!("{:.1} GiB", x as f64 / f64::from(1u32 << 30));
    if resized(b.memory.total_bytes, a.memory.total_bytes) {
        d.value(
            "system",
            "",
            "memory_total",
            gib(b.memory.total_bytes),
            gib(a.memory.total_bytes),
        );
    }
}

fn resized(b: u64, a: u64) -> bool {
    let (b, a) = (b as f64, a as f64);
    (a - b).abs() > b.max(a) * DISK_RESIZE_SHARE
}

fn vda(d: &mut Diff, b: &VdaSection, a: &VdaSection) {
    d.value("vda", "", "package", b.package.clone(), a.package.clone());
    d.value("vda", "", "version", b.version.clone(), a.version.clone());
    d.known(
        "vda",
        "",
        "controllers",
        b.controllers.as_deref().map(list),
        a.controllers.as_deref().map(list),
    );
    let state = |v: &VdaSection| format!("{:?}", v.registration.state).to_lowercase();
    d.value("vda", "", "registration", state(b), state(a));
    d.known(
        "vda",
        "",
        "verbose_logging",
        b.verbose_logging.map(yes_no),
        a.verbose_logging.map(yes_no),
    );
}

fn controllers(d: &mut Diff, b: &ControllersSection, a: &ControllersSection) {
    d.value("controllers", "", "port", b.port.to_string(), a.port.to_string());
    d.known(
        "controllers",
        "",
        "list_error",
        b.list_error.as_ref(),
        a.list_error.as_ref(),
    );
    // Which controllers are configured is the VDA's `controllers` list; here, how each one fares.
    for bc in &b.controllers {
        let Some(ac) = a.controllers.iter().find(|c| c.name == bc.name) else {
            continue;
        };
        d.value(
            "controllers",
            &bc.name,
            "addresses",
            list(&bc.addresses),
            list(&ac.addresses),
        );
        let reach = |c: &callhome_shared::sections::ControllerCheck| {
            if c.reachable {
                "yes".to_owned()
            } else {
                format!("no ({})", c.connect_error_kind.as_deref().unwrap_or("unknown"))
            }
        };
        d.value("controllers", &bc.name, "reachable", reach(bc), reach(ac));
    }
}

fn unit_state(u: &ServiceUnit) -> String {
    if !u.installed {
        return "not installed".to_owned();
    }
    let mut s = format!(
        "{}/{}",
        u.active_state.as_deref().unwrap_or("unknown"),
        u.sub_state.as_deref().unwrap_or("unknown")
    );
    if let Some(r) = u.result.as_deref().filter(|r| *r != "success") {
        s.push_str(&format!(" ({r})"));
    }
    s
}

fn services(d: &mut Diff, b: &ServicesSection, a: &ServicesSection) {
    let names: BTreeSet<&str> = b.units.iter().chain(&a.units).map(|u| u.name.as_str()).collect();
    for name in ordered(&b.units, &a.units) {
        let bu = b.units.iter().find(|u| u.name == name);
        let au = a.units.iter().find(|u| u.name == name);
        match (bu, au) {
            (Some(x), Some(y)) => {
                d.value("services", name, "state", unit_state(x), unit_state(y));
                d.known(
                    "services",
                    name,
                    "enabled",
                    x.unit_file_state.as_ref(),
                    y.unit_file_state.as_ref(),
                );
                d.known("services", name, "restarts", x.restarts, y.restarts);
            }
            (x, y) => d.push("services", name, "state", x.map(unit_state), y.map(unit_state)),
        }
    }
    // Failed units beyond the ones followed above (any unit on the host).
    let followed = |u: &&String| !names.contains(u.as_str());
    let bf: BTreeSet<&String> = b.failed_units.iter().filter(followed).collect();
    let af: BTreeSet<&String> = a.failed_units.iter().filter(followed).collect();
    for u in bf.union(&af) {
        d.push(
            "services",
            u.as_str(),
            "failed",
            bf.contains(u).then(|| "failed".to_owned()),
            af.contains(u).then(|| "failed".to_owned()),
        );
    }
}

/// Unit names in the order they appear (before's order, then the ones only after has).
fn ordered<'a>(b: &'a [ServiceUnit], a: &'a [ServiceUnit]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for u in b.iter().chain(a) {
        if !out.contains(&u.name.as_str()) {
            out.push(&u.name);
        }
    }
    out
}

fn listeners(d: &mut Diff, b: &ListenersSection, a: &ListenersSection) {
    let state = |s: &ListenersSection| -> BTreeMap<u16, String> {
        s.ports
            .iter()
            .map(|p| {
                let v = if p.listening {
                    format!("listening on {}", list(&p.addresses))
                } else {
                    "closed".to_owned()
                };
                (p.port, v)
            })
            .collect()
    };
    let (bs, as_) = (state(b), state(a));
    let ports: BTreeSet<u16> = bs.keys().chain(as_.keys()).copied().collect();
    for p in ports {
        let purpose = b
            .ports
            .iter()
            .chain(&a.ports)
            .find(|x| x.port == p)
            .map_or(String::new(), |x| format!(" ({})", x.purpose));
        d.push(
            "listeners",
            format!("{p}{purpose}"),
            "state",
            bs.get(&p).cloned(),
            as_.get(&p).cloned(),
        );
    }
}

fn certificates(d: &mut Diff, b: &CertificatesSection, a: &CertificatesSection) {
    // A certificate is known by its file and subject: a renewal keeps both and changes the expiry.
    let by_key = |s: &CertificatesSection| -> BTreeMap<(String, String), (String, String)> {
        s.certificates
            .iter()
            .map(|c| {
                (
                    (c.path.clone(), c.subject.clone()),
                    (rfc3339(c.not_after), c.sha256_fingerprint.clone()),
                )
            })
            .collect()
    };
    let (bk, ak) = (by_key(b), by_key(a));
    let keys: BTreeSet<&(String, String)> = bk.keys().chain(ak.keys()).collect();
    for key in keys {
        let item = format!("{} ({})", key.1, key.0);
        match (bk.get(key), ak.get(key)) {
            (Some((bx, bf)), Some((ax, af))) => {
                d.value("certificates", &item, "expires", bx.clone(), ax.clone());
                d.value("certificates", &item, "fingerprint", bf.clone(), af.clone());
            }
            (x, y) => d.push(
                "certificates",
                item,
                "certificate",
                x.map(|(e, _)| format!("expires {e}")),
                y.map(|(e, _)| format!("expires {e}")),
            ),
        }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn updates(d: &mut Diff, b: &UpdatesSection, a: &UpdatesSection) {
    d.known(
        "updates",
        "",
        "pending_updates",
        b.pending_updates,
        a.pending_updates,
    );
    d.known(
        "updates",
        "",
        "pending_security_updates",
        b.pending_security_updates,
        a.pending_security_updates,
    );
    d.known(
        "updates",
        "",
        "reboot_required",
        b.reboot_required.map(yes_no),
        a.reboot_required.map(yes_no),
    );
}

fn timesync(d: &mut Diff, b: &TimesyncSection, a: &TimesyncSection) {
    d.known(
        "timesync",
        "",
        "synchronized",
        b.synchronized.map(yes_no),
        a.synchronized.map(yes_no),
    );
    d.known(
        "timesync",
        "",
        "ntp_enabled",
        b.ntp_enabled.map(yes_no),
        a.ntp_enabled.map(yes_no),
    );
    d.known(
        "timesync",
        "",
        "reference",
        b.reference.as_ref(),
        a.reference.as_ref(),
    );
    let moved = match (b.offset_ms, a.offset_ms) {
        (Some(x), Some(y)) => (x - y).abs() >= TIME_OFFSET_THRESHOLD_MS,
        (x, y) => x.is_some() != y.is_some(),
    };
    if moved {
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.0} ms"));
        d.known("timesync", "", "offset", ms(b.offset_ms), ms(a.offset_ms));
    }
    d.known(
        "timesync",
        "",
        "kerberos_clockskew_secs",
        b.kerberos_clockskew_secs,
        a.kerberos_clockskew_secs,
    );
}

fn identity(d: &mut Diff, b: &IdentitySection, a: &IdentitySection) {
    d.value(
        "identity",
        "",
        "short_name",
        b.hostname.short_name.clone(),
        a.hostname.short_name.clone(),
    );
    d.known(
        "identity",
        "",
        "fqdn",
        b.hostname.fqdn.as_ref(),
        a.hostname.fqdn.as_ref(),
    );
    d.known(
        "identity",
        "",
        "default_realm",
        b.kerberos.default_realm.as_ref(),
        a.kerberos.default_realm.as_ref(),
    );
    let keytab = |s: &IdentitySection| {
        s.kerberos.keytab.as_ref().map(|k| {
            format!(
                "{} entries, host principal {}",
                k.entries,
                if k.host_principal_present {
                    "present"
                } else {
                    "missing"
                }
            )
        })
    };
    d.known("identity", "", "keytab", keytab(b), keytab(a));
    let domain = |s: &IdentitySection| {
        s.domain.as_ref().map(|m| {
            let joined = match m.joined {
                Some(true) => "joined",
                Some(false) => "not joined",
                None => "join state unknown",
            };
            let mut out = format!(
                "{} ({joined}",
                m.domain.as_deref().or(m.realm.as_deref()).unwrap_or("no domain")
            );
            if let Some(c) = &m.client_software {
                out.push_str(&format!(", {c}"));
            }
            match m.sssd_online {
                Some(true) => out.push_str(", online"),
                Some(false) => out.push_str(", offline"),
                None => {}
            }
            if m.winbind_trust_ok == Some(false) {
                out.push_str(", trust broken");
            }
            out.push(')');
            out
        })
    };
    d.known("identity", "", "domain", domain(b), domain(a));
    d.value(
        "identity",
        "",
        "nameservers",
        list(&b.resolver.nameservers),
        list(&a.resolver.nameservers),
    );
    d.value(
        "identity",
        "",
        "search",
        list(&b.resolver.search),
        list(&a.resolver.search),
    );
    d.value(
        "identity",
        "",
        "nsswitch_hosts",
        list(&b.nsswitch.hosts),
        list(&a.nsswitch.hosts),
    );
    d.value(
        "identity",
        "",
        "nsswitch_passwd",
        list(&b.nsswitch.passwd),
        list(&a.nsswitch.passwd),
    );
}

fn disks(d: &mut Diff, b: &DisksSection, a: &DisksSection) {
    let mut points: Vec<&str> = Vec::new();
    for m in b.mounts.iter().chain(&a.mounts) {
        if !points.contains(&m.mount_point.as_str()) {
            points.push(&m.mount_point);
        }
    }
    let gib = |x: u64| format!("{:.1} GiB", x as f64 / f64::from(1u32 << 30));
    for p in points {
        let bm = b.mounts.iter().find(|m| m.mount_point == p);
        let am = a.mounts.iter().find(|m| m.mount_point == p);
        match (bm, am) {
            (Some(x), Some(y)) => {
                d.value("disks", p, "device", x.device.clone(), y.device.clone());
                d.value(
                    "disks",
                    p,
                    "read_only",
                    yes_no(x.read_only).into(),
                    yes_no(y.read_only).into(),
                );
                if resized(x.total_bytes, y.total_bytes) {
                    d.value("disks", p, "size", gib(x.total_bytes), gib(y.total_bytes));
                }
                if (x.free_percent - y.free_percent).abs() >= DISK_FREE_THRESHOLD_POINTS {
                    let free = |m: &callhome_shared::sections::DiskMount| {
                        format!("{:.1} % ({} free)", m.free_percent, gib(m.available_bytes))
                    };
                    d.value("disks", p, "free", free(x), free(y));
                }
            }
            (x, y) => {
                let mount = |m: &callhome_shared::sections::DiskMount| {
                    format!(
                        "{} {}, {} ({:.1} % free)",
                        m.device,
                        m.fs_type,
                        gib(m.total_bytes),
                        m.free_percent
                    )
                };
                d.push("disks", p, "mount", x.map(mount), y.map(mount));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed_cmd::fixture;
    use time::Duration;

    fn golden(name: &str) -> Snapshot {
        fixture(name, Duration::ZERO).unwrap()
    }

    /// `section/item/field: before -> after`, one line per change.
    fn lines(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                format!(
                    "{}/{}/{}: {} -> {}",
                    c.section,
                    c.item,
                    c.field,
                    c.before.as_deref().unwrap_or("-"),
                    c.after.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    fn changes(from: &str, to: &str) -> Vec<String> {
        lines(&diff(&golden(from), &golden(to)))
    }

    #[test]
    fn same_snapshot_has_no_changes() {
        for (name, _) in crate::seed_cmd::FIXTURES {
            assert_eq!(changes(name, name), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn healthy_to_service_flapping() {
        assert_eq!(
            changes("rpm-healthy", "service-flapping"),
            [
                "host//hostname: vda-rh01 -> vda-rh03",
                "controllers/ddc1.example.com/addresses: 10.0.1.21 -> (none)",
                "controllers/ddc1.example.com/reachable: yes -> no (timed_out)",
                "controllers/ddc2.example.com/addresses: 10.0.1.22 -> (none)",
                "controllers/ddc2.example.com/reachable: yes -> no (timed_out)",
                "services/ctxhdx.service/state: active/running -> failed/failed (core-dump)",
                "services/ctxhdx.service/restarts: 0 -> 38",
                "services/ctxjproxy.service/restarts: 0 -> 1",
                "listeners/443 (tls)/state: listening on 0.0.0.0 -> closed",
                "listeners/1494 (ica)/state: listening on 0.0.0.0, :: -> closed",
                "listeners/2598 (cgp)/state: listening on 0.0.0.0, :: -> closed",
                "certificates//section: reported -> not reported (no data)",
                "updates//pending_security_updates: 0 -> unknown",
                "updates//reboot_required: no -> unknown",
                "timesync//section: reported -> not reported (no data)",
                "identity//short_name: vda-rh01 -> vda-rh03",
                "identity//fqdn: vda-rh01.example.com -> unknown",
                "identity//default_realm: EXAMPLE.COM -> unknown",
                "identity//keytab: 6 entries, host principal present -> unknown",
                "identity//domain: example.com (joined, sssd, online) -> unknown",
                "identity//nameservers: 10.0.0.10, 10.0.0.11 -> (none)",
                "identity//search: example.com -> (none)",
                "identity//nsswitch_hosts: files, dns, myhostname -> (none)",
                "identity//nsswitch_passwd: sss, files, systemd -> (none)",
                "crashes//section: reported -> not reported (no data)",
            ]
        );
    }

    #[test]
    fn healthy_to_cert_expiring() {
        let cert = "certificates/CN=vda-rh01.example.com, O=Example Corp, C=US \
                    (/etc/xdl/.sslkeystore/certs/vda-rh01.example.com.pem)";
        assert_eq!(
            changes("rpm-healthy", "cert-expiring"),
            [
                "vda//section: reported -> not reported (no data)".to_owned(),
                "controllers//section: reported -> not reported (no data)".to_owned(),
                "services//section: reported -> not reported (no data)".to_owned(),
                "listeners/443 (tls)/state: listening on 0.0.0.0 -> closed".to_owned(),
                "listeners/1494 (ica)/state: listening on 0.0.0.0, :: -> closed".to_owned(),
                "listeners/2598 (cgp)/state: listening on 0.0.0.0, :: -> closed".to_owned(),
                format!("{cert}/expires: 2028-03-01T00:00:00Z -> 2026-11-30T09:00:00Z"),
                format!(
                    "{cert}/fingerprint: C2:20:E7:E9:77:EA:16:C2:4D:9B:75:BA:D9:24:9B:EB:1A:73:33:04:D8:76:82:93:AA:3F:8B:0E:20:78:F9:CB \
                     -> D0:29:DD:CF:C5:60:D0:56:43:D0:E8:FC:D6:8C:82:8F:84:AF:58:56:C6:7F:76:30:DE:BA:1A:2E:12:6A:80:71"
                ),
                "updates//pending_security_updates: 0 -> unknown".to_owned(),
                "updates//reboot_required: no -> unknown".to_owned(),
                "identity//keytab: 6 entries, host principal present -> unknown".to_owned(),
                "identity//domain: example.com (joined, sssd, online) -> unknown".to_owned(),
                "identity//nameservers: 10.0.0.10, 10.0.0.11 -> (none)".to_owned(),
                "identity//search: example.com -> (none)".to_owned(),
                "identity//nsswitch_hosts: files, dns, myhostname -> (none)".to_owned(),
                "identity//nsswitch_passwd: sss, files, systemd -> (none)".to_owned(),
                "crashes//section: reported -> not reported (no data)".to_owned(),
                "logs//section: reported -> not reported (no data)".to_owned(),
            ]
        );
    }

    #[test]
    fn healthy_to_vda_unregistered() {
        assert_eq!(
            changes("rpm-healthy", "vda-unregistered"),
            [
                "host//hostname: vda-rh01 -> vda-rh07",
                "vda//registration: registered -> unregistered",
                "vda//verbose_logging: no -> yes",
                "controllers/ddc1.example.com/addresses: 10.0.1.21 -> (none)",
                "controllers/ddc1.example.com/reachable: yes -> no (timed_out)",
                "controllers/ddc2.example.com/addresses: 10.0.1.22 -> (none)",
                "controllers/ddc2.example.com/reachable: yes -> no (timed_out)",
                "services/chronyd.service/state: active/running -> inactive/dead",
                "services/chronyd.service/enabled: enabled -> disabled",
                "listeners/443 (tls)/state: listening on 0.0.0.0 -> closed",
                "certificates//section: reported -> not reported (no data)",
                "updates//pending_security_updates: 0 -> unknown",
                "updates//reboot_required: no -> unknown",
                "timesync//section: reported -> not reported (no data)",
                "identity//short_name: vda-rh01 -> vda-rh07",
                "identity//fqdn: vda-rh01.example.com -> unknown",
                "identity//default_realm: EXAMPLE.COM -> unknown",
                "identity//keytab: 6 entries, host principal present -> unknown",
                "identity//domain: example.com (joined, sssd, online) -> unknown",
                "identity//nameservers: 10.0.0.10, 10.0.0.11 -> (none)",
                "identity//search: example.com -> (none)",
                "identity//nsswitch_hosts: files, dns, myhostname -> (none)",
                "identity//nsswitch_passwd: sss, files, systemd -> (none)",
                "crashes//section: reported -> not reported (no data)",
            ]
        );
    }

    #[test]
    fn kinds_follow_presence() {
        let before = golden("rpm-healthy");
        let after = golden("cert-expiring");
        let d = diff(&before, &after);
        assert!(d.iter().all(|c| c.kind == ChangeKind::Changed), "{d:?}");
        let mut gone = before.clone();
        gone.sections
            .certificates
            .as_mut()
            .unwrap()
            .certificates
            .remove(0);
        let d = diff(&before, &gone);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].kind, ChangeKind::Removed);
        assert_eq!(d[0].field, "certificate");
        let d = diff(&gone, &before);
        assert_eq!(d[0].kind, ChangeKind::Added);
    }

    #[test]
    fn packages_agent_and_controller_list() {
        let before = golden("rpm-healthy");
        let mut after = before.clone();
        after.agent.version = "0.2.0".to_owned();
        let vda = after.sections.vda.as_mut().unwrap();
        vda.version = "25.03.0.12-1.el9_x".to_owned();
        vda.controllers = Some(vec!["ddc2.example.com".to_owned()]);
        assert_eq!(
            lines(&diff(&before, &after)),
            [
                format!("agent//version: {} -> 0.2.0", before.agent.version),
                "vda//version: 24.11.0.65-1.el9_x -> 25.03.0.12-1.el9_x".to_owned(),
                "vda//controllers: ddc1.example.com, ddc2.example.com -> ddc2.example.com".to_owned(),
            ]
        );
    }

    #[test]
    fn disk_space_counts_past_the_threshold_only() {
        let before = golden("rpm-healthy");
        let mut after = before.clone();
        {
            let mounts = &mut after.sections.disks.as_mut().unwrap().mounts;
            // `/`: 62.5 % free; a small move is noise.
            mounts[0].free_percent = 60.0;
            mounts[0].available_bytes -= 1 << 30;
        }
        assert_eq!(diff(&before, &after), Vec::new());
        let mounts = &mut after.sections.disks.as_mut().unwrap().mounts;
        mounts[0].free_percent = 40.0;
        let mut extra = mounts[1].clone();
        extra.mount_point = "/data".to_owned();
        mounts.push(extra);
        mounts.remove(1);
        let got = lines(&diff(&before, &after));
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("disks///free: 62.5 % "), "{got:?}");
        assert!(got[1].starts_with("disks//boot/mount: /dev/sda1 xfs"), "{got:?}");
        assert!(got[1].ends_with("-> -"), "{got:?}");
        assert!(
            got[2].starts_with("disks//data/mount: - -> /dev/sda1 xfs"),
            "{got:?}"
        );
    }

    #[test]
    fn time_offset_counts_past_a_second() {
        let before = golden("rpm-healthy");
        let mut after = before.clone();
        after.sections.timesync.as_mut().unwrap().offset_ms = Some(400.0);
        assert_eq!(diff(&before, &after), Vec::new());
        after.sections.timesync.as_mut().unwrap().offset_ms = Some(-301_000.0);
        assert_eq!(
            lines(&diff(&before, &after)),
            ["timesync//offset: 0 ms -> -301000 ms"]
        );
    }
}
