//! Redaction: hostnames, IP addresses, user names and domain names leave the host only as the
//! operator's `[redaction]` table allows (SPEC §6), applied to the finished snapshot before `collect`
//! prints it or `send` spools and sends it. `capture` writes raw host trees and is not redacted.
//!
//! ```toml
//! [redaction]
//! hostnames = "keep"      # keep | hash | drop
//! ip_addresses = "keep"
//! user_names = "keep"
//! domain_names = "keep"
//! # key_file = "/etc/callhome/redaction.key"   # required as soon as one category is "hash"
//! ```
//!
//! - `hash` writes `h:` and the first 16 hex digits of HMAC-SHA256(key, lower-cased value): the same
//!   value gives the same token on every host that shares the key file, so a TAM can still see that
//!   two hosts name the same controller, but nobody without the key can test a guess. There is no
//!   org-wide key from the collector yet, so `hash` without `key_file` is refused at config
//!   validation (fail closed) rather than hashing with a key anyone could guess. Make one with
//!   `(umask 077; head -c 32 /dev/urandom > /etc/callhome/redaction.key)` and give every host of the
//!   org a copy, mode 0600 (a key others can read, or another user owns, is refused).
//! - `drop` writes a fixed placeholder (`<hostname>`, `<ip>`, `<user>`, `<domain>`) so that lists keep
//!   their length (rules count controllers) and required fields stay non-empty.
//!
//! How: the snapshot is walked as JSON. First the fields listed in [`FIELDS`] (whose whole value is a
//! name or an address) are replaced, and their values remembered; then every other string and map
//! key (outside [`SKIP`]) is scrubbed of (1) those remembered values, wherever they occur as a whole
//! word, (2) IPv4 and IPv6 literals, and (3) anything shaped like a DNS name under a public or
//! usual private suffix (`ddc1.example.com`, `EXAMPLE.COM`, `dc01.corp.local`). The result is decoded
//! back into a [`Snapshot`]; sections must therefore keep names and addresses in `String`s.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use callhome_shared::Snapshot;
use ring::hmac;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use crate::config::Problem;

/// What happens to one category of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Keep,
    Hash,
    Drop,
}

/// The `[redaction]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    pub hostnames: Mode,
    pub ip_addresses: Mode,
    pub user_names: Mode,
    pub domain_names: Mode,
    /// Secret key for `hash` (at least [`MIN_KEY_BYTES`] bytes; trailing whitespace ignored).
    pub key_file: Option<Spanned<PathBuf>>,
}

/// Shortest key accepted: 128 bits.
pub const MIN_KEY_BYTES: usize = 16;

impl RedactionConfig {
    fn modes(&self) -> [Mode; 4] {
        [
            self.hostnames,
            self.ip_addresses,
            self.user_names,
            self.domain_names,
        ]
    }

    /// Whether redaction changes nothing.
    pub fn keeps_everything(&self) -> bool {
        self.modes().iter().all(|m| *m == Mode::Keep)
    }

    /// Problems for `Config::problems`; `line` turns a span into a line number.
    pub fn problems(&self, line: &dyn Fn(Range<usize>) -> Option<usize>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let hashing = self.modes().contains(&Mode::Hash);
        match &self.key_file {
            None if hashing => problems.push(Problem {
                key: "redaction.key_file".into(),
                line: None,
                message: "required when a category is set to \"hash\": hashing needs a secret key \
                          shared by the org's hosts (e.g. `(umask 077; head -c 32 /dev/urandom > \
                          /etc/callhome/redaction.key)`); without one the agent refuses to run rather \
                          than hash with a guessable key"
                    .into(),
            }),
            Some(path) => {
                if let Err(e) = read_key(path.get_ref()) {
                    problems.push(Problem {
                        key: "redaction.key_file".into(),
                        line: line(path.span()),
                        message: e.to_string(),
                    });
                }
            }
            None => {}
        }
        problems
    }
}

/// Kinds of sensitive values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Hostname,
    IpAddress,
    UserName,
    DomainName,
    /// A hostname or an IP address (or either with `:port`), told apart by its form.
    Host,
}

/// **The field table**: JSON paths in the snapshot whose whole value is a name or an address.
/// `a.b[*].c` walks every element of the array `b`; `*` walks every key of an object; a path that
/// ends on an array applies to each string in it. Paths absent from a snapshot are skipped, so the
/// table may name sections before they exist. Extend it when a section adds such a field; free text
/// (log messages, certificate subjects, errors) needs no entry, the scrub covers it.
pub const FIELDS: &[(&str, Category)] = &[
    ("host.hostname", Category::Hostname),
    // identity
    ("sections.identity.hostname.short_name", Category::Hostname),
    ("sections.identity.hostname.fqdn", Category::Hostname),
    // Machine-account principals embed the host's name (`VDA01$@EXAMPLE.COM`, `host/vda01.example.com@…`).
    ("sections.identity.kerberos.keytab.principals", Category::Hostname),
    ("sections.identity.kerberos.default_realm", Category::DomainName),
    ("sections.identity.domain.domain", Category::DomainName),
    ("sections.identity.domain.realm", Category::DomainName),
    ("sections.identity.domain.sssd_active_dc", Category::Host),
    ("sections.identity.resolver.nameservers", Category::Host),
    ("sections.identity.resolver.upstream_nameservers", Category::Host),
    ("sections.identity.resolver.search", Category::DomainName),
    // vda
    ("sections.vda.controllers", Category::Host),
    (
        "sections.vda.registration.last_registered_controller",
        Category::Host,
    ),
    // controllers
    ("sections.controllers.controllers[*].name", Category::Host),
    ("sections.controllers.controllers[*].addresses", Category::Host),
    ("sections.controllers.controllers[*].reverse_name", Category::Host),
    // listeners
    ("sections.listeners.ports[*].addresses", Category::Host),
    // timesync
    ("sections.timesync.reference", Category::Host),
    // certificates
    ("sections.certificates.certificates[*].dns_names", Category::Host),
];

/// Paths never scrubbed: ids, versions, times and the kernel's own words, which hold nothing
/// sensitive and which the free-text rules could only damage (a kernel version is not an address).
pub const SKIP: &[&str] = &[
    "id",
    "schema_version",
    "agent",
    "host.host_id",
    "host.role",
    "host.os",
    "host.kernel",
    "collected_at",
    "collection_ms",
    "probes",
    "sections.system",
];

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("redaction.key_file is required when a category is set to \"hash\"")]
    NoKey,
    #[error("cannot use redaction.key_file {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    /// A section keeps a redacted value in a type other than a string (a bug in that section).
    #[error("the redacted snapshot no longer fits the schema: {0}")]
    Shape(String),
}

fn read_key(path: &Path) -> Result<Vec<u8>, RedactError> {
    let key_error = |message: String| RedactError::Key {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| key_error(e.to_string()))?;
    // A key others can read lets them reverse the hashes of guessable names: refused like the credential.
    if let Some(exposure) = crate::state::check_private(&file).map_err(|e| key_error(e.to_string()))? {
        return Err(key_error(format!("{exposure}: {}", exposure.fix(path))));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| key_error(e.to_string()))?;
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    if bytes.len() < MIN_KEY_BYTES {
        return Err(key_error(format!(
            "holds {} bytes; a key needs at least {MIN_KEY_BYTES}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Redacts `snapshot` as `config` says; with everything kept, returns it untouched.
pub fn apply(config: &RedactionConfig, snapshot: Snapshot) -> Result<Snapshot, RedactError> {
    if config.keeps_everything() {
        return Ok(snapshot);
    }
    let redactor = Redactor::new(config)?;
    let mut doc = serde_json::to_value(&snapshot).map_err(|e| RedactError::Shape(e.to_string()))?;
    redactor.redact_value(&mut doc);
    serde_json::from_value(doc).map_err(|e| RedactError::Shape(e.to_string()))
}

/// Modes and key, ready to redact.
#[derive(Debug)]
pub struct Redactor {
    hostnames: Mode,
    ip_addresses: Mode,
    user_names: Mode,
    domain_names: Mode,
    key: Option<hmac::Key>,
}

impl Redactor {
    pub fn new(config: &RedactionConfig) -> Result<Redactor, RedactError> {
        let key = match &config.key_file {
            Some(path) => Some(hmac::Key::new(hmac::HMAC_SHA256, &read_key(path.get_ref())?)),
            None if config.modes().contains(&Mode::Hash) => return Err(RedactError::NoKey),
            None => None,
        };
        Ok(Redactor {
            hostnames: config.hostnames,
            ip_addresses: config.ip_addresses,
            user_names: config.user_names,
            domain_names: config.domain_names,
            key,
        })
    }

    fn mode(&self, category: Category) -> Mode {
        match category {
            Category::Hostname | Category::Host => self.hostnames,
            Category::IpAddress => self.ip_addresses,
            Category::UserName => self.user_names,
            Category::DomainName => self.domain_names,
        }
    }

    /// The replacement of `value`, or `None` when its category is kept.
    fn token(&self, category: Category, value: &str) -> Option<String> {
        match self.mode(category) {
            Mode::Keep => None,
            Mode::Drop => Some(
                match category {
                    Category::Hostname | Category::Host => "<hostname>",
                    Category::IpAddress => "<ip>",
                    Category::UserName => "<user>",
                    Category::DomainName => "<domain>",
                }
                .to_string(),
            ),
            Mode::Hash => {
                // `new` refuses Hash without a key; an empty key here would only be a bug.
                let key = self.key.as_ref()?;
                let tag = hmac::sign(key, value.to_ascii_lowercase().as_bytes());
                let hex: String = tag.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
                Some(format!("h:{hex}"))
            }
        }
    }

    /// Redacts a snapshot document in place.
    pub fn redact_value(&self, doc: &mut Value) {
        // 1. Whole-value fields, remembering each value for the scrub.
        let mut known: BTreeSet<(String, String)> = BTreeSet::new();
        for (path, category) in FIELDS {
            let segments = parse_path(path);
            visit(doc, &segments, &mut |v| {
                if let Value::String(s) = v
                    && let Some(new) = self.redact_whole(*category, s, &mut known)
                {
                    *s = new;
                }
            });
        }
        // Longest first, so that `vda01.example.com` wins over `vda01`.
        let mut needles: Vec<(String, String)> = known.into_iter().filter(|(n, _)| n.len() >= 3).collect();
        needles.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        // 2. Everything else.
        let mut path = Vec::new();
        self.scrub_tree(doc, &mut path, &needles);
    }

    /// Replaces a whole field value; adds what it learnt to `known` (lower-cased needle, token).
    fn redact_whole(
        &self,
        category: Category,
        value: &str,
        known: &mut BTreeSet<(String, String)>,
    ) -> Option<String> {
        let (host, port) = split_port(value);
        let category = match category {
            Category::Host if parse_ip(host).is_some() => Category::IpAddress,
            Category::Host => Category::Hostname,
            c => c,
        };
        let token = self.token(category, host)?;
        known.insert((host.to_ascii_lowercase(), token.clone()));
        if category == Category::Hostname
            && let Some((first, domain)) = host.split_once('.')
        {
            if let Some(t) = self.token(Category::Hostname, first) {
                known.insert((first.to_ascii_lowercase(), t));
            }
            if domain.contains('.')
                && let Some(t) = self.token(Category::DomainName, domain)
            {
                known.insert((domain.to_ascii_lowercase(), t));
            }
        }
        Some(match port {
            Some(port) => format!("{token}:{port}"),
            None => token,
        })
    }

    fn scrub_tree(&self, v: &mut Value, path: &mut Vec<String>, needles: &[(String, String)]) {
        if skipped(path) {
            return;
        }
        match v {
            Value::String(s) => {
                let new = self.scrub(s, needles);
                if new != *s {
                    *s = new;
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.scrub_tree(item, path, needles);
                }
            }
            Value::Object(map) => {
                let old = std::mem::take(map);
                let mut new = Map::new();
                for (key, mut value) in old {
                    path.push(key.clone());
                    self.scrub_tree(&mut value, path, needles);
                    path.pop();
                    // Map keys are names too (a map keyed by controller); the envelope's are not.
                    let key = if path.is_empty() {
                        key
                    } else {
                        self.scrub(&key, needles)
                    };
                    new.insert(key, value);
                }
                *map = new;
            }
            _ => {}
        }
    }

    /// Free text: known values as whole words, IP literals, DNS-shaped names.
    fn scrub(&self, s: &str, needles: &[(String, String)]) -> String {
        let lower = s.to_ascii_lowercase();
        let bytes = s.as_bytes();
        let ips = self.ip_addresses != Mode::Keep;
        let names = self.hostnames != Mode::Keep || self.domain_names != Mode::Keep;
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            let name_start = i == 0 || !is_name_byte(bytes[i - 1]);
            if name_start
                && let Some((needle, token)) = needles.iter().find(|(n, _)| {
                    lower[i..].starts_with(n.as_str())
                        && !bytes.get(i + n.len()).is_some_and(|b| is_name_byte(*b))
                })
            {
                out.push_str(token);
                i += needle.len();
                continue;
            }
            if ips && let Some(len) = ip_at(bytes, i) {
                out.push_str(
                    &self
                        .token(Category::IpAddress, &s[i..i + len])
                        .unwrap_or_default(),
                );
                i += len;
                continue;
            }
            if names
                && name_start
                && let Some((len, labels)) = dns_name_at(bytes, i)
            {
                let name = &s[i..i + len];
                // Two labels is a domain (`example.com`, a Kerberos realm); more is a host under one,
                // whose domain part still goes when only domains are redacted.
                let replaced = if labels == 2 {
                    self.token(Category::DomainName, name)
                } else {
                    self.token(Category::Hostname, name).or_else(|| {
                        let (first, domain) = name.split_once('.')?;
                        self.token(Category::DomainName, domain)
                            .map(|t| format!("{first}.{t}"))
                    })
                };
                out.push_str(replaced.as_deref().unwrap_or(name));
                i += len;
                continue;
            }
            let c = s[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
        out
    }
}

/// Bytes that continue a hostname or a user name: a match must not be glued to one of these.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn skipped(path: &[String]) -> bool {
    if path.is_empty() {
        return false;
    }
    let joined = path.join(".");
    SKIP.iter()
        .any(|s| joined == *s || (joined.starts_with(s) && joined.as_bytes().get(s.len()) == Some(&b'.')))
}

fn parse_ip(s: &str) -> Option<std::net::IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// `host:port`, `1.2.3.4:80` and `[v6]:443` split; a bare IPv6 address is not a port form.
fn split_port(value: &str) -> (&str, Option<&str>) {
    if let Some(rest) = value.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        return (host, Some(port));
    }
    match value.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (host, Some(port))
        }
        _ => (value, None),
    }
}

/// Length of an IPv4 or IPv6 literal starting at `i`.
fn ip_at(b: &[u8], i: usize) -> Option<usize> {
    let prev = i.checked_sub(1).map(|p| b[p]);
    if prev.is_some_and(|p| p.is_ascii_alphanumeric() || p == b'.' || p == b':' || p == b'_') {
        return None;
    }
    if !b[i].is_ascii_hexdigit() && b[i] != b':' {
        return None;
    }
    // IPv4: four dot-separated decimals.
    if b[i].is_ascii_digit() {
        let run = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == b'.')
            .count();
        let mut candidate = &b[i..i + run];
        while candidate.last() == Some(&b'.') {
            candidate = &candidate[..candidate.len() - 1];
        }
        let next = b.get(i + candidate.len());
        if !next.is_some_and(u8::is_ascii_alphanumeric)
            && std::str::from_utf8(candidate).ok()?.parse::<Ipv4Addr>().is_ok()
        {
            return Some(candidate.len());
        }
    }
    // IPv6: hex digits, colons (at least two) and an optional dotted IPv4 tail.
    let run = b[i..]
        .iter()
        .take_while(|c| c.is_ascii_hexdigit() || **c == b':' || **c == b'.')
        .count();
    let mut candidate = &b[i..i + run];
    while matches!(candidate.last(), Some(b'.')) {
        candidate = &candidate[..candidate.len() - 1];
    }
    let colons = candidate.iter().filter(|c| **c == b':').count();
    let next = b.get(i + candidate.len());
    if colons >= 2
        && candidate.iter().any(u8::is_ascii_hexdigit)
        && !next.is_some_and(|n| n.is_ascii_alphanumeric())
        && std::str::from_utf8(candidate).ok()?.parse::<Ipv6Addr>().is_ok()
    {
        return Some(candidate.len());
    }
    None
}

/// Top-level suffixes that mark a DNS name in free text (besides two-letter country codes): the
/// public generic ones seen in enterprises and the usual private ones of Active Directory forests.
const NAME_SUFFIXES: &[&str] = &[
    "com",
    "net",
    "org",
    "edu",
    "gov",
    "mil",
    "int",
    "biz",
    "info",
    "local",
    "lan",
    "corp",
    "internal",
    "intra",
    "intranet",
    "home",
    "localdomain",
    "ad",
    "cloud",
    "online",
];

/// Two-letter endings that are file extensions far more often than country codes in logs and paths.
const NOT_SUFFIXES: &[&str] = &[
    "so", "sh", "py", "pl", "md", "rs", "js", "ts", "cs", "go", "ps", "rb", "mo", "ko", "gz", "xz", "db",
    "id", "el", "cc", "hh", "in", "io",
];

/// Reversed-domain prefixes of Java packages (`com.citrix.x`), which are not host names.
const PACKAGE_PREFIXES: &[&str] = &["com", "org", "net", "java", "javax", "sun", "io", "jdk"];

/// A DNS-shaped name at `i`: labels of `[A-Za-z0-9-]` joined by dots, ending in a known suffix.
/// Returns its length and number of labels.
fn dns_name_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if !b[i].is_ascii_alphanumeric() {
        return None;
    }
    let run = b[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-' || **c == b'.')
        .count();
    let mut name = &b[i..i + run];
    while name.last() == Some(&b'.') {
        name = &name[..name.len() - 1];
    }
    if b.get(i + name.len()).is_some_and(|n| *n == b'_') {
        return None;
    }
    let text = std::str::from_utf8(name).ok()?;
    let labels: Vec<&str> = text.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-'))
    {
        return None;
    }
    let last = labels[labels.len() - 1].to_ascii_lowercase();
    let first = labels[0].to_ascii_lowercase();
    let suffix_ok = NAME_SUFFIXES.contains(&last.as_str())
        || (last.len() == 2
            && last.bytes().all(|c| c.is_ascii_alphabetic())
            && !NOT_SUFFIXES.contains(&last.as_str()));
    if !suffix_ok || PACKAGE_PREFIXES.contains(&first.as_str()) {
        return None;
    }
    Some((name.len(), labels.len()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Each,
    AnyKey,
}

fn parse_path(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.') {
        if part == "*" {
            out.push(Segment::AnyKey);
            continue;
        }
        let (name, each) = match part.strip_suffix("[*]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        out.push(Segment::Key(name.to_string()));
        if each {
            out.push(Segment::Each);
        }
    }
    out
}

fn visit(v: &mut Value, path: &[Segment], f: &mut dyn FnMut(&mut Value)) {
    match path.split_first() {
        None => match v {
            // A path that ends on a list applies to each of its strings.
            Value::Array(items) => items.iter_mut().for_each(f),
            other => f(other),
        },
        Some((Segment::Key(k), rest)) => {
            if let Some(child) = v.get_mut(k) {
                visit(child, rest, f);
            }
        }
        Some((Segment::Each, rest)) => {
            if let Value::Array(items) = v {
                for item in items {
                    visit(item, rest, f);
                }
            }
        }
        Some((Segment::AnyKey, rest)) => {
            if let Value::Object(map) = v {
                for child in map.values_mut() {
                    visit(child, rest, f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::probes::{AgentHealth, PROBES};
    use crate::source::{HostSource, Tree};
    use serde_json::json;

    fn key_file(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("redaction.key");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Redactor::new(&config_with_existing_key(dir.path())).unwrap_err();
        assert!(matches!(err, RedactError::Key { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("mode 0644"),
            "{text}"
        );
        assert!(text.contains(&format!("chmod 600 {}", path.display())), "{text}");
    }

    fn config(dir: &Path, mode: &str) -> Config {
        Config::from_toml(&format!(
            "[redaction]\nhostnames = \"{mode}\"\nip_addresses = \"{mode}\"\nuser_names = \"{mode}\"\ndomain_names = \"{mode}\"\nkey_file = \"{}\"\n",
            key_file(dir).display()
        ))
        .unwrap()
    }

    fn redactor(dir: &Path, mode: &str) -> Redactor {
        Redactor::new(&config(dir, mode).redaction).unwrap()
    }

    #[test]
    fn hash_is_keyed_stable_and_case_blind() {
        let dir = tempfile::tempdir().unwrap();
        let r = redactor(dir.path(), "hash");
        let a = r.token(Category::Hostname, "DDC1.example.com").unwrap();
        assert_eq!(a, r.token(Category::Hostname, "ddc1.EXAMPLE.com").unwrap());
        assert!(a.starts_with("h:") && a.len() == 18, "{a}");
        std::fs::write(dir.path().join("redaction.key"), "another key, also 16+ bytes").unwrap();
        let other = Redactor::new(&config_with_existing_key(dir.path())).unwrap();
        assert_ne!(a, other.token(Category::Hostname, "ddc1.example.com").unwrap());
    }

    fn config_with_existing_key(dir: &Path) -> RedactionConfig {
        RedactionConfig {
            hostnames: Mode::Hash,
            key_file: Some(Spanned::new(0..0, dir.join("redaction.key"))),
            ..RedactionConfig::default()
        }
    }

    #[test]
    fn hash_without_a_key_file_is_refused_at_validation() {
        let text = "[redaction]\nhostnames = \"hash\"\n";
        let problems = Config::from_toml(text).unwrap().problems(text, PROBES);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "redaction.key_file");
        assert!(problems[0].message.contains("hash"), "{problems:?}");
        let text = "[redaction]\nhostnames = \"drop\"\n";
        assert!(Config::from_toml(text).unwrap().problems(text, PROBES).is_empty());
        let text = "[redaction]\nhostnames = \"hash\"\nkey_file = \"/nonexistent/key\"\n";
        let problems = Config::from_toml(text).unwrap().problems(text, PROBES);
        assert_eq!(
            (problems[0].key.as_str(), problems[0].line),
            ("redaction.key_file", Some(3))
        );
        assert!(Config::from_toml("[redaction]\nhostnames = \"scramble\"\n").is_err());
        assert!(Config::from_toml("[redaction]\nhostname = \"hash\"\n").is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path());
        std::fs::write(&path, "short\n").unwrap();
        let err = Redactor::new(&config_with_existing_key(dir.path())).unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
    }

    #[test]
    fn ip_literals_in_free_text() {
        fn found(s: &str) -> Vec<&str> {
            (0..s.len())
                .filter_map(|i| ip_at(s.as_bytes(), i).map(|len| &s[i..i + len]))
                .collect()
        }
        assert_eq!(
            found("from 10.20.30.41:53122 to [fe80::1]:443."),
            vec!["10.20.30.41", "fe80::1"]
        );
        assert_eq!(
            found("dns 2001:db8::53, ::ffff:10.0.0.1"),
            vec!["2001:db8::53", "::ffff:10.0.0.1"]
        );
        assert!(
            found("kernel 5.14.0-427.13.1.el9_4 at 08:00:00.000 v1.2.3.4.5 300.1.1.1 ab:cd:ef:01:02:03")
                .is_empty()
        );
        assert!(found("::").is_empty());
    }

    #[test]
    fn dns_names_in_free_text() {
        fn found(s: &str) -> Vec<&str> {
            let b = s.as_bytes();
            (0..s.len())
                .filter(|i| *i == 0 || !is_name_byte(b[i - 1]) && b[i - 1] != b'.')
                .filter_map(|i| dns_name_at(b, i).map(|(len, _)| &s[i..i + len]))
                .collect()
        }
        assert_eq!(
            found("HOST/vda-rh01.example.com@EXAMPLE.COM via dc01.corp.local."),
            vec!["vda-rh01.example.com", "EXAMPLE.COM", "dc01.corp.local"]
        );
        assert!(
            found("/var/log/xdl/hdx.log libssl.so.3 com.citrix.dmc.Broker x86_64.el9 run.sh 2.5.com").len()
                <= 1
        );
        assert!(found("/var/log/xdl/hdx.log libssl.so.3 com.citrix.dmc.Broker run.sh").is_empty());
    }

    #[test]
    fn fields_are_replaced_and_their_values_scrubbed_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let r = redactor(dir.path(), "hash");
        let mut doc = json!({
            "id": "0193",
            "host": {"hostname": "vda01", "kernel": "5.14.0-427.13.1.el9_4.x86_64", "os": "RHEL 9.4"},
            "sections": {
                "controllers": {"controllers": [{"name": "ddc1.example.com", "address": "10.0.0.5:80"}]},
                "identity": {"realm": "EXAMPLE.COM", "nameservers": ["10.0.0.53", "fd00::53"]},
                "logs": {"top_messages": [{"message": "vda01: cannot reach DDC1.example.com (10.0.0.5), realm example.com"}]},
                "other": {"by_host": {"ddc1.example.com": 1}},
                "system": {"kernel": "1.2.3.4"}
            },
            "errors": [{"probe": "x", "message": "connect to 10.9.9.9 failed"}]
        });
        r.redact_value(&mut doc);
        let text = doc.to_string().to_ascii_lowercase();
        for raw in [
            "vda01",
            "ddc1",
            "example.com",
            "10.0.0.5",
            "10.0.0.53",
            "fd00::53",
            "10.9.9.9",
        ] {
            assert!(!text.contains(raw), "{raw} left in {text}");
        }
        let ddc = r.token(Category::Hostname, "ddc1.example.com").unwrap();
        assert_eq!(
            doc["sections"]["controllers"]["controllers"][0]["name"],
            ddc.as_str()
        );
        let ip = r.token(Category::IpAddress, "10.0.0.5").unwrap();
        assert_eq!(
            doc["sections"]["controllers"]["controllers"][0]["address"],
            format!("{ip}:80")
        );
        let msg = doc["sections"]["logs"]["top_messages"][0]["message"]
            .as_str()
            .unwrap();
        assert!(msg.contains(&ddc) && msg.contains(&ip), "{msg}");
        assert!(doc["sections"]["other"]["by_host"].get(&ddc).is_some());
        // Skipped paths are left alone.
        assert_eq!(doc["host"]["kernel"], "5.14.0-427.13.1.el9_4.x86_64");
        assert_eq!(doc["sections"]["system"]["kernel"], "1.2.3.4");
    }

    #[test]
    fn drop_keeps_shape_and_keep_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = redactor(dir.path(), "drop");
        let mut doc = json!({"host": {"hostname": "vda01"}, "sections": {"vda": {"controllers": ["ddc1.example.com", "10.0.0.5"]}}});
        r.redact_value(&mut doc);
        assert_eq!(doc["host"]["hostname"], "<hostname>");
        assert_eq!(
            doc["sections"]["vda"]["controllers"],
            json!(["<hostname>", "<ip>"])
        );
        let keep = Redactor::new(&RedactionConfig::default()).unwrap();
        let mut same = json!({"host": {"hostname": "vda01"}, "errors": ["10.0.0.1 ddc1.example.com"]});
        let before = same.clone();
        keep.redact_value(&mut same);
        assert_eq!(same, before);
    }

    /// Every hostname and IP the fixture tree holds, from its files themselves: IP literals, names
    /// under example.com, and the kernel's hostname.
    fn sensitive_strings_of(tree: &Path) -> BTreeSet<String> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(tree, &mut files);
        let mut found = BTreeSet::new();
        for file in files {
            let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).to_ascii_lowercase();
            let b = text.as_bytes();
            for i in 0..b.len() {
                if !text.is_char_boundary(i) {
                    continue;
                }
                if let Some(len) = ip_at(b, i) {
                    found.insert(text[i..i + len].to_string());
                }
            }
            for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')) {
                let token = token.trim_matches('.');
                if token.ends_with(".example.com") {
                    found.insert(token.to_string());
                }
            }
        }
        let hostname = std::fs::read_to_string(tree.join("proc/sys/kernel/hostname")).unwrap();
        found.insert(hostname.trim().to_ascii_lowercase());
        found
    }

    /// Whether `needle` occurs in `hay` as a whole name or address (not inside a longer one).
    fn occurs(hay: &str, needle: &str) -> bool {
        hay.match_indices(needle).any(|(i, _)| {
            let before = hay[..i].bytes().last();
            let after = hay.as_bytes().get(i + needle.len());
            let glued = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':';
            !before.is_some_and(glued)
                && !after.is_some_and(|b| {
                    glued(*b)
                        || (*b == b'.'
                            && hay
                                .as_bytes()
                                .get(i + needle.len() + 1)
                                .is_some_and(u8::is_ascii_digit))
                })
        })
    }

    #[test]
    fn no_hostname_or_ip_of_the_fixture_survives_hash_or_drop() {
        let tree_dir = crate::probes::testing_fixture("rpm-healthy");
        let sensitive = sensitive_strings_of(&tree_dir);
        assert!(sensitive.contains("vda-rh01"), "{sensitive:?}");
        assert!(sensitive.contains("10.20.30.41"), "{sensitive:?}");
        assert!(sensitive.contains("ddc1.example.com"), "{sensitive:?}");
        for mode in ["hash", "drop"] {
            let dir = tempfile::tempdir().unwrap();
            let config = Config::from_toml(&format!(
                "[redaction]\nhostnames = \"{mode}\"\nip_addresses = \"{mode}\"\nkey_file = \"{}\"\n",
                key_file(dir.path()).display()
            ))
            .unwrap();
            assert!(config.problems("", PROBES).is_empty());
            let source: Arc<dyn HostSource> = Arc::new(Tree::open(&tree_dir).unwrap());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let config = Arc::new(config);
            let snapshot = rt.block_on(crate::snapshot::collect(
                &config,
                &source,
                AgentHealth::default(),
                uuid::Uuid::new_v4(),
                PROBES,
            ));
            rt.shutdown_background();
            let raw = snapshot.to_json_pretty().to_ascii_lowercase();
            assert!(
                occurs(&raw, "vda-rh01"),
                "the unredacted snapshot should name the host"
            );
            assert!(occurs(&raw, "ddc1.example.com"), "and the controller in hdx.log");
            let redacted = apply(&config.redaction, snapshot).unwrap();
            redacted.validate().unwrap();
            let printed = redacted.to_json_pretty().to_ascii_lowercase();
            for s in &sensitive {
                assert!(
                    !occurs(&printed, s),
                    "{mode}: `{s}` is still in the snapshot:\n{printed}"
                );
            }
        }
    }
}
