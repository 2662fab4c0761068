//! The collector's own counters for `/metrics` (Prometheus text format 0.0.4, written by hand: a
//! few counters and one histogram do not need a client library). What the handlers count lives here
//! in atomics; what the database knows (queue, hosts, findings, webhooks) is read at scrape time
//! through `store::metrics` and rendered by [`render`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::metrics::Gauges;

/// Refusal reasons of `POST /v1/snapshots`: the `error` codes of `http::error`, with their status.
/// A code missing here is counted as `other` (a test keeps the list complete for ingest errors).
pub const REFUSAL_REASONS: &[(&str, u16)] = &[
    ("malformed_json", 400),
    ("invalid_snapshot", 400),
    ("invalid_request", 400),
    ("corrupt_encoding", 400),
    ("unknown_credential", 401),
    ("contract_lapsed", 403),
    ("host_mismatch", 403),
    ("request_timeout", 408),
    ("body_too_large", 413),
    ("decompressed_too_large", 413),
    ("unsupported_encoding", 415),
    ("unsupported_media_type", 415),
    ("unsupported_schema_version", 422),
    ("too_many_requests", 429),
    ("internal", 500),
    ("unavailable", 503),
    ("shutting_down", 503),
    ("other", 0),
];

/// Upper bounds (seconds) of the ingest latency buckets: from authentication to the answer after
/// the commit. A healthy commit takes milliseconds; seconds mean the writer is queueing.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counters shared by every request (`AppState::metrics`).
#[derive(Debug)]
pub struct Metrics {
    stored: AtomicU64,
    duplicate: AtomicU64,
    refused: Vec<AtomicU64>,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`], then +Inf.
    latency_buckets: Vec<AtomicU64>,
    latency_sum_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            stored: AtomicU64::new(0),
            duplicate: AtomicU64::new(0),
            refused: REFUSAL_REASONS.iter().map(|_| AtomicU64::new(0)).collect(),
            latency_buckets: (0..=LATENCY_BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
            latency_sum_micros: AtomicU64::new(0),
        }
    }
}

/// How a snapshot post ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Duplicate,
    /// The `error` code of the answer.
    Refused(&'static str),
}

impl Metrics {
    /// Counts one snapshot post; accepted ones also go into the latency histogram (refusals are
    /// mostly decided before the body is read, and would only blur it).
    pub fn snapshot(&self, outcome: Outcome, took: Duration) {
        match outcome {
            Outcome::Stored => self.stored.fetch_add(1, Ordering::Relaxed),
            Outcome::Duplicate => self.duplicate.fetch_add(1, Ordering::Relaxed),
            Outcome::Refused(code) => {
                let i = REFUSAL_REASONS
                    .iter()
                    .position(|(c, _)| *c == code)
                    .unwrap_or(REFUSAL_REASONS.len() - 1);
                self.refused[i].fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        // Stored per bucket, summed into cumulative counts when rendered.
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The exposition: the counters, then the database's gauges (absent when they could not be read,
/// with `callhome_metrics_db_up 0`, so that a scrape still shows the process's own counters).
pub fn render(m: &Metrics, gauges: Option<&Gauges>) -> String {
    let mut out = String::with_capacity(4096);
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);

    header(
        &mut out,
        "callhome_snapshots_accepted_total",
        "counter",
        "Snapshot posts answered 2xx, by status: stored (201) or duplicate (200).",
    );
    let _ = writeln!(
        out,
        "callhome_snapshots_accepted_total{{status=\"stored\"}} {}",
        get(&m.stored)
    );
    let _ = writeln!(
        out,
        "callhome_snapshots_accepted_total{{status=\"duplicate\"}} {}",
        get(&m.duplicate)
    );

    header(
        &mut out,
        "callhome_snapshots_refused_total",
        "counter",
        "Snapshot posts refused by the snapshot handler, by error code and HTTP status.",
    );
    for ((reason, status), n) in REFUSAL_REASONS.iter().zip(&m.refused) {
        let _ = writeln!(
            out,
            "callhome_snapshots_refused_total{{reason=\"{reason}\",status=\"{status}\"}} {}",
            get(n)
        );
    }

    header(
        &mut out,
        "callhome_ingest_duration_seconds",
        "histogram",
        "Time from the start of an accepted snapshot post to its answer after the commit.",
    );
    let mut cumulative = 0;
    for (le, n) in LATENCY_BUCKETS.iter().zip(&m.latency_buckets) {
        cumulative += get(n);
        let _ = writeln!(
            out,
            "callhome_ingest_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += m.latency_buckets.last().map(get).unwrap_or(0);
    let _ = writeln!(
        out,
        "callhome_ingest_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    // Microseconds summed exactly, shown in seconds.
    let sum = get(&m.latency_sum_micros) as f64 / 1e6;
    let _ = writeln!(out, "callhome_ingest_duration_seconds_sum {sum}");
    let _ = writeln!(out, "callhome_ingest_duration_seconds_count {cumulative}");

    header(
        &mut out,
        "callhome_metrics_db_up",
        "gauge",
        "1 when the database gauges below were read for this scrape, 0 when the database did not answer.",
    );
    let _ = writeln!(out, "callhome_metrics_db_up {}", u8::from(gauges.is_some()));
    let Some(g) = gauges else {
        return out;
    };
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    };
    gauge(
        &mut out,
        "callhome_queue_open",
        "Open entries of the critical queue (Priority and Priority Plus orgs).",
        g.queue_open,
    );
    gauge(
        &mut out,
        "callhome_queue_overdue",
        "Open, unacknowledged queue entries past their response deadline.",
        g.queue_overdue,
    );
    header(
        &mut out,
        "callhome_hosts",
        "gauge",
        "Enrolled hosts by state: active (a snapshot within metrics.stale_after_secs) or stale.",
    );
    let _ = writeln!(out, "callhome_hosts{{state=\"active\"}} {}", g.hosts_active);
    let _ = writeln!(out, "callhome_hosts{{state=\"stale\"}} {}", g.hosts_stale);
    gauge(
        &mut out,
        "callhome_findings_open_critical",
        "Open findings of severity critical, all orgs.",
        g.open_criticals,
    );
    header(
        &mut out,
        "callhome_webhook_failures_total",
        "counter",
        "Webhook delivery attempts that failed (from the outbox, so it survives restarts).",
    );
    let _ = writeln!(
        out,
        "callhome_webhook_failures_total {}",
        g.webhook_failed_attempts
    );
    header(
        &mut out,
        "callhome_webhook_alerts",
        "gauge",
        "Undelivered Priority Plus alerts: failing (retrying after a failure) or given_up.",
    );
    let _ = writeln!(
        out,
        "callhome_webhook_alerts{{state=\"failing\"}} {}",
        g.webhook_failing
    );
    let _ = writeln!(
        out,
        "callhome_webhook_alerts{{state=\"given_up\"}} {}",
        g.webhook_given_up
    );
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the text format as Prometheus parses it: every sample belongs to a family declared
    /// with HELP and TYPE before it, names and labels are well formed, values are numbers.
    fn samples(text: &str) -> Vec<(String, String, f64)> {
        let mut declared = std::collections::HashMap::new();
        let mut out = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                declared.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#') && !line.is_empty(), "stray line {line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => {
                    let l = l.strip_suffix('}').unwrap();
                    for pair in l.split(',') {
                        let (k, v) = pair.split_once('=').unwrap();
                        assert!(k.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{line}");
                        assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
                    }
                    (n, l)
                }
                None => (series, ""),
            };
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{line}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| declared.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(declared.contains_key(family), "{name} has no TYPE before it");
            out.push((name.to_owned(), labels.to_owned(), value));
        }
        out
    }

    fn value(samples: &[(String, String, f64)], name: &str, labels: &str) -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}}"))
            .2
    }

    #[test]
    fn exposition_format_counters_and_histogram() {
        let m = Metrics::default();
        m.snapshot(Outcome::Stored, Duration::from_millis(3));
        m.snapshot(Outcome::Stored, Duration::from_millis(30));
        m.snapshot(Outcome::Duplicate, Duration::from_secs(20));
        m.snapshot(Outcome::Refused("unknown_credential"), Duration::from_millis(1));
        m.snapshot(Outcome::Refused("no_such_code"), Duration::from_millis(1));
        let gauges = Gauges {
            queue_open: 3,
            hosts_active: 7,
            hosts_stale: 2,
            open_criticals: 4,
            webhook_failed_attempts: 5,
            ..Gauges::default()
        };
        let text = render(&m, Some(&gauges));
        let s = samples(&text);
        assert_eq!(
            value(&s, "callhome_snapshots_accepted_total", r#"status="stored""#),
            2.0
        );
        assert_eq!(
            value(&s, "callhome_snapshots_accepted_total", r#"status="duplicate""#),
            1.0
        );
        assert_eq!(
            value(
                &s,
                "callhome_snapshots_refused_total",
                r#"reason="unknown_credential",status="401""#
            ),
            1.0
        );
        assert_eq!(
            value(
                &s,
                "callhome_snapshots_refused_total",
                r#"reason="other",status="0""#
            ),
            1.0
        );
        // Cumulative buckets: 3 ms, 30 ms, 20 s (past the last bound).
        assert_eq!(
            value(&s, "callhome_ingest_duration_seconds_bucket", r#"le="0.005""#),
            1.0
        );
        assert_eq!(
            value(&s, "callhome_ingest_duration_seconds_bucket", r#"le="0.05""#),
            2.0
        );
        assert_eq!(
            value(&s, "callhome_ingest_duration_seconds_bucket", r#"le="10""#),
            2.0
        );
        assert_eq!(
            value(&s, "callhome_ingest_duration_seconds_bucket", r#"le="+Inf""#),
            3.0
        );
        assert_eq!(value(&s, "callhome_ingest_duration_seconds_count", ""), 3.0);
        assert!((value(&s, "callhome_ingest_duration_seconds_sum", "") - 20.033).abs() < 1e-9);
        let buckets: Vec<f64> = s
            .iter()
            .filter(|(n, _, _)| n == "callhome_ingest_duration_seconds_bucket")
            .map(|(_, _, v)| *v)
            .collect();
        assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(value(&s, "callhome_queue_open", ""), 3.0);
        assert_eq!(value(&s, "callhome_hosts", r#"state="active""#), 7.0);
        assert_eq!(value(&s, "callhome_hosts", r#"state="stale""#), 2.0);
        assert_eq!(value(&s, "callhome_findings_open_critical", ""), 4.0);
        assert_eq!(value(&s, "callhome_webhook_failures_total", ""), 5.0);
        assert_eq!(value(&s, "callhome_metrics_db_up", ""), 1.0);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn without_the_database_the_counters_still_render() {
        let text = render(&Metrics::default(), None);
        let s = samples(&text);
        assert_eq!(value(&s, "callhome_metrics_db_up", ""), 0.0);
        assert!(!text.contains("callhome_queue_open"));
    }

    #[test]
    fn every_ingest_refusal_has_its_reason() {
        use crate::http::AppError;
        // The refusals `POST /v1/snapshots` can answer; each must be counted under its own code.
        for e in [
            AppError::MalformedJson(String::new()),
            AppError::InvalidSnapshot(String::new()),
            AppError::UnknownCredential(String::new()),
            AppError::ContractLapsed { org: String::new() },
            AppError::HostMismatch(String::new()),
            AppError::InvalidRequest(String::new()),
            AppError::CorruptEncoding(String::new()),
            AppError::BodyTooLarge(String::new()),
            AppError::DecompressedTooLarge(String::new()),
            AppError::UnsupportedEncoding(String::new()),
            AppError::UnsupportedMediaType(String::new()),
            AppError::UnsupportedSchemaVersion(String::new()),
            AppError::RequestTimeout(30),
            AppError::TooManyRequests { retry_after: 1 },
            AppError::ShuttingDown { retry_after: 1 },
            AppError::Unavailable(String::new()),
            AppError::Internal(String::new()),
        ] {
            let (_, status) = REFUSAL_REASONS
                .iter()
                .find(|(c, _)| *c == e.code())
                .unwrap_or_else(|| panic!("{} missing from REFUSAL_REASONS", e.code()));
            assert_eq!(*status, e.status().as_u16(), "{}", e.code());
        }
    }
}
