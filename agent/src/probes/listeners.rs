//! `listeners` probe: whether the VDA's ports are listening: 1494 (ICA), 2598 (CGP, session
//! reliability) and 443 (TLS-secured ICA), and on which local addresses.
//!
//! Read from the kernel's TCP socket tables `/proc/net/tcp` and `/proc/net/tcp6` (proc(5)): one socket
//! a line, `local_address` as `ADDR:PORT` in hex, `st` the TCP state, where `0A` is `TCP_LISTEN`
//! (include/net/tcp_states.h). The port is a plain hex number; the address is the kernel's in-memory
//! `__be32` words printed as host-order integers, so on little-endian hosts (x86_64, aarch64: every
//! platform the Linux VDA ships for) each 32-bit word's bytes come out reversed.
//! This works on any Linux host: on one without a VDA the ports are reported as not listening.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use callhome_shared::{ListenersSection, ListeningPort};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

/// The ports looked at and what the VDA uses them for (Citrix, "Communication Ports Used by Citrix
/// Technologies": ICA 1494, CGP 2598, TLS 443).
const PORTS: &[(u16, &str)] = &[(1494, "ica"), (2598, "cgp"), (443, "tls")];

const TCP_LISTEN: &str = "0A";

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let tcp = ctx
        .read_text("/proc/net/tcp")
        .map_err(|e| ProbeFailure::reading("/proc/net/tcp", &e))?;
    // No tcp6 table when IPv6 is disabled (ipv6.disable=1): then nothing listens on IPv6.
    let tcp6 = match ctx.read_text("/proc/net/tcp6") {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ProbeFailure::reading("/proc/net/tcp6", &e)),
    };
    let mut listening = parse_listening(&tcp);
    listening.extend(parse_listening(&tcp6));
    Ok(ProbeOutput::Section(Section::Listeners(section(&listening))))
}

/// The section for the listening sockets found.
fn section(listening: &[(String, u16)]) -> ListenersSection {
    let ports = PORTS
        .iter()
        .map(|&(port, purpose)| {
            let addresses: BTreeSet<String> = listening
                .iter()
                .filter(|(_, p)| *p == port)
                .map(|(addr, _)| addr.clone())
                .collect();
            ListeningPort {
                port,
                purpose: purpose.to_string(),
                listening: !addresses.is_empty(),
                addresses: addresses.into_iter().collect(),
            }
        })
        .collect();
    ListenersSection { ports }
}

/// The local address and port of every listening socket in a `/proc/net/tcp` or `tcp6` table. The
/// header line and malformed lines are skipped.
fn parse_listening(table: &str) -> Vec<(String, u16)> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _slot = fields.next()?;
            let local = fields.next()?;
            let _remote = fields.next()?;
            let state = fields.next()?;
            if !state.eq_ignore_ascii_case(TCP_LISTEN) {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some((parse_address(addr)?, port))
        })
        .collect()
}

/// An address of the socket tables: 8 hex digits (IPv4) or 32 (IPv6), each 32-bit word printed as a
/// little-endian host integer.
fn parse_address(hex: &str) -> Option<String> {
    if !hex.is_ascii() {
        return None;
    }
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_le_bytes()).collect();
    match (hex.len(), bytes.len()) {
        (8, 4) => {
            let b: [u8; 4] = bytes.try_into().ok()?;
            Some(Ipv4Addr::from(b).to_string())
        }
        (32, 16) => {
            let b: [u8; 16] = bytes.try_into().ok()?;
            Some(Ipv6Addr::from(b).to_string())
        }
        _ => None,
    }
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, _now: time::OffsetDateTime) {
    std::hint::black_box(section(&parse_listening(text)));
    for word in text.split_whitespace() {
        std::hint::black_box(parse_address(word));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;

    // Lines as the kernel writes them (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c), trimmed at the right.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:05D6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31512 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 24220 1 0000000000000000 100 0 0 10 0
   2: 291E140A:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31600 1 0000000000000000 100 0 0 10 0
   3: 291E140A:05D6 1701280A:E1F2 01 00000000:00000000 02:0009F2A1 00000000     0        0 51230 2 0000000000000000 20 4 30 10 -1
   4: garbage line
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0A26 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31513 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20101 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF0000291E140A:0A26 0000000000000000FFFF00001701280A:C350 01 00000000:00000000 02:00012A10 00000000     0        0 51299 2 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn listening_sockets_with_their_addresses() {
        assert_eq!(
            parse_listening(TCP),
            vec![
                ("0.0.0.0".to_string(), 1494),
                ("127.0.0.1".to_string(), 631),
                ("10.20.30.41".to_string(), 443),
            ]
        );
        assert_eq!(
            parse_listening(TCP6),
            vec![("::".to_string(), 2598), ("::1".to_string(), 22)]
        );
        assert!(parse_listening("").is_empty());
        assert!(parse_listening("   0: 0000:05D6 00000000:0000 0A\n").is_empty());
    }

    #[test]
    fn addresses_decode_word_by_word() {
        assert_eq!(
            parse_address("0000000000000000FFFF0000291E140A").as_deref(),
            Some("::ffff:10.20.30.41")
        );
        assert_eq!(
            parse_address("B80D0120000000000000000001000000").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(parse_address("XYZ"), None);
        assert_eq!(parse_address("0100007F00"), None);
    }

    #[test]
    fn every_port_reported_listening_or_not() {
        let mut all = parse_listening(TCP);
        all.extend(parse_listening(TCP6));
        let s = section(&all);
        let summary: Vec<(u16, &str, bool, Vec<&str>)> = s
            .ports
            .iter()
            .map(|p| {
                (
                    p.port,
                    p.purpose.as_str(),
                    p.listening,
                    p.addresses.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1494, "ica", true, vec!["0.0.0.0"]),
                (2598, "cgp", true, vec!["::"]),
                (443, "tls", true, vec!["10.20.30.41"]),
            ]
        );
        let none = section(&[]);
        assert!(none.ports.iter().all(|p| !p.listening && p.addresses.is_empty()));
        assert_eq!(none.ports.len(), 3);
    }

    fn ports(tree: &str) -> Vec<(u16, bool, Vec<String>)> {
        let Section::Listeners(s) = testing::section(probe, &testing::context(tree)) else {
            panic!("not a listeners section")
        };
        s.ports
            .into_iter()
            .map(|p| (p.port, p.listening, p.addresses))
            .collect()
    }

    #[test]
    fn rpm_healthy_listens_on_all_three() {
        assert_eq!(
            ports("rpm-healthy"),
            vec![
                (1494, true, vec!["0.0.0.0".to_string(), "::".to_string()]),
                (2598, true, vec!["0.0.0.0".to_string(), "::".to_string()]),
                (443, true, vec!["0.0.0.0".to_string()]),
            ]
        );
    }

    #[test]
    fn deb_healthy_listens_dual_stack_without_tls() {
        assert_eq!(
            ports("deb-healthy"),
            vec![
                (1494, true, vec!["::".to_string()]),
                (2598, true, vec!["::".to_string()]),
                (443, false, vec![]),
            ]
        );
    }

    #[test]
    fn service_flapping_has_no_ica_listener() {
        let p = ports("service-flapping");
        assert_eq!(p[0], (1494, false, vec![]));
        assert_eq!(p[1], (2598, false, vec![]));
    }

    #[test]
    fn vda_unregistered_still_listens() {
        let p = ports("vda-unregistered");
        assert!(p[0].1 && p[1].1, "{p:?}");
    }

    #[test]
    fn live_host_reports_cleanly() {
        let ctx = crate::probes::testing::live();
        let Section::Listeners(s) = testing::section(probe, &ctx) else {
            panic!("not a listeners section")
        };
        assert_eq!(s.ports.len(), 3);
    }
}
