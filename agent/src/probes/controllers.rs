//! `controllers` probe: can this VDA find and reach each Delivery Controller it registers with?
//!
//! The controllers are the VDA's `ListOfDDCs` (`ctxreg read -k
//! "HKLM\Software\Citrix\VirtualDesktopAgent" -v ListOfDDCs`: space-separated FQDNs); no `ctxreg`
//! means no Linux VDA, so no data. For each controller: forward DNS (`getent ahosts NAME`, which asks
//! NSS as the VDA does, `/etc/hosts` included), reverse DNS of the first address (`getent hosts
//! ADDR`; Kerberos and the VDA's registration both trip over a PTR record naming another host), and
//! a TCP connect to the registration port (config `[controllers]`, default 80) through the host
//! source, so that a tree answers from `.callhome/tcp.json` and tests never leave the machine.
//!
//! Controllers are checked in parallel, each under the connect timeout, so that unreachable ones
//! cost one timeout, not one each.

use std::io;
use std::time::Duration;

use callhome_shared::{ControllerCheck, ControllersSection};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

/// The registry read that lists the controllers (Citrix Linux VDA, `ctxreg`).
const LIST_OF_DDCS: &[&str] = &[
    "/opt/Citrix/VDA/bin/ctxreg",
    "read",
    "-k",
    "HKLM\\Software\\Citrix\\VirtualDesktopAgent",
    "-v",
    "ListOfDDCs",
];
const MAX_CONTROLLERS: usize = 16;
const MAX_ADDRESSES: usize = 8;
/// Time kept back from the probe's deadline for building the section.
const DEADLINE_MARGIN: Duration = Duration::from_millis(200);

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let port = ctx.config.controllers_port();
    let configured_timeout = ctx.config.controllers_connect_timeout();
    let mut section = ControllersSection {
        port,
        connect_timeout_ms: u64::try_from(configured_timeout.as_millis()).unwrap_or(u64::MAX),
        ..ControllersSection::default()
    };
    let names = match ctx.run(LIST_OF_DDCS) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ProbeOutput::NoData),
        Err(e) => {
            section.list_error = Some(format!("ctxreg: {e}"));
            return Ok(ProbeOutput::Section(Section::Controllers(section)));
        }
        Ok(out) if !out.success() => {
            let stderr = out.stderr_text();
            let reason = stderr.lines().next().unwrap_or("").trim();
            let mut error = match out.status {
                Some(code) => format!("ctxreg exited with {code}"),
                None => "ctxreg was killed by a signal".to_string(),
            };
            if !reason.is_empty() {
                error = format!("{error}: {reason}");
            }
            section.list_error = Some(error);
            return Ok(ProbeOutput::Section(Section::Controllers(section)));
        }
        Ok(out) => parse_list_of_ddcs(&out.stdout_text()),
    };

    // Never wait past the probe's own deadline, whatever the config says.
    let left = ctx
        .deadline
        .saturating_duration_since(std::time::Instant::now())
        .saturating_sub(DEADLINE_MARGIN);
    let timeout = configured_timeout.min(left).max(Duration::from_millis(1));
    section.controllers = std::thread::scope(|scope| {
        let checks: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(move || check(ctx, name, port, timeout)))
            .collect();
        checks
            .into_iter()
            .zip(&names)
            .map(|(handle, name)| {
                handle.join().unwrap_or_else(|_| ControllerCheck {
                    name: name.clone(),
                    connect_error: Some("check panicked".into()),
                    connect_error_kind: Some("other".into()),
                    ..ControllerCheck::default()
                })
            })
            .collect()
    });
    Ok(ProbeOutput::Section(Section::Controllers(section)))
}

/// `ListOfDDCs`: names separated by spaces (commas tolerated), duplicates dropped, at most 16.
fn parse_list_of_ddcs(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in text.split(|c: char| c.is_whitespace() || c == ',') {
        let name = name.trim();
        if !name.is_empty()
            && !names.iter().any(|n| n.eq_ignore_ascii_case(name))
            && names.len() < MAX_CONTROLLERS
        {
            names.push(name.to_string());
        }
    }
    names
}

fn check(ctx: &ProbeContext, name: &str, port: u16, timeout: Duration) -> ControllerCheck {
    let mut c = ControllerCheck {
        name: name.to_string(),
        ..ControllerCheck::default()
    };
    let forward = ctx.run(&["getent", "ahosts", name]);
    let resolves = match &forward {
        Ok(out) if out.success() => {
            c.addresses = parse_getent_ahosts(&out.stdout_text());
            !c.addresses.is_empty()
        }
        // getent exits 2 when the name is not found (getent(1)).
        Ok(_) => false,
        // No getent to ask: let the connect resolve the name itself.
        Err(_) => true,
    };
    if let Some(first) = c.addresses.first()
        && let Ok(out) = ctx.run(&["getent", "hosts", first])
        && out.success()
    {
        c.reverse_name = parse_getent_hosts_name(&out.stdout_text());
        c.reverse_matches = c.reverse_name.as_deref().map(|r| names_match(name, r));
    }
    if !resolves {
        c.connect_error_kind = Some("not_found".into());
        c.connect_error = Some(format!("{name} does not resolve"));
        return c;
    }
    match ctx.source.tcp_connect(name, port, timeout) {
        Ok(took) => {
            c.reachable = true;
            c.connect_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        }
        Err(e) => {
            c.connect_error_kind = Some(
                match e.kind() {
                    io::ErrorKind::ConnectionRefused => "refused",
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed_out",
                    io::ErrorKind::NotFound => "not_found",
                    _ => "other",
                }
                .into(),
            );
            c.connect_error = Some(e.to_string());
        }
    }
    c
}

/// `getent ahosts NAME`: `ADDRESS  STREAM|DGRAM|RAW  [CANONNAME]` lines, three per address; the
/// distinct addresses in order, at most 8.
fn parse_getent_ahosts(text: &str) -> Vec<String> {
    let mut addresses: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(addr) = line.split_whitespace().next() else {
            continue;
        };
        if addr.parse::<std::net::IpAddr>().is_ok()
            && !addresses.iter().any(|a| a == addr)
            && addresses.len() < MAX_ADDRESSES
        {
            addresses.push(addr.to_string());
        }
    }
    addresses
}

/// `getent hosts ADDR`: `ADDRESS  CANONICAL-NAME [ALIASES...]`; the canonical name.
fn parse_getent_hosts_name(text: &str) -> Option<String> {
    let mut tokens = text.lines().next()?.split_whitespace();
    tokens.next()?.parse::<std::net::IpAddr>().ok()?;
    tokens.next().map(str::to_string)
}

/// Whether a reverse name is the configured one: case-insensitive, trailing dot ignored; a
/// configured short name matches the reverse name's first label.
fn names_match(configured: &str, reverse: &str) -> bool {
    let configured = configured.trim_end_matches('.');
    let reverse = reverse.trim_end_matches('.');
    if configured.eq_ignore_ascii_case(reverse) {
        return true;
    }
    !configured.contains('.')
        && reverse
            .split('.')
            .next()
            .is_some_and(|label| label.eq_ignore_ascii_case(configured))
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, _now: time::OffsetDateTime) {
    std::hint::black_box(parse_list_of_ddcs(text));
    std::hint::black_box(parse_getent_ahosts(text));
    if let Some(name) = parse_getent_hosts_name(text) {
        let configured = text.lines().next().unwrap_or_default();
        std::hint::black_box(names_match(configured, &name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::probes::testing;

    #[test]
    fn list_of_ddcs() {
        assert_eq!(
            parse_list_of_ddcs("ddc1.example.com ddc2.example.com\n"),
            ["ddc1.example.com", "ddc2.example.com"]
        );
        assert_eq!(
            parse_list_of_ddcs(" ddc1.example.com,DDC1.example.com  ddc2 \n"),
            ["ddc1.example.com", "ddc2"]
        );
        assert!(parse_list_of_ddcs("\n").is_empty());
        let many: String = (0..40).map(|i| format!("ddc{i}.example.com ")).collect();
        assert_eq!(parse_list_of_ddcs(&many).len(), MAX_CONTROLLERS);
    }

    #[test]
    fn getent_outputs() {
        let ahosts = "\
10.0.1.21       STREAM ddc1.example.com
10.0.1.21       DGRAM  
10.0.1.21       RAW    
fd00::21        STREAM 
fd00::21        DGRAM  
fd00::21        RAW    
";
        assert_eq!(parse_getent_ahosts(ahosts), ["10.0.1.21", "fd00::21"]);
        assert!(parse_getent_ahosts("").is_empty());
        assert!(parse_getent_ahosts("getent: bad\n").is_empty());
        assert_eq!(
            parse_getent_hosts_name("10.0.1.21       ddc1.example.com ddc1\n").as_deref(),
            Some("ddc1.example.com")
        );
        assert_eq!(parse_getent_hosts_name("10.0.1.21\n"), None);
        assert_eq!(parse_getent_hosts_name("not an address x\n"), None);
    }

    #[test]
    fn reverse_name_matching() {
        assert!(names_match("ddc1.example.com", "DDC1.example.com."));
        assert!(names_match("ddc1", "ddc1.example.com"));
        assert!(!names_match("ddc1.example.com", "ddc1"));
        assert!(!names_match("ddc1.example.com", "web7.example.com"));
    }

    fn section_of(tree: &str, config: Config) -> ControllersSection {
        let Section::Controllers(s) = testing::section(probe, &testing::context_with(tree, config)) else {
            panic!("not a controllers section")
        };
        s
    }

    #[test]
    fn rpm_healthy_controllers_resolve_and_answer() {
        let s = section_of("rpm-healthy", Config::default());
        assert_eq!((s.port, s.connect_timeout_ms, s.list_error), (80, 2000, None));
        let summary: Vec<_> = s
            .controllers
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.addresses.clone(),
                    c.reverse_name.as_deref(),
                    c.reverse_matches,
                    c.reachable,
                    c.connect_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "ddc1.example.com",
                    vec!["10.0.1.21".to_string()],
                    Some("ddc1.example.com"),
                    Some(true),
                    true,
                    Some(3)
                ),
                (
                    "ddc2.example.com",
                    vec!["10.0.1.22".to_string()],
                    Some("ddc2.example.com"),
                    Some(true),
                    true,
                    Some(4)
                ),
            ]
        );
    }

    #[test]
    fn deb_healthy_controllers_resolve_and_answer() {
        let s = section_of("deb-healthy", Config::default());
        assert_eq!(s.controllers.len(), 2);
        assert!(
            s.controllers
                .iter()
                .all(|c| c.reachable && c.reverse_matches == Some(true))
        );
    }

    #[test]
    fn another_port_is_not_in_the_tree_and_times_out() {
        let config = Config::from_toml("[controllers]\nport = 8080\nconnect_timeout_ms = 50\n").unwrap();
        let s = section_of("rpm-healthy", config);
        assert_eq!((s.port, s.connect_timeout_ms), (8080, 50));
        for c in &s.controllers {
            assert!(!c.reachable);
            assert_eq!(c.connect_error_kind.as_deref(), Some("timed_out"));
            // DNS does not depend on the port.
            assert_eq!(c.reverse_matches, Some(true));
        }
    }

    /// A throwaway tree: `commands` as (argv, stdout, status), and `tcp.json`.
    fn tree(commands: &[(&[&str], &str, i32)], tcp: &str) -> (tempfile::TempDir, ProbeContext) {
        testing::scratch_tree(commands, &[("tcp.json", tcp)])
    }

    #[test]
    fn refused_unresolved_and_misnamed_controllers() {
        let (_dir, ctx) = tree(
            &[
                (
                    LIST_OF_DDCS,
                    "ddc1.example.com ddc2.example.com ddc9.example.com\n",
                    0,
                ),
                (
                    &["getent", "ahosts", "ddc1.example.com"],
                    "10.0.1.21       STREAM ddc1.example.com\n",
                    0,
                ),
                (
                    &["getent", "hosts", "10.0.1.21"],
                    "10.0.1.21       web7.example.com\n",
                    0,
                ),
                (
                    &["getent", "ahosts", "ddc2.example.com"],
                    "10.0.1.22       STREAM ddc2.example.com\n",
                    0,
                ),
                (&["getent", "hosts", "10.0.1.22"], "", 2),
                (&["getent", "ahosts", "ddc9.example.com"], "", 2),
            ],
            r#"{"ddc1.example.com:80": {"ms": 5}, "ddc2.example.com:80": {"error": "Connection refused (os error 111)", "kind": "refused"}}"#,
        );
        let Section::Controllers(s) = testing::section(probe, &ctx) else {
            panic!()
        };
        let [ddc1, ddc2, ddc9] = &s.controllers[..] else {
            panic!("{s:?}")
        };
        assert!(ddc1.reachable);
        assert_eq!(ddc1.reverse_name.as_deref(), Some("web7.example.com"));
        assert_eq!(ddc1.reverse_matches, Some(false));
        assert!(!ddc2.reachable);
        assert_eq!(ddc2.connect_error_kind.as_deref(), Some("refused"));
        assert_eq!((ddc2.reverse_name.as_ref(), ddc2.reverse_matches), (None, None));
        assert!(!ddc9.reachable && ddc9.addresses.is_empty());
        assert_eq!(ddc9.connect_error_kind.as_deref(), Some("not_found"));
    }

    #[test]
    fn unreadable_list_is_said() {
        let (_dir, ctx) = tree(&[(LIST_OF_DDCS, "", 1)], "{}");
        let Section::Controllers(s) = testing::section(probe, &ctx) else {
            panic!()
        };
        assert!(s.controllers.is_empty());
        assert_eq!(s.list_error.as_deref(), Some("ctxreg exited with 1"));
    }

    #[test]
    fn no_ctxreg_is_no_data() {
        let (_dir, ctx) = testing::scratch_tree(&[], &[]);
        assert_eq!(probe(&ctx), Ok(ProbeOutput::NoData));
    }
}
