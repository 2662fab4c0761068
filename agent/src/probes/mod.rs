//! Probes: each fills one section of the snapshot. One probe per file, registered once in [`PROBES`]
//! (node_exporter's collector table is the model). Whether a probe runs, how long it may take and how
//! much it may read come from that table and the config, never from code in the probe.
//!
//! A probe is a parser in insights-core's sense: it reads raw input only through the
//! [`ProbeContext`]'s host source (live host, tree or recorder) and returns a typed section. It never
//! writes, never talks to the collector, and reports "not on this host" as [`ProbeOutput::NoData`],
//! not as an error.
//!
//! The [`run`] function runs the enabled probes concurrently, each on a blocking thread under its own
//! timeout, and records for every probe its outcome and duration. A probe that fails, panics or times
//! out is recorded as such; it never aborts the snapshot.

mod agent;
mod cache;
mod certificates;
mod controllers;
mod crashes;
mod disks;
pub(crate) mod fuzzing;
mod identity;
mod listeners;
mod logs;
mod memory_pressure;
mod services;
mod system;
mod timesync;
mod updates;
mod vda;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callhome_shared::{ProbeError, ProbeOutcome, ProbeReport, Sections};
use time::OffsetDateTime;

use crate::config::Config;
use crate::source::{CommandOutput, FileData, HostSource};

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
    Probe {
        name: "vda",
        default_enabled: true,
        run: vda::probe,
    },
    Probe {
        name: "services",
        default_enabled: true,
        run: services::probe,
    },
    Probe {
        name: "listeners",
        default_enabled: true,
        run: listeners::probe,
    },
    Probe {
        name: "timesync",
        default_enabled: true,
        run: timesync::probe,
    },
    Probe {
        name: "identity",
        default_enabled: true,
        run: identity::probe,
    },
    Probe {
        name: "controllers",
        default_enabled: true,
        run: controllers::probe,
    },
    Probe {
        name: "memory_pressure",
        default_enabled: true,
        run: memory_pressure::probe,
    },
    Probe {
        name: "certificates",
        default_enabled: true,
        run: certificates::probe,
    },
    Probe {
        name: "updates",
        default_enabled: true,
        run: updates::probe,
    },
    Probe {
        name: "crashes",
        default_enabled: true,
        run: crashes::probe,
    },
    Probe {
        name: "logs",
        default_enabled: true,
        run: logs::probe,
    },
    Probe {
        name: "agent",
        default_enabled: true,
        run: agent::probe,
    },
];

/// One registered probe.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub name: &'static str,
    pub default_enabled: bool,
    /// Runs on a blocking thread; may block on the filesystem (a hung NFS mount) for as long as it
    /// likes, the runner stops waiting at the timeout.
    pub run: fn(&ProbeContext) -> Result<ProbeOutput, ProbeFailure>,
}

/// A probe the config enables, with its limits.
#[derive(Debug, Clone, Copy)]
pub struct PlannedProbe<'a> {
    pub probe: &'a Probe,
    pub timeout: Duration,
    pub max_read_bytes: u64,
}

/// What a probe may use: the host source, the config, its limits, and the agent's own state.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    pub source: Arc<dyn HostSource>,
    pub config: Arc<Config>,
    /// Most bytes this probe reads from one file.
    pub max_read_bytes: u64,
    /// When the runner stops waiting for this probe; commands get what is left of it.
    pub deadline: Instant,
    /// The agent's own health, for the `agent` probe.
    pub agent: Arc<AgentHealth>,
    /// Where a probe may keep an expensive answer between runs (`STATE_DIR/cache`); `None` when the
    /// source must be asked every time (a tree, a capture).
    pub cache_dir: Option<PathBuf>,
}

impl ProbeContext {
    /// The first `max_read_bytes` of a file.
    pub fn read_head(&self, path: &str) -> io::Result<FileData> {
        self.source.read_head(path, self.max_read_bytes)
    }

    /// The last `max_read_bytes` of a file.
    pub fn read_tail(&self, path: &str) -> io::Result<FileData> {
        self.source.read_tail(path, self.max_read_bytes)
    }

    /// A whole small file as text (configuration files, `/proc` entries), within the read cap.
    pub fn read_text(&self, path: &str) -> io::Result<String> {
        self.read_head(path).map(|d| d.text())
    }

    /// Runs a command with what is left of the probe's time.
    pub fn run(&self, argv: &[&str]) -> io::Result<CommandOutput> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.source.run(argv, left.max(Duration::from_millis(100)))
    }

    /// Now on the host (a tree's capture time).
    pub fn now(&self) -> OffsetDateTime {
        self.source.now()
    }
}

/// The agent's own state as the `agent` probe reports it; filled by whoever runs the probes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentHealth {
    /// Snapshots waiting in the spool, and their bytes.
    pub spool_depth: u64,
    pub spool_bytes: u64,
    /// Snapshots dropped from a full spool since the last delivery.
    pub dropped_since_last_delivery: u64,
    /// Spool files moved to quarantine (corrupt, or refused for good by the collector), all time.
    pub quarantined: u64,
    pub last_delivery: Option<OffsetDateTime>,
    /// Why the last delivery attempt failed, if it did.
    pub last_error: Option<String>,
}

/// What a probe found.
// A probe's output is moved once, from its thread to the runner: boxing the large sections would buy
// nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutput {
    Section(Section),
    /// What the probe looks at is not on this host (for example no VDA installed): not an error.
    NoData,
}

/// A section's content, typed as in the shared schema.
#[allow(clippy::large_enum_variant)] // see ProbeOutput
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    System(callhome_shared::SystemSection),
    Disks(callhome_shared::DisksSection),
    Vda(callhome_shared::VdaSection),
    Services(callhome_shared::ServicesSection),
    Listeners(callhome_shared::ListenersSection),
    Timesync(callhome_shared::TimesyncSection),
    Identity(callhome_shared::IdentitySection),
    Controllers(callhome_shared::ControllersSection),
    MemoryPressure(callhome_shared::MemoryPressureSection),
    Certificates(callhome_shared::CertificatesSection),
    Updates(callhome_shared::UpdatesSection),
    Crashes(callhome_shared::CrashesSection),
    Logs(callhome_shared::LogsSection),
    Agent(callhome_shared::AgentSection),
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

impl ProbeFailure {
    /// A failure that names what could not be read.
    pub fn reading(what: &str, e: &io::Error) -> ProbeFailure {
        ProbeFailure(format!("cannot read {what}: {e}"))
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

/// What every probe of one run shares.
#[derive(Debug, Clone)]
pub struct RunInputs {
    pub source: Arc<dyn HostSource>,
    pub config: Arc<Config>,
    pub agent: Arc<AgentHealth>,
}

/// Runs `plan` concurrently and gathers the results. Must be called within a tokio runtime. Each
/// probe runs on a thread of its own; one that times out keeps its thread until it returns, which
/// nobody waits for (the process may exit under it).
pub async fn run(plan: &[PlannedProbe<'_>], inputs: &RunInputs) -> ProbeRun {
    let started = Instant::now();
    let cache_dir = inputs
        .source
        .may_use_cache()
        .then(|| inputs.config.state_dir.join("cache"));
    let tasks: Vec<_> = plan
        .iter()
        .map(|planned| {
            let name = planned.probe.name;
            let f = planned.probe.run;
            let timeout = planned.timeout;
            let ctx = ProbeContext {
                source: Arc::clone(&inputs.source),
                config: Arc::clone(&inputs.config),
                max_read_bytes: planned.max_read_bytes,
                deadline: Instant::now() + timeout,
                agent: Arc::clone(&inputs.agent),
                cache_dir: cache_dir.clone(),
            };
            tokio::spawn(async move {
                let t0 = Instant::now();
                let result = tokio::time::timeout(timeout, on_own_thread(name, move || f(&ctx))).await;
                let elapsed = t0.elapsed();
                let result = match result {
                    Ok(Ok(Ok(output))) => Ok(output),
                    Ok(Ok(Err(failure))) => Err((ProbeOutcome::Failed, failure.0)),
                    Ok(Err(ended)) => Err((ProbeOutcome::Failed, ended)),
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

/// Runs `f` on a new thread that ends with it. Not tokio's blocking pool: its threads outlive their
/// work by a keep-alive, and a daemon that collects once an hour should hold no idle threads (nor
/// their stacks) between runs. The error says why no value came back.
fn on_own_thread<R: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> impl Future<Output = Result<R, String>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("probe-{name}"))
        .spawn(move || {
            // The receiver is gone only when the runner stopped waiting (timeout): nothing to tell.
            let _ = tx.send(f());
        });
    async move {
        if let Err(e) = spawned {
            return Err(format!("cannot start the probe's thread: {e}"));
        }
        // The sender is dropped without a value only when `f` panicked.
        rx.await.map_err(|_| "probe panicked".to_string())
    }
}

fn place(sections: &mut Sections, name: &str, section: Section) {
    match section {
        Section::System(s) => sections.system = Some(s),
        Section::Disks(s) => sections.disks = Some(s),
        Section::Vda(s) => sections.vda = Some(s),
        Section::Services(s) => sections.services = Some(s),
        Section::Listeners(s) => sections.listeners = Some(s),
        Section::Timesync(s) => sections.timesync = Some(s),
        Section::Identity(s) => sections.identity = Some(s),
        Section::Controllers(s) => sections.controllers = Some(s),
        Section::MemoryPressure(s) => sections.memory_pressure = Some(s),
        Section::Certificates(s) => sections.certificates = Some(s),
        Section::Updates(s) => sections.updates = Some(s),
        Section::Crashes(s) => sections.crashes = Some(s),
        Section::Logs(s) => sections.logs = Some(s),
        Section::Agent(s) => sections.agent = Some(s),
        Section::Raw(v) => {
            sections.other.insert(name.to_string(), v);
        }
    }
}

/// The human-readable OS name of an os-release(5) file: `PRETTY_NAME`, else `NAME VERSION_ID`.
pub fn os_pretty_name(os_release: &str) -> String {
    let os = system::parse_os_release(os_release);
    os.get("PRETTY_NAME").cloned().unwrap_or_else(|| {
        let name = os.get("NAME").map_or("Linux", String::as_str);
        match os.get("VERSION_ID") {
            Some(v) => format!("{name} {v}"),
            None => name.to_string(),
        }
    })
}

/// The path of a fixture tree under `tests/fixtures/hosts/`.
#[cfg(test)]
pub(crate) fn testing_fixture(name: &str) -> std::path::PathBuf {
    testing::fixture(name)
}

/// Test support for probes: a context over a fixture tree under `tests/fixtures/hosts/`.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The path of a fixture tree by name.
    pub fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/hosts")
            .join(name)
    }

    /// A context over the named fixture tree, with the default config.
    pub fn context(tree: &str) -> ProbeContext {
        context_with(tree, Config::default())
    }

    /// A throwaway tree captured at 2026-11-20T09:00:00Z holding only `commands` (argv, stdout, exit
    /// status) and the given `.callhome/` files (name, content); keep the directory while the context
    /// is used.
    pub fn scratch_tree(
        commands: &[(&[&str], &str, i32)],
        meta_files: &[(&str, &str)],
    ) -> (tempfile::TempDir, ProbeContext) {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join(crate::source::META_DIR);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("capture.json"),
            r#"{"captured_at": "2026-11-20T09:00:00Z"}"#,
        )
        .unwrap();
        for (name, content) in meta_files {
            std::fs::write(meta.join(name), content).unwrap();
        }
        for (argv, stdout, status) in commands {
            let cmd = meta.join("commands").join(crate::source::command_key(argv));
            std::fs::create_dir_all(&cmd).unwrap();
            std::fs::write(cmd.join("stdout"), stdout).unwrap();
            std::fs::write(cmd.join("status"), status.to_string()).unwrap();
        }
        let source = crate::source::Tree::open(dir.path()).unwrap();
        let ctx = ProbeContext {
            source: Arc::new(source),
            ..context("rpm-healthy")
        };
        (dir, ctx)
    }

    /// A context over this machine, with the default config.
    pub fn live() -> ProbeContext {
        ProbeContext {
            source: Arc::new(crate::source::Live),
            ..context("rpm-healthy")
        }
    }

    pub fn context_with(tree: &str, config: Config) -> ProbeContext {
        let source =
            crate::source::Tree::open(&fixture(tree)).unwrap_or_else(|e| panic!("fixture {tree}: {e}"));
        ProbeContext {
            source: Arc::new(source),
            config: Arc::new(config),
            max_read_bytes: crate::config::defaults::PROBE_MAX_READ_BYTES,
            deadline: Instant::now() + Duration::from_secs(30),
            agent: Arc::new(AgentHealth::default()),
            cache_dir: None,
        }
    }

    /// Runs a probe on a fixture and returns its section, panicking with the failure otherwise.
    pub fn section(
        probe: fn(&ProbeContext) -> Result<ProbeOutput, ProbeFailure>,
        ctx: &ProbeContext,
    ) -> Section {
        match probe(ctx) {
            Ok(ProbeOutput::Section(s)) => s,
            Ok(ProbeOutput::NoData) => panic!("probe reported no data"),
            Err(e) => panic!("probe failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fine(_: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
        Ok(ProbeOutput::Section(Section::Raw(
            serde_json::json!({"fine": true}),
        )))
    }
    fn broken(_: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
        Err(ProbeFailure("cannot read /proc/nothing".into()))
    }
    fn slow(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
        std::thread::sleep(Duration::from_millis(500));
        fine(ctx)
    }
    fn absent(_: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
        Ok(ProbeOutput::NoData)
    }
    fn panics(_: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
        panic!("probe bug")
    }

    fn probe(name: &'static str, run: fn(&ProbeContext) -> Result<ProbeOutput, ProbeFailure>) -> Probe {
        Probe {
            name,
            default_enabled: true,
            run,
        }
    }

    /// Runs on a runtime that does not wait for the slow probe's thread when it shuts down.
    fn run_plan(plan: &[PlannedProbe<'_>]) -> ProbeRun {
        let inputs = RunInputs {
            source: Arc::new(crate::source::Live),
            config: Arc::new(Config::default()),
            agent: Arc::new(AgentHealth::default()),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let out = rt.block_on(run(plan, &inputs));
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
        let plan: Vec<PlannedProbe> = probes
            .iter()
            .map(|p| {
                let timeout = if p.name == "slow" { 50 } else { 5_000 };
                PlannedProbe {
                    probe: p,
                    timeout: Duration::from_millis(timeout),
                    max_read_bytes: 1 << 20,
                }
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

    fn cache_dir_of(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
        Ok(ProbeOutput::Section(Section::Raw(serde_json::json!(
            ctx.cache_dir
        ))))
    }

    #[test]
    fn only_the_live_host_gets_a_cache_directory() {
        let table = [probe("cache", cache_dir_of)];
        let plan = Config::default().enabled_probes(&table);
        let run_on = |source: Arc<dyn HostSource>| {
            let inputs = RunInputs {
                source,
                config: Arc::new(Config::default()),
                agent: Arc::new(AgentHealth::default()),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(run(&plan, &inputs)).sections.other["cache"].clone()
        };
        assert_eq!(run_on(Arc::new(crate::source::Live)), "/var/lib/callhome/cache");
        let tree = crate::source::Tree::open(&testing::fixture("rpm-healthy")).unwrap();
        assert_eq!(run_on(Arc::new(tree)), serde_json::Value::Null);
        // `capture` records the live host: it must see every read the probe makes.
        let recorder = crate::source::Recorder::new(crate::source::Live);
        assert_eq!(run_on(Arc::new(recorder)), serde_json::Value::Null);
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
        let plan: Vec<PlannedProbe> = PROBES
            .iter()
            .filter(|p| ["system", "disks"].contains(&p.name))
            .map(|p| PlannedProbe {
                probe: p,
                timeout: Duration::from_secs(10),
                max_read_bytes: 1 << 20,
            })
            .collect();
        let out = run_plan(&plan);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert!(out.sections.system.is_some());
        assert!(out.sections.disks.is_some());
    }
}
