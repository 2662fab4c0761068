//! Probes: each fills one section of the snapshot. One probe per file, registered once in [`PROBES`]
//! (node_exporter's collector table is the model). Whether a probe runs and how long it may take come
//! from that table and the config, never from code in the probe.
//!
//! The [`run`] function runs the enabled probes concurrently, each on a blocking thread under its own
//! timeout, and records for every probe its outcome and duration. A probe that fails, panics or times
//! out is recorded as such; it never aborts the snapshot.

mod disks;
mod system;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use callhome_shared::{DisksSection, ProbeError, ProbeOutcome, ProbeReport, Sections, SystemSection};

/// Every probe the agent has: name (also the section's and the config table's), whether it runs when
/// the config says nothing, and the function.
pub const PROBES: &[Probe] = &[
    Probe {
        name: "system",
        default_enabled: true,
        run: system::probe,
    },
    Probe {
        name: "disks",
        default_enabled: true,
        run: disks::probe,
    },
];

/// One registered probe.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub name: &'static str,
    pub default_enabled: bool,
    /// Runs on a blocking thread; may block on the filesystem (a hung NFS mount) for as long as it
    /// likes, the runner stops waiting at the timeout.
    pub run: fn() -> Result<ProbeOutput, ProbeFailure>,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutput {
    Section(Section),
    /// What the probe looks at is not on this host (for example no VDA installed): not an error.
    NoData,
}

/// A section's content, typed where the schema has a type for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    System(SystemSection),
    Disks(DisksSection),
    /// A section the shared schema does not type (yet): stored under the probe's name as is.
    Raw(serde_json::Value),
}

/// Why a probe could not produce its section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeFailure(pub String);

impl From<std::io::Error> for ProbeFailure {
    fn from(e: std::io::Error) -> Self {
        ProbeFailure(e.to_string())
    }
}

/// Everything the probes produced, ready for the snapshot envelope.
#[derive(Debug, Clone, Default)]
pub struct ProbeRun {
    pub sections: Sections,
    pub probes: BTreeMap<String, ProbeReport>,
    pub errors: Vec<ProbeError>,
    /// Wall time from the first probe's start to the last probe's end.
    pub collection_ms: u64,
}

/// Runs `plan` (probes with their timeouts) concurrently and gathers the results. Must be called
/// within a multi-threaded or current-thread tokio runtime; probes that time out keep their blocking
/// thread until they return, so the caller should not wait for blocking tasks at shutdown.
pub async fn run(plan: &[(&Probe, Duration)]) -> ProbeRun {
    let started = Instant::now();
    let tasks: Vec<_> = plan
        .iter()
        .map(|&(probe, timeout)| {
            let name = probe.name;
            let f = probe.run;
            tokio::spawn(async move {
                let t0 = Instant::now();
                let result = tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await;
                let elapsed = t0.elapsed();
                let result = match result {
                    Ok(Ok(Ok(output))) => Ok(output),
                    Ok(Ok(Err(failure))) => Err((ProbeOutcome::Failed, failure.0)),
                    Ok(Err(join)) => Err((
                        ProbeOutcome::Failed,
                        if join.is_panic() {
                            "probe panicked".to_string()
                        } else {
                            format!("probe task ended: {join}")
                        },
                    )),
                    Err(_) => Err((
                        ProbeOutcome::TimedOut,
                        format!("timed out after {} ms", timeout.as_millis()),
                    )),
                };
                (name, result, elapsed)
            })
        })
        .collect();

    let mut out = ProbeRun::default();
    for task in tasks {
        // The outer task only awaits and maps; it cannot panic, and the runtime is alive.
        let Ok((name, result, elapsed)) = task.await else {
            continue;
        };
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let outcome = match result {
            Ok(ProbeOutput::Section(section)) => {
                place(&mut out.sections, name, section);
                ProbeOutcome::Ok
            }
            Ok(ProbeOutput::NoData) => ProbeOutcome::NoData,
            Err((outcome, message)) => {
                tracing::warn!(probe = name, ?outcome, error = %message, "probe did not complete");
                out.errors.push(ProbeError {
                    probe: name.to_string(),
                    message,
                });
                outcome
            }
        };
        tracing::debug!(probe = name, ?outcome, duration_ms, "probe finished");
        out.probes
            .insert(name.to_string(), ProbeReport { outcome, duration_ms });
    }
    out.collection_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    out
}

fn place(sections: &mut Sections, name: &str, section: Section) {
    match section {
        Section::System(s) => sections.system = Some(s),
        Section::Disks(d) => sections.disks = Some(d),
        Section::Raw(v) => {
            sections.other.insert(name.to_string(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fine() -> Result<ProbeOutput, ProbeFailure> {
        Ok(ProbeOutput::Section(Section::Raw(
            serde_json::json!({"fine": true}),
        )))
    }
    fn broken() -> Result<ProbeOutput, ProbeFailure> {
        Err(ProbeFailure("cannot read /proc/nothing".into()))
    }
    fn slow() -> Result<ProbeOutput, ProbeFailure> {
        std::thread::sleep(Duration::from_millis(500));
        fine()
    }
    fn absent() -> Result<ProbeOutput, ProbeFailure> {
        Ok(ProbeOutput::NoData)
    }
    fn panics() -> Result<ProbeOutput, ProbeFailure> {
        panic!("probe bug")
    }

    fn probe(name: &'static str, run: fn() -> Result<ProbeOutput, ProbeFailure>) -> Probe {
        Probe {
            name,
            default_enabled: true,
            run,
        }
    }

    /// Runs on a runtime that does not wait for the slow probe's thread when it shuts down.
    fn run_plan(plan: &[(&Probe, Duration)]) -> ProbeRun {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let out = rt.block_on(run(plan));
        rt.shutdown_background();
        out
    }

    #[test]
    fn failing_slow_and_panicking_probes_are_recorded_and_the_rest_still_fill_their_sections() {
        let probes = [
            probe("fine", fine),
            probe("broken", broken),
            probe("slow", slow),
            probe("absent", absent),
            probe("panics", panics),
        ];
        // Each probe has its own timeout: only the slow one's is short. (A panic's backtrace can take
        // longer than that to print, so the others get plenty.)
        let plan: Vec<(&Probe, Duration)> = probes
            .iter()
            .map(|p| {
                let timeout = if p.name == "slow" { 50 } else { 5_000 };
                (p, Duration::from_millis(timeout))
            })
            .collect();
        let t0 = Instant::now();
        let out = run_plan(&plan);
        assert!(
            t0.elapsed() < Duration::from_millis(450),
            "waited for the slow probe"
        );

        let outcome = |n: &str| out.probes[n].outcome;
        assert_eq!(out.probes.len(), 5);
        assert_eq!(outcome("fine"), ProbeOutcome::Ok);
        assert_eq!(outcome("broken"), ProbeOutcome::Failed);
        assert_eq!(outcome("slow"), ProbeOutcome::TimedOut);
        assert_eq!(outcome("absent"), ProbeOutcome::NoData);
        assert_eq!(outcome("panics"), ProbeOutcome::Failed);
        assert_eq!(out.sections.other["fine"]["fine"], true);
        assert_eq!(out.sections.names(), vec!["fine"]);

        let errors: Vec<(&str, &str)> = out
            .errors
            .iter()
            .map(|e| (e.probe.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            errors,
            vec![
                ("broken", "cannot read /proc/nothing"),
                ("slow", "timed out after 50 ms"),
                ("panics", "probe panicked"),
            ]
        );
    }

    #[test]
    fn probe_names_are_unique() {
        let mut names: Vec<&str> = PROBES.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROBES.len());
    }

    #[test]
    fn real_probes_fill_their_typed_sections() {
        let plan: Vec<(&Probe, Duration)> = PROBES.iter().map(|p| (p, Duration::from_secs(10))).collect();
        let out = run_plan(&plan);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert!(out.sections.system.is_some());
        assert!(out.sections.disks.is_some());
    }
}
