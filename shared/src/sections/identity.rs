//! Section `identity`: hostname rules, Kerberos realm and keytab principals, domain membership,
//! resolver and name-service sources.

use serde::{Deserialize, Serialize};

/// `identity` probe: what a host needs right to join and stay in an Active Directory domain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdentitySection {
    pub hostname: HostnameInfo,
    pub kerberos: KerberosInfo,
    /// `None`: no membership tool (`realm`, `sssctl`, `wbinfo`) is installed.
    pub domain: Option<DomainMembership>,
    pub resolver: ResolverInfo,
    pub nsswitch: NsswitchInfo,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostnameInfo {
    /// The first label of the kernel's hostname (`/proc/sys/kernel/hostname`).
    pub short_name: String,
    /// `hostname -f`; `None` when it failed (no name resolves for the host) or is not installed.
    pub fqdn: Option<String>,
    /// Length of the short name in bytes.
    pub short_name_length: usize,
    /// Whether the short name has only `A-Z a-z 0-9 -`, the characters an AD computer name may hold
    /// (Microsoft, "Naming conventions in Active Directory for computers, domains, sites, and OUs").
    pub short_name_valid_chars: bool,
    /// Whether the short name fits the 15-character NetBIOS limit: a longer name is cut to 15 for the
    /// computer account (sAMAccountName) at AD join, which breaks Kerberos for the host.
    pub short_name_within_netbios_limit: bool,
    /// Whether the short name equals the FQDN's first label (case-insensitive); `None` without FQDN.
    pub short_name_matches_fqdn: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KerberosInfo {
    /// `default_realm` in `[libdefaults]` of `/etc/krb5.conf`.
    pub default_realm: Option<String>,
    /// `/etc/krb5.keytab` as `klist -ke` lists it; `None`: not readable (no keytab, not root, or no
    /// `klist`).
    pub keytab: Option<KeytabInfo>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KeytabInfo {
    /// Keytab entries (one per principal, key version and encryption type).
    pub entries: u32,
    /// Whether `host/FQDN@REALM` is there (FQDN from `hostname -f`, realm the default realm; case-
    /// insensitive for the host part).
    pub host_principal_present: bool,
    /// Distinct principals, at most 16.
    pub principals: Vec<String>,
    /// Distinct encryption types, e.g. `aes256-cts-hmac-sha1-96`.
    pub enctypes: Vec<String>,
    /// Highest key version number.
    pub max_kvno: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DomainMembership {
    /// The tools that answered: `realm`, `sssctl`, `wbinfo`.
    pub sources: Vec<String>,
    /// DNS domain name, e.g. `example.com`.
    pub domain: Option<String>,
    /// Kerberos realm of the domain, e.g. `EXAMPLE.COM`.
    pub realm: Option<String>,
    /// Whether the host is joined (realmd's `configured: kerberos-member`, or a good `wbinfo -t`).
    pub joined: Option<bool>,
    /// `sssd` or `winbind`.
    pub client_software: Option<String>,
    /// sssd's view of the domain (`sssctl domain-status`): online or offline.
    pub sssd_online: Option<bool>,
    /// The domain controller sssd talks to.
    pub sssd_active_dc: Option<String>,
    /// Whether winbind's check of the machine account's trust secret succeeded (`wbinfo -t`).
    pub winbind_trust_ok: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResolverInfo {
    /// `nameserver` lines of `/etc/resolv.conf`, at most 8.
    pub nameservers: Vec<String>,
    /// `search` (or `domain`) domains of `/etc/resolv.conf`, at most 8.
    pub search: Vec<String>,
    /// When `/etc/resolv.conf` points at systemd-resolved's stub (127.0.0.53): the servers it forwards
    /// to, from `/run/systemd/resolve/resolv.conf`.
    pub upstream_nameservers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NsswitchInfo {
    /// Sources of the `hosts:` database in `/etc/nsswitch.conf`, in order (e.g. `files`, `dns`).
    pub hosts: Vec<String>,
    /// Sources of the `passwd:` database (e.g. `sss`, `winbind`).
    pub passwd: Vec<String>,
}
