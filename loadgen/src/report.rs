//! The report: one JSON document (`--json`, read by `scripts/bench-ingest`) or a table.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::pool::Pool;
use crate::procstat::ServerUsage;
use crate::run::{Mode, Outcome, Plan, quantile};

#[derive(Debug, Serialize)]
pub struct Report {
    pub label: String,
    pub url: String,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Open loop: snapshots due per second.
    pub offered_rate: Option<f64>,
    pub agents: usize,
    pub connections: usize,
    pub templates: Vec<String>,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub elapsed_secs: f64,
    pub bodies: Bodies,
    /// The measured window only.
    pub window: Window,
    /// Every answer of the run, warm-up and tail included: what the store must now hold.
    pub totals: Totals,
    pub server: Option<ServerUsage>,
    /// Server CPU per 2xx answer in the window.
    pub server_cpu_ms_per_snapshot: Option<f64>,
    pub loadgen_cpu_cores: f64,
    /// Open loop: the longest a due request waited to be sent (every connection busy, or the
    /// generator behind); small when the server keeps up.
    pub open_loop_max_send_delay_ms: Option<f64>,
    /// Open loop: requests due in the window but never sent (the server fell behind); 0 when it
    /// kept up.
    pub open_loop_unsent: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Bodies {
    pub prebuilt: usize,
    pub built_during_run: u64,
    /// Reused round and round (`--cycle`, for a server that stores nothing).
    pub cycled: bool,
    pub mean_zstd_bytes: f64,
    pub mean_json_bytes: f64,
}

#[derive(Debug, Serialize)]
pub struct Window {
    pub ok: u64,
    /// 2xx answers per second of the window: the sustained rate.
    pub ok_per_sec: f64,
    pub status: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Of the 2xx answers: closed loop from send to answer, open loop from when it was due.
    pub latency_ms: Latency,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Totals {
    pub ok: u64,
    /// 201: stored for the first time.
    pub stored: u64,
    /// 200: a replay of a stored id (a fresh id every request, so 0 is expected).
    pub duplicate: u64,
    pub status: BTreeMap<String, u64>,
    /// Requests whose answer never came (connection lost, timeout): stored or not, unknown.
    pub errors: BTreeMap<String, u64>,
}

fn by_name<K: ToString>(m: BTreeMap<K, u64>) -> BTreeMap<String, u64> {
    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn ok_count(m: &BTreeMap<u16, u64>) -> u64 {
    m.iter()
        .filter(|(k, _)| (200..300).contains(*k))
        .map(|(_, v)| v)
        .sum()
}

impl Report {
    pub fn new(label: &str, url: &str, agents: usize, plan: &Plan, pool: &Pool, outcome: Outcome) -> Report {
        let mut tally = outcome.tally;
        tally.latencies_us.sort_unstable();
        let ms = |us: Option<u32>| us.map(|v| f64::from(v) / 1000.0);
        let lat = &tally.latencies_us;
        let mean = (!lat.is_empty())
            .then(|| lat.iter().map(|&v| f64::from(v)).sum::<f64>() / lat.len() as f64 / 1000.0);
        let window_secs = plan.duration.as_secs_f64();
        let ok = ok_count(&tally.window_status);
        let total_ok = ok_count(&tally.total_status);
        let server_cpu_ms_per_snapshot = outcome
            .server
            .as_ref()
            .and_then(|s| (ok > 0).then(|| s.cpu_secs * 1000.0 / ok as f64));
        Report {
            label: label.to_owned(),
            url: url.to_owned(),
            mode: match plan.mode {
                Mode::Closed => "closed",
                Mode::Open { .. } => "open",
            },
            offered_rate: match plan.mode {
                Mode::Open { rate } => Some(rate),
                Mode::Closed => None,
            },
            agents,
            connections: plan.connections,
            templates: pool.fleet.templates.iter().map(|t| t.name.clone()).collect(),
            warmup_secs: plan.warmup.as_secs_f64(),
            duration_secs: window_secs,
            elapsed_secs: outcome.elapsed.as_secs_f64(),
            bodies: Bodies {
                prebuilt: pool.prebuilt(),
                built_during_run: pool.built_live(),
                cycled: pool.cycles(),
                mean_zstd_bytes: pool.mean_body_bytes(),
                mean_json_bytes: pool.mean_json_bytes(),
            },
            window: Window {
                ok,
                ok_per_sec: ok as f64 / window_secs,
                latency_ms: Latency {
                    p50: ms(quantile(lat, 0.50)),
                    p90: ms(quantile(lat, 0.90)),
                    p99: ms(quantile(lat, 0.99)),
                    max: ms(lat.last().copied()),
                    mean,
                },
                status: by_name(tally.window_status),
                errors: by_name(tally.window_errors),
            },
            totals: Totals {
                ok: total_ok,
                stored: tally.total_status.get(&201).copied().unwrap_or(0),
                duplicate: tally.total_status.get(&200).copied().unwrap_or(0),
                status: by_name(tally.total_status),
                errors: by_name(tally.total_errors),
            },
            server: outcome.server,
            server_cpu_ms_per_snapshot,
            loadgen_cpu_cores: outcome.loadgen_cpu_cores,
            open_loop_max_send_delay_ms: outcome.open_loop_max_lag.map(|d| d.as_secs_f64() * 1000.0),
            open_loop_unsent: outcome.open_loop_unsent,
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
        let counts = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_owned()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let mode = match self.offered_rate {
            Some(r) => format!("open loop, {r:.0}/s offered"),
            None => "closed loop".to_owned(),
        };
        let _ = writeln!(
            out,
            "{} ({}): {mode}, {} agents, {} connections, {:.0} s measured after {:.0} s warm-up",
            self.label, self.url, self.agents, self.connections, self.duration_secs, self.warmup_secs
        );
        let rows: Vec<(&str, String)> = vec![
            ("snapshots/s (2xx)", format!("{:.0}", self.window.ok_per_sec)),
            ("2xx in window", self.window.ok.to_string()),
            ("latency p50", opt(self.window.latency_ms.p50)),
            ("latency p90", opt(self.window.latency_ms.p90)),
            ("latency p99", opt(self.window.latency_ms.p99)),
            ("latency max", opt(self.window.latency_ms.max)),
            ("status (window)", counts(&self.window.status)),
            ("no answer (window)", counts(&self.window.errors)),
            ("status (whole run)", counts(&self.totals.status)),
            ("no answer (whole run)", counts(&self.totals.errors)),
            (
                "server CPU",
                self.server.as_ref().map_or("-".to_owned(), |s| {
                    format!(
                        "{:.2} cores ({:.1} s; {} process(es))",
                        s.cpu_cores, s.cpu_secs, s.processes
                    )
                }),
            ),
            (
                "server CPU per snapshot",
                self.server_cpu_ms_per_snapshot
                    .map_or("-".to_owned(), |v| format!("{v:.3} ms")),
            ),
            (
                "server RSS start/peak/end",
                self.server.as_ref().map_or("-".to_owned(), |s| {
                    format!(
                        "{:.1} / {:.1} / {:.1} MiB (VmHWM {:.1} MiB)",
                        s.rss_start_mib, s.rss_peak_mib, s.rss_end_mib, s.vm_hwm_mib
                    )
                }),
            ),
            ("loadgen CPU", format!("{:.2} cores", self.loadgen_cpu_cores)),
            (
                "bodies",
                format!(
                    "{} prebuilt{}, {} built during the run, mean {:.0} B zstd / {:.0} B JSON",
                    self.bodies.prebuilt,
                    if self.bodies.cycled { " (cycled)" } else { "" },
                    self.bodies.built_during_run,
                    self.bodies.mean_zstd_bytes,
                    self.bodies.mean_json_bytes
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(out, "  {k:<27}{v}");
        }
        if let Some(lag) = self.open_loop_max_send_delay_ms {
            let _ = writeln!(out, "  {:<27}{lag:.1} ms", "max send delay");
        }
        if let Some(unsent) = self.open_loop_unsent {
            let _ = writeln!(out, "  {:<27}{unsent}", "due but never sent");
        }
        out
    }
}
