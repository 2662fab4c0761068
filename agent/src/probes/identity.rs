//! `identity` probe: what an Active Directory member needs right. Hostname (short name rules, FQDN),
//! Kerberos (default realm, the host principals of the keytab), domain membership, the resolver and
//! the name-service sources.
//!
//! Reads `/proc/sys/kernel/hostname`, `hostname -f`, `/etc/krb5.conf` (and the files it includes),
//! `klist -ke /etc/krb5.keytab` (the keytab is binary; klist reads it, as root), `realm list`,
//! `sssctl domain-list` and `sssctl domain-status DOMAIN` (sssd hosts), `wbinfo -t` (winbind hosts),
//! `/etc/resolv.conf` (and `/run/systemd/resolve/resolv.conf` behind the systemd-resolved stub) and
//! `/etc/nsswitch.conf`. Whatever is not installed or not readable is left out (`None`/empty); only
//! a host without a readable hostname fails the probe.

use std::collections::BTreeSet;

use callhome_shared::{
    DomainMembership, HostnameInfo, IdentitySection, KerberosInfo, KeytabInfo, NsswitchInfo, ResolverInfo,
};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

/// NetBIOS names are 16 bytes, the last one the service type: 15 are left for the computer name
/// (Microsoft, "Naming conventions in Active Directory for computers, domains, sites, and OUs").
const NETBIOS_MAX: usize = 15;
/// Bounds of the lists the section carries.
const MAX_PRINCIPALS: usize = 16;
const MAX_RESOLVER_ENTRIES: usize = 8;
/// systemd-resolved's local stub listener (systemd-resolved.service(8)).
const RESOLVED_STUB: &str = "127.0.0.53";

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let kernel_hostname = ctx
        .read_text("/proc/sys/kernel/hostname")
        .or_else(|_| ctx.read_text("/etc/hostname"))
        .map_err(|e| ProbeFailure::reading("/proc/sys/kernel/hostname", &e))?;
    let fqdn = command_line(ctx, &["hostname", "-f"]);
    let hostname = hostname_info(kernel_hostname.trim(), fqdn.as_deref());

    let krb5 = read_krb5_conf(ctx);
    let default_realm = krb5
        .as_ref()
        .and_then(|k| k.libdefault("default_realm"))
        .map(str::to_string);
    // The host principal's name is the FQDN; a kernel hostname that is already qualified will do.
    let host_fqdn = fqdn.clone().or_else(|| {
        kernel_hostname
            .trim()
            .contains('.')
            .then(|| kernel_hostname.trim().to_string())
    });
    let keytab = ctx
        .run(&["klist", "-ke", "/etc/krb5.keytab"])
        .ok()
        .filter(|o| o.success())
        .and_then(|o| parse_klist_keytab(&o.stdout_text()))
        .map(|entries| keytab_info(&entries, host_fqdn.as_deref(), default_realm.as_deref()));

    let resolv = ctx
        .read_text("/etc/resolv.conf")
        .map(|t| parse_resolv_conf(&t))
        .unwrap_or_default();
    let mut resolver = ResolverInfo {
        nameservers: resolv.nameservers,
        search: resolv.search,
        upstream_nameservers: Vec::new(),
    };
    if resolver.nameservers == [RESOLVED_STUB] {
        resolver.upstream_nameservers = ctx
            .read_text("/run/systemd/resolve/resolv.conf")
            .map(|t| parse_resolv_conf(&t).nameservers)
            .unwrap_or_default();
    }
    let nsswitch = ctx
        .read_text("/etc/nsswitch.conf")
        .map(|t| parse_nsswitch(&t))
        .unwrap_or_default();

    Ok(ProbeOutput::Section(Section::Identity(IdentitySection {
        hostname,
        kerberos: KerberosInfo {
            default_realm,
            keytab,
        },
        domain: domain_membership(ctx),
        resolver,
        nsswitch,
    })))
}

/// The first line of a command's output, when it succeeded and said something.
fn command_line(ctx: &ProbeContext, argv: &[&str]) -> Option<String> {
    let out = ctx.run(argv).ok().filter(|o| o.success())?;
    let text = out.stdout_text();
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

fn hostname_info(kernel_hostname: &str, fqdn: Option<&str>) -> HostnameInfo {
    let short = kernel_hostname.split('.').next().unwrap_or_default();
    HostnameInfo {
        short_name: short.to_string(),
        fqdn: fqdn.map(str::to_string),
        short_name_length: short.len(),
        short_name_valid_chars: !short.is_empty()
            && short.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        short_name_within_netbios_limit: short.len() <= NETBIOS_MAX,
        short_name_matches_fqdn: fqdn.map(|f| {
            f.split('.')
                .next()
                .is_some_and(|label| label.eq_ignore_ascii_case(short))
        }),
    }
}

// ---------------------------------------------------------------------------------------------------
// krb5.conf

/// `/etc/krb5.conf` and the files it includes, as its relations in the order the library reads them
/// (krb5.conf(5): an `include`d file is read where the directive stands; for a relation set twice,
/// the first value counts).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Krb5Conf {
    /// (section, name, value) of the top-level relations; subsections (`EXAMPLE.COM = { ... }`)
    /// are skipped.
    relations: Vec<(String, String, String)>,
}

/// One meaningful line of a krb5.conf file.
#[derive(Debug, Clone, PartialEq)]
enum Krb5Item {
    Relation {
        section: String,
        name: String,
        value: String,
    },
    Include(String),
    IncludeDir(String),
}

impl Krb5Conf {
    /// One file's relations, includes not followed.
    #[cfg(test)]
    pub(super) fn parse(text: &str) -> Krb5Conf {
        let mut conf = Krb5Conf::default();
        conf.extend(krb5_items(text));
        conf
    }

    fn extend(&mut self, items: Vec<Krb5Item>) {
        for item in items {
            if let Krb5Item::Relation { section, name, value } = item {
                self.relations.push((section, name, value));
            }
        }
    }

    /// The first value of `name` in `[libdefaults]`.
    pub(super) fn libdefault(&self, name: &str) -> Option<&str> {
        self.relations
            .iter()
            .find(|(s, n, _)| s == "libdefaults" && n == name)
            .map(|(_, _, v)| v.as_str())
    }
}

/// Most files read through `include`/`includedir` (one level: what they include is not followed).
const MAX_KRB5_INCLUDES: usize = 16;

/// `/etc/krb5.conf` with its `include` and `includedir` files; `None` when there is no krb5.conf.
pub(super) fn read_krb5_conf(ctx: &ProbeContext) -> Option<Krb5Conf> {
    let text = ctx.read_text("/etc/krb5.conf").ok()?;
    let mut conf = Krb5Conf::default();
    let mut included = 0usize;
    for item in krb5_items(&text) {
        let files = match &item {
            Krb5Item::Relation { .. } => {
                conf.extend(vec![item]);
                continue;
            }
            Krb5Item::Include(path) => vec![path.clone()],
            Krb5Item::IncludeDir(dir) => ctx
                .source
                .list_dir(dir)
                .map(|entries| {
                    entries
                        .into_iter()
                        .filter(|e| !e.metadata.is_dir && krb5_includedir_name(&e.name))
                        .map(|e| format!("{}/{}", dir.trim_end_matches('/'), e.name))
                        .collect()
                })
                .unwrap_or_default(),
        };
        for file in files {
            if included >= MAX_KRB5_INCLUDES {
                break;
            }
            included += 1;
            if let Ok(text) = ctx.read_text(&file) {
                conf.extend(krb5_items(&text));
            }
        }
    }
    Some(conf)
}

/// krb5.conf(5), `includedir`: files "whose names consist solely of alphanumeric characters, dashes,
/// or underscores", and since release 1.15 names ending in `.conf` that do not begin with `.`.
fn krb5_includedir_name(name: &str) -> bool {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain || (name.ends_with(".conf") && !name.starts_with('.'))
}

/// The profile syntax of krb5.conf(5): `[section]` headers, `name = value` relations, `name = {`
/// subsections closed by `}`, `#`/`;` comments, `include`/`includedir` directives at line start.
fn krb5_items(text: &str) -> Vec<Krb5Item> {
    let mut items = Vec::new();
    let mut section = String::new();
    let mut depth = 0usize;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(path) = raw.strip_prefix("includedir ") {
            items.push(Krb5Item::IncludeDir(path.trim().to_string()));
            continue;
        }
        if let Some(path) = raw.strip_prefix("include ") {
            items.push(Krb5Item::Include(path.trim().to_string()));
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if let Some((name, _)) = rest.split_once(']') {
                section = name.trim().to_string();
                depth = 0;
            }
            continue;
        }
        if line.starts_with('}') {
            depth = depth.saturating_sub(1);
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('{') {
            depth += 1;
            continue;
        }
        if depth == 0 && !section.is_empty() {
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            items.push(Krb5Item::Relation {
                section: section.clone(),
                name: name.trim().to_string(),
                value: value.to_string(),
            });
        }
    }
    items
}

// ---------------------------------------------------------------------------------------------------
// Keytab

#[derive(Debug, Clone, PartialEq)]
struct KeytabEntry {
    kvno: u32,
    principal: String,
    enctype: Option<String>,
}

/// `klist -ke` (MIT krb5): a header, a dashed rule, then `KVNO PRINCIPAL (ENCTYPE)` per entry.
/// `None` when the output is not a keytab listing.
fn parse_klist_keytab(text: &str) -> Option<Vec<KeytabEntry>> {
    let mut lines = text.lines();
    lines.by_ref().find(|l| l.trim_start().starts_with("----"))?;
    let entries = lines
        .filter_map(|line| {
            let mut tokens = line.split_whitespace();
            let kvno = tokens.next()?.parse().ok()?;
            let rest: Vec<&str> = tokens.collect();
            let principal = rest.iter().find(|t| t.contains('@')).or(rest.first())?;
            let enctype = rest
                .last()
                .and_then(|t| t.strip_prefix('('))
                .and_then(|t| t.strip_suffix(')'))
                .map(str::to_string);
            Some(KeytabEntry {
                kvno,
                principal: (*principal).to_string(),
                enctype,
            })
        })
        .collect();
    Some(entries)
}

fn keytab_info(entries: &[KeytabEntry], fqdn: Option<&str>, realm: Option<&str>) -> KeytabInfo {
    let is_host_principal = |p: &str| {
        let Some(fqdn) = fqdn else {
            return false;
        };
        let Some((name, principal_realm)) = p.rsplit_once('@') else {
            return false;
        };
        name.strip_prefix("host/")
            .is_some_and(|host| host.eq_ignore_ascii_case(fqdn.trim_end_matches('.')))
            && realm.is_none_or(|r| r == principal_realm)
    };
    let mut principals: Vec<String> = Vec::new();
    let mut enctypes: Vec<String> = Vec::new();
    for e in entries {
        if !principals.contains(&e.principal) && principals.len() < MAX_PRINCIPALS {
            principals.push(e.principal.clone());
        }
        if let Some(enc) = &e.enctype
            && !enctypes.contains(enc)
        {
            enctypes.push(enc.clone());
        }
    }
    KeytabInfo {
        entries: u32::try_from(entries.len()).unwrap_or(u32::MAX),
        host_principal_present: entries.iter().any(|e| is_host_principal(&e.principal)),
        principals,
        enctypes,
        max_kvno: entries.iter().map(|e| e.kvno).max(),
    }
}

// ---------------------------------------------------------------------------------------------------
// Domain membership

/// Asks realmd, then sssd, then winbind, each only if installed; `None` when none is.
fn domain_membership(ctx: &ProbeContext) -> Option<DomainMembership> {
    let mut m = DomainMembership::default();
    let mut installed = false;

    match ctx.run(&["realm", "list"]) {
        Ok(out) if out.success() => {
            installed = true;
            m.sources.push("realm".into());
            let realms = parse_realm_list(&out.stdout_text());
            // The joined realm if any, else the first one realmd knows of.
            let chosen = realms
                .iter()
                .find(|r| r.configured.as_deref().is_some_and(|c| c != "no"))
                .or(realms.first());
            m.joined = Some(chosen.is_some_and(|r| r.configured.as_deref().is_some_and(|c| c != "no")));
            if let Some(r) = chosen {
                m.domain = r.domain_name.clone().or_else(|| Some(r.name.clone()));
                m.realm = r.realm_name.clone();
                m.client_software = r.client_software.clone();
            }
        }
        Ok(_) => installed = true,
        Err(_) => {}
    }

    let client = m.client_software.clone();
    if client.as_deref().is_none_or(|c| c == "sssd") {
        let domain = m
            .domain
            .clone()
            .or_else(|| command_line(ctx, &["sssctl", "domain-list"]));
        if let Some(domain) = domain
            && let Ok(out) = ctx.run(&["sssctl", "domain-status", &domain])
        {
            installed = true;
            if out.success()
                && let Some(status) = parse_sssctl_domain_status(&out.stdout_text())
            {
                m.sources.push("sssctl".into());
                m.sssd_online = Some(status.online);
                m.sssd_active_dc = status.active_dc;
                m.client_software.get_or_insert_with(|| "sssd".into());
                m.domain.get_or_insert(domain);
            }
        }
    }
    if client.as_deref().is_none_or(|c| c == "winbind")
        && let Ok(out) = ctx.run(&["wbinfo", "-t"])
    {
        installed = true;
        m.sources.push("wbinfo".into());
        let ok = out.success() && out.stdout_text().contains("succeeded");
        m.winbind_trust_ok = Some(ok);
        m.client_software.get_or_insert_with(|| "winbind".into());
        if m.joined.is_none() && ok {
            m.joined = Some(true);
        }
    }
    installed.then_some(m)
}

#[derive(Debug, Default, Clone, PartialEq)]
struct RealmEntry {
    name: String,
    realm_name: Option<String>,
    domain_name: Option<String>,
    /// `no`, `kerberos-member`, ...
    configured: Option<String>,
    client_software: Option<String>,
}

/// `realm list` (realmd): an unindented realm name, then indented `key: value` lines.
fn parse_realm_list(text: &str) -> Vec<RealmEntry> {
    let mut realms: Vec<RealmEntry> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            realms.push(RealmEntry {
                name: line.trim().to_string(),
                ..RealmEntry::default()
            });
            continue;
        }
        let (Some(realm), Some((key, value))) = (realms.last_mut(), line.split_once(':')) else {
            continue;
        };
        let value = Some(value.trim().to_string());
        match key.trim() {
            "realm-name" => realm.realm_name = value,
            "domain-name" => realm.domain_name = value,
            "configured" => realm.configured = value,
            "client-software" => realm.client_software = value,
            _ => {}
        }
    }
    realms
}

#[derive(Debug, Clone, PartialEq)]
struct SssdStatus {
    online: bool,
    active_dc: Option<String>,
}

/// `sssctl domain-status DOMAIN`: "Online status: Online|Offline", then an "Active servers:" block
/// of `ROLE: server` lines ("not connected" when there is none).
fn parse_sssctl_domain_status(text: &str) -> Option<SssdStatus> {
    let online = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Online status:"))?
        .trim();
    let online = match online {
        "Online" => true,
        "Offline" => false,
        _ => return None,
    };
    let mut active = Vec::new();
    let mut in_active = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "Active servers:" {
            in_active = true;
        } else if line.is_empty() || line.ends_with(':') {
            in_active = false;
        } else if in_active
            && let Some((role, server)) = line.split_once(':')
            && server.trim() != "not connected"
        {
            active.push((role.trim().to_string(), server.trim().to_string()));
        }
    }
    let active_dc = active
        .iter()
        .find(|(role, _)| role == "AD Domain Controller")
        .or(active.first())
        .map(|(_, server)| server.clone());
    Some(SssdStatus { online, active_dc })
}

// ---------------------------------------------------------------------------------------------------
// Resolver and nsswitch

#[derive(Debug, Default, PartialEq)]
struct ResolvConf {
    nameservers: Vec<String>,
    search: Vec<String>,
}

/// resolv.conf(5): `nameserver ADDR` lines; the last `search` or `domain` line gives the domains.
fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut r = ResolvConf::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut tokens = line.split_whitespace();
        match tokens.next() {
            Some("nameserver") => {
                if let Some(addr) = tokens.next()
                    && r.nameservers.len() < MAX_RESOLVER_ENTRIES
                {
                    r.nameservers.push(addr.to_string());
                }
            }
            Some("search" | "domain") => {
                r.search = tokens.take(MAX_RESOLVER_ENTRIES).map(str::to_string).collect();
            }
            _ => {}
        }
    }
    r
}

/// nsswitch.conf(5): `database: source [ACTION] source ...`; sources and actions kept as written.
fn parse_nsswitch(text: &str) -> NsswitchInfo {
    let mut info = NsswitchInfo::default();
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let Some((db, sources)) = line.split_once(':') else {
            continue;
        };
        let db = db.trim();
        // The first line for a database is the one glibc uses.
        if !seen.insert(db.to_string()) {
            continue;
        }
        let sources: Vec<String> = sources.split_whitespace().map(str::to_string).collect();
        match db {
            "hosts" => info.hosts = sources,
            "passwd" => info.passwd = sources,
            _ => {}
        }
    }
    info
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, _now: time::OffsetDateTime) {
    let first = text.lines().next().unwrap_or_default();
    std::hint::black_box(hostname_info(first, text.lines().nth(1)));
    std::hint::black_box(krb5_items(text));
    if let Some(entries) = parse_klist_keytab(text) {
        std::hint::black_box(keytab_info(&entries, Some(first), text.lines().nth(1)));
    }
    std::hint::black_box(parse_realm_list(text));
    std::hint::black_box(parse_sssctl_domain_status(text));
    std::hint::black_box(parse_resolv_conf(text));
    std::hint::black_box(parse_nsswitch(text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;

    #[test]
    fn hostname_rules() {
        let h = hostname_info("vda-rh01", Some("vda-rh01.example.com"));
        assert_eq!(h.short_name, "vda-rh01");
        assert_eq!(h.short_name_length, 8);
        assert!(h.short_name_valid_chars && h.short_name_within_netbios_limit);
        assert_eq!(h.short_name_matches_fqdn, Some(true));

        let h = hostname_info("citrix-vda-linux-01.example.com", Some("localhost"));
        assert_eq!(h.short_name, "citrix-vda-linux-01");
        assert_eq!(h.short_name_length, 19);
        assert!(!h.short_name_within_netbios_limit);
        assert_eq!(h.short_name_matches_fqdn, Some(false));

        let h = hostname_info("vda_01", None);
        assert!(!h.short_name_valid_chars);
        assert_eq!(h.short_name_matches_fqdn, None);
        assert!(!hostname_info("", None).short_name_valid_chars);
        assert!(
            hostname_info("VDA-RH01", Some("vda-rh01.example.com.")).short_name_matches_fqdn == Some(true)
        );
    }

    const KRB5_CONF: &str = r#"# To opt out of the system crypto-policies configuration of krb5, remove the
# symlink at /etc/krb5.conf.d/crypto-policies which will not be recreated.
includedir /etc/krb5.conf.d/

[logging]
    default = FILE:/var/log/krb5libs.log

[libdefaults]
    dns_lookup_realm = false
    ticket_lifetime = 24h
    rdns = false
    qualify_shortname = ""
    default_realm = EXAMPLE.COM
    EXAMPLE.COM = {
        clockskew = 60
    }
    default_realm = OTHER.COM

[realms]
 EXAMPLE.COM = {
     kdc = dc1.example.com
 }
"#;

    #[test]
    fn krb5_conf_relations_and_includes() {
        let items = krb5_items(KRB5_CONF);
        assert_eq!(items[0], Krb5Item::IncludeDir("/etc/krb5.conf.d/".into()));
        let conf = Krb5Conf::parse(KRB5_CONF);
        // The first value counts; a per-realm subsection is not a libdefault.
        assert_eq!(conf.libdefault("default_realm"), Some("EXAMPLE.COM"));
        assert_eq!(conf.libdefault("qualify_shortname"), Some(""));
        assert_eq!(conf.libdefault("clockskew"), None);
        assert_eq!(conf.libdefault("kdc"), None);
        assert_eq!(Krb5Conf::parse("not a krb5.conf = at all").libdefault("x"), None);
        assert!(krb5_includedir_name("crypto-policies"));
        assert!(krb5_includedir_name("sssd_enable_idp"));
        assert!(krb5_includedir_name("local.conf"));
        assert!(!krb5_includedir_name("old.rpmsave"));
        assert!(!krb5_includedir_name(".hidden.conf"));
    }

    const KLIST: &str = "\
Keytab name: FILE:/etc/krb5.keytab
KVNO Principal
---- --------------------------------------------------------------------------
   2 VDA-RH01$@EXAMPLE.COM (aes256-cts-hmac-sha1-96)
   2 VDA-RH01$@EXAMPLE.COM (aes128-cts-hmac-sha1-96)
   2 host/VDA-RH01@EXAMPLE.COM (aes256-cts-hmac-sha1-96)
   2 host/vda-rh01.example.com@EXAMPLE.COM (aes256-cts-hmac-sha1-96)
   2 host/vda-rh01.example.com@EXAMPLE.COM (aes128-cts-hmac-sha1-96)
   3 RestrictedKrbHost/vda-rh01.example.com@EXAMPLE.COM (aes256-cts-hmac-sha1-96)
";

    #[test]
    fn klist_keytab_entries() {
        let entries = parse_klist_keytab(KLIST).unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(
            entries[2],
            KeytabEntry {
                kvno: 2,
                principal: "host/VDA-RH01@EXAMPLE.COM".into(),
                enctype: Some("aes256-cts-hmac-sha1-96".into())
            }
        );
        let info = keytab_info(&entries, Some("VDA-RH01.example.com"), Some("EXAMPLE.COM"));
        assert_eq!(info.entries, 6);
        assert!(info.host_principal_present);
        assert_eq!(info.principals.len(), 4);
        assert_eq!(
            info.enctypes,
            ["aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"]
        );
        assert_eq!(info.max_kvno, Some(3));
        assert!(!keytab_info(&entries, Some("vda-rh02.example.com"), None).host_principal_present);
        assert!(
            !keytab_info(&entries, Some("vda-rh01.example.com"), Some("OTHER.COM")).host_principal_present
        );
        assert!(!keytab_info(&entries, None, None).host_principal_present);
    }

    #[test]
    fn klist_errors_are_not_keytabs() {
        assert_eq!(
            parse_klist_keytab(
                "klist: Key table file '/etc/krb5.keytab' not found while starting keytab scan\n"
            ),
            None
        );
        let empty =
            parse_klist_keytab("Keytab name: FILE:/etc/krb5.keytab\nKVNO Principal\n---- ----\n").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn realm_list_blocks() {
        let text = "\
example.com
  type: kerberos
  realm-name: EXAMPLE.COM
  domain-name: example.com
  configured: kerberos-member
  server-software: active-directory
  client-software: sssd
  required-package: sssd
  login-formats: %U@example.com
  login-policy: allow-realm-logins
other.example
  type: kerberos
  realm-name: OTHER.EXAMPLE
  configured: no
";
        let realms = parse_realm_list(text);
        assert_eq!(realms.len(), 2);
        assert_eq!(realms[0].realm_name.as_deref(), Some("EXAMPLE.COM"));
        assert_eq!(realms[0].configured.as_deref(), Some("kerberos-member"));
        assert_eq!(realms[0].client_software.as_deref(), Some("sssd"));
        assert_eq!(realms[1].configured.as_deref(), Some("no"));
        assert!(parse_realm_list("").is_empty());
    }

    #[test]
    fn sssctl_domain_status() {
        let text = "\
Online status: Online

Active servers:
AD Global Catalog: dc1.example.com
AD Domain Controller: dc2.example.com

Discovered AD Global Catalog servers:
- dc1.example.com
- dc2.example.com
";
        assert_eq!(
            parse_sssctl_domain_status(text),
            Some(SssdStatus {
                online: true,
                active_dc: Some("dc2.example.com".into())
            })
        );
        let offline = "Online status: Offline\n\nActive servers:\nAD Global Catalog: not connected\nAD Domain Controller: not connected\n";
        assert_eq!(
            parse_sssctl_domain_status(offline),
            Some(SssdStatus {
                online: false,
                active_dc: None
            })
        );
        assert_eq!(parse_sssctl_domain_status("Unable to get online status\n"), None);
    }

    #[test]
    fn resolv_conf_and_nsswitch() {
        let r = parse_resolv_conf(
            "# Generated by NetworkManager\nsearch example.com corp.example.com\nnameserver 10.0.0.10\n; x\nnameserver 10.0.0.11\noptions edns0\n",
        );
        assert_eq!(r.nameservers, ["10.0.0.10", "10.0.0.11"]);
        assert_eq!(r.search, ["example.com", "corp.example.com"]);
        assert_eq!(parse_resolv_conf("garbage\n"), ResolvConf::default());

        let n = parse_nsswitch(
            "# comment\npasswd:     sss files systemd\nhosts:      files mdns4_minimal [NOTFOUND=return] dns # x\nhosts: dns\n",
        );
        assert_eq!(n.passwd, ["sss", "files", "systemd"]);
        assert_eq!(n.hosts, ["files", "mdns4_minimal", "[NOTFOUND=return]", "dns"]);
    }

    fn section_of(tree: &str) -> IdentitySection {
        let Section::Identity(s) = testing::section(probe, &testing::context(tree)) else {
            panic!("not an identity section")
        };
        s
    }

    #[test]
    fn rpm_healthy_is_joined_with_sssd() {
        let s = section_of("rpm-healthy");
        assert_eq!(s.hostname.short_name, "vda-rh01");
        assert_eq!(s.hostname.fqdn.as_deref(), Some("vda-rh01.example.com"));
        assert_eq!(s.hostname.short_name_matches_fqdn, Some(true));
        assert!(s.hostname.short_name_within_netbios_limit && s.hostname.short_name_valid_chars);
        assert_eq!(s.kerberos.default_realm.as_deref(), Some("EXAMPLE.COM"));
        let keytab = s.kerberos.keytab.unwrap();
        assert_eq!(keytab.entries, 6);
        assert!(keytab.host_principal_present);
        assert_eq!(
            keytab.enctypes,
            ["aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"]
        );
        assert_eq!(keytab.max_kvno, Some(2));
        let d = s.domain.unwrap();
        assert_eq!(d.sources, ["realm", "sssctl"]);
        assert_eq!(d.domain.as_deref(), Some("example.com"));
        assert_eq!(d.realm.as_deref(), Some("EXAMPLE.COM"));
        assert_eq!(d.joined, Some(true));
        assert_eq!(d.client_software.as_deref(), Some("sssd"));
        assert_eq!(d.sssd_online, Some(true));
        assert_eq!(d.sssd_active_dc.as_deref(), Some("dc1.example.com"));
        assert_eq!(d.winbind_trust_ok, None);
        assert_eq!(s.resolver.nameservers, ["10.0.0.10", "10.0.0.11"]);
        assert_eq!(s.resolver.search, ["example.com"]);
        assert!(s.resolver.upstream_nameservers.is_empty());
        assert_eq!(s.nsswitch.hosts, ["files", "dns", "myhostname"]);
        assert_eq!(s.nsswitch.passwd, ["sss", "files", "systemd"]);
    }

    #[test]
    fn deb_healthy_is_joined_with_winbind_behind_resolved() {
        let s = section_of("deb-healthy");
        assert_eq!(s.hostname.short_name, "vda-ub01");
        assert_eq!(s.hostname.fqdn.as_deref(), Some("vda-ub01.example.com"));
        assert_eq!(s.kerberos.default_realm.as_deref(), Some("EXAMPLE.COM"));
        let keytab = s.kerberos.keytab.unwrap();
        assert!(keytab.host_principal_present);
        assert_eq!(keytab.entries, 4);
        let d = s.domain.unwrap();
        assert_eq!(d.sources, ["realm", "wbinfo"]);
        assert_eq!(d.client_software.as_deref(), Some("winbind"));
        assert_eq!(d.joined, Some(true));
        assert_eq!(d.winbind_trust_ok, Some(true));
        assert_eq!(d.sssd_online, None);
        assert_eq!(s.resolver.nameservers, ["127.0.0.53"]);
        assert_eq!(s.resolver.upstream_nameservers, ["10.0.0.10", "10.0.0.11"]);
        assert_eq!(s.resolver.search, ["example.com"]);
        assert_eq!(s.nsswitch.passwd, ["files", "systemd", "winbind"]);
        assert_eq!(s.nsswitch.hosts, ["files", "dns"]);
    }

    #[test]
    fn time_off_has_no_membership_tools() {
        // That tree records only hostname -f and krb5.conf: the rest reads as not installed.
        let s = section_of("time-off");
        assert_eq!(s.hostname.fqdn.as_deref(), Some("vda-rh01.example.com"));
        assert_eq!(s.kerberos.default_realm.as_deref(), Some("EXAMPLE.COM"));
        assert_eq!(s.kerberos.keytab, None);
        assert_eq!(s.domain, None);
        assert!(s.resolver.nameservers.is_empty() && s.nsswitch.hosts.is_empty());
    }
}
