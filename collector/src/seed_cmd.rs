//! `callhome-collector seed`: fills a data directory with realistic synthetic customers, for demos,
//! browser tests and the console benchmark.
//!
//! The data: orgs with contracts of mixed tiers (some mixed-tier, some lapsed), host counts spread
//! like a real customer base (a few large orgs, many small ones), one to six environments each, and
//! per host a healthy baseline snapshot and a latest one made from the fixture snapshots
//! (`tests/fixtures/golden/`) with varied names, versions, disk, memory and session figures. Those
//! snapshots are judged by the real rules through the store's ingest judgement, then the periodic
//! jobs add fleet findings (stale hosts, version drift) and scores; past days of score history are
//! made up. Generation is deterministic for a given `--seed`.

use std::time::Instant;

use callhome_shared::{Snapshot, decode_snapshot};
use serde_json::Value;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use crate::entitlement::{ContractTerm, Tier};
use crate::store::jobs::JobSettings;
use crate::store::seed::{SeedCounts, SeedEnvironment, SeedHost, SeedOrg};
use crate::store::{Judged, NewSnapshot, Store, StoreError};

/// zstd level of stored bodies (the store's own).
const BODY_ZSTD_LEVEL: i32 = 3;
/// Hosts per transaction: large enough that commits do not dominate, small enough to bound memory.
const BATCH_HOSTS: usize = 2000;

/// The golden fixture snapshots, as `tests/fixtures/golden/` holds them (ids and timings removed).
pub const FIXTURES: &[(&str, &str)] = &[
    (
        "rpm-healthy",
        include_str!("../../tests/fixtures/golden/rpm-healthy.json"),
    ),
    (
        "deb-healthy",
        include_str!("../../tests/fixtures/golden/deb-healthy.json"),
    ),
    (
        "cert-expiring",
        include_str!("../../tests/fixtures/golden/cert-expiring.json"),
    ),
    (
        "disk-full",
        include_str!("../../tests/fixtures/golden/disk-full.json"),
    ),
    (
        "log-over-cap",
        include_str!("../../tests/fixtures/golden/log-over-cap.json"),
    ),
    (
        "service-flapping",
        include_str!("../../tests/fixtures/golden/service-flapping.json"),
    ),
    (
        "time-off",
        include_str!("../../tests/fixtures/golden/time-off.json"),
    ),
    (
        "vda-unregistered",
        include_str!("../../tests/fixtures/golden/vda-unregistered.json"),
    ),
];

/// How often each fixture is a host's latest snapshot (the first two are healthy).
const FIXTURE_WEIGHTS: &[u32] = &[40, 35, 5, 5, 4, 4, 4, 3];

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("no fixture `{0}`")]
    UnknownFixture(String),
    #[error("fixture `{name}` does not decode: {message}")]
    Fixture { name: String, message: String },
    #[error("the data directory already holds {0} orgs: seed an empty one, or pass --force to add to it")]
    NotEmpty(i64),
    #[error("cannot encode a snapshot: {0}")]
    Encode(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A fixture as a valid snapshot: the fields the golden files leave out (ids, timings, agent) are
/// filled in, and every timestamp is moved by `shift` so that ages relative to `collected_at` hold.
pub fn fixture(name: &str, shift: Duration) -> Result<Snapshot, SeedError> {
    let text = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| SeedError::UnknownFixture(name.to_owned()))?;
    let bad = |message: String| SeedError::Fixture {
        name: name.to_owned(),
        message,
    };
    let mut v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if !shift.is_zero() {
        shift_times(&mut v, shift);
    }
    let obj = v.as_object_mut().ok_or_else(|| bad("not an object".to_owned()))?;
    obj.insert("id".into(), Value::String(Uuid::now_v7().to_string()));
    obj.insert("collection_ms".into(), 0.into());
    obj.insert(
        "agent".into(),
        serde_json::json!({"version": env!("CARGO_PKG_VERSION")}),
    );
    if let Some(host) = obj.get_mut("host").and_then(Value::as_object_mut) {
        host.insert("host_id".into(), Value::String(Uuid::new_v4().to_string()));
    }
    if let Some(probes) = obj.get_mut("probes").and_then(Value::as_object_mut) {
        for report in probes.values_mut() {
            if let Some(r) = report.as_object_mut() {
                r.insert("duration_ms".into(), 0.into());
            }
        }
    }
    let bytes = serde_json::to_vec(&v).map_err(|e| bad(e.to_string()))?;
    decode_snapshot(&bytes).map_err(|e| bad(e.to_string()))
}

/// Moves every RFC 3339 string in `v` by `shift`.
fn shift_times(v: &mut Value, shift: Duration) {
    use time::format_description::well_known::Rfc3339;
    match v {
        Value::String(s) => {
            // Cheap pre-check: only strings shaped like `YYYY-MM-DDT...` are tried.
            if s.len() >= 20
                && s.as_bytes().get(10) == Some(&b'T')
                && let Ok(t) = OffsetDateTime::parse(s, &Rfc3339)
                && let Ok(shifted) = (t + shift).format(&Rfc3339)
            {
                *s = shifted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| shift_times(x, shift)),
        Value::Object(map) => map.values_mut().for_each(|x| shift_times(x, shift)),
        _ => {}
    }
}

/// A small deterministic generator (SplitMix64): reproducible data without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An index drawn with the given weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < u64::from(*w) {
                return i;
            }
            x -= u64::from(*w);
        }
        weights.len() - 1
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        out
    }
}

/// What to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedOptions {
    pub orgs: u32,
    pub hosts: u32,
    /// Days of score history.
    pub days: u32,
    pub seed: u64,
    /// Add to a database that already has orgs.
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeedReport {
    pub orgs: u64,
    pub environments: u64,
    pub hosts: u64,
    pub snapshots: u64,
    pub history_rows: u64,
    pub largest_org: Option<String>,
    pub largest_org_hosts: u64,
    pub write_ms: u128,
    pub jobs_ms: u128,
    pub history_ms: u128,
}

/// Host counts per org: a power law (org `i` weighs `(i + 1)^-0.8`), at least one host each,
/// summing to `hosts` (largest remainder).
pub fn host_counts(orgs: u32, hosts: u32) -> Vec<u32> {
    if orgs == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = (0..orgs).map(|i| f64::from(i + 1).powf(-0.8)).collect();
    let total: f64 = weights.iter().sum();
    let spare = hosts.saturating_sub(orgs);
    let base = u32::from(hosts >= orgs);
    let exact: Vec<f64> = weights.iter().map(|w| w / total * f64::from(spare)).collect();
    let mut counts: Vec<u32> = exact.iter().map(|x| base + x.floor() as u32).collect();
    let assigned: u32 = counts.iter().sum();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &i in order.iter().take(hosts.saturating_sub(assigned) as usize) {
        counts[i] += 1;
    }
    counts
}

const ENV_NAMES: &[&str] = &["prod", "prod-eu", "prod-us", "staging", "dr", "dev"];
const NAME_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
    "Massive",
    "Oceanic",
    "Monarch",
    "Nakatomi",
    "Prestige",
    "Gekko",
    "Dunder",
];
const NAME_B: &[&str] = &[
    "Bank",
    "Health",
    "Logistics",
    "Insurance",
    "Retail",
    "Energy",
    "Pharma",
    "Telecom",
    "Foods",
    "Airlines",
];
const NAME_C: &[&str] = &["AG", "GmbH", "Inc.", "Ltd", "SA", "plc"];
/// VDA releases a customer may run, newest first: (version prefix, YYMM release).
const VDA_RELEASES: &[(&str, &str)] = &[
    ("24.11.0.65", "2411"),
    ("24.07.0.30", "2407"),
    ("24.02.0.15", "2402"),
];

/// Where in time a host's latest snapshot sits: fresh, or silent long enough for the staleness rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Age {
    Fresh,
    Silent3Days,
    Silent10Days,
}

impl Age {
    const ALL: [Age; 3] = [Age::Fresh, Age::Silent3Days, Age::Silent10Days];

    /// The start of the hour-long window its latest snapshot falls in, before now.
    fn offset(self) -> Duration {
        match self {
            Age::Fresh => Duration::hours(1),
            Age::Silent3Days => Duration::days(3) + Duration::hours(1),
            Age::Silent10Days => Duration::days(10) + Duration::hours(1),
        }
    }
}

/// Fixture snapshots moved in time, decoded once: `[age][fixture]` for the latest snapshot, and the
/// healthy ones a day earlier for the baseline.
struct Templates {
    latest: Vec<Vec<Snapshot>>,
    baseline: Vec<Vec<Snapshot>>,
}

impl Templates {
    fn new(now: OffsetDateTime) -> Result<Templates, SeedError> {
        let mut latest = Vec::new();
        let mut baseline = Vec::new();
        for age in Age::ALL {
            let mut l = Vec::new();
            let mut b = Vec::new();
            for (i, (name, _)) in FIXTURES.iter().enumerate() {
                let at = fixture(name, Duration::ZERO)?.collected_at;
                let target = now - age.offset();
                l.push(fixture(name, target - at)?);
                if i < 2 {
                    b.push(fixture(name, target - Duration::days(1) - at)?);
                }
            }
            latest.push(l);
            baseline.push(b);
        }
        Ok(Templates { latest, baseline })
    }
}

/// Seeds `store` as `options` say, in batches of whole orgs.
pub fn seed(store: &Store, options: &SeedOptions, now: OffsetDateTime) -> Result<SeedReport, SeedError> {
    let existing = store.count_orgs()?;
    if existing > 0 && !options.force {
        return Err(SeedError::NotEmpty(existing));
    }
    let mut rng = Rng::new(options.seed);
    let templates = Templates::new(now)?;
    let counts = host_counts(options.orgs, options.hosts);
    // Org ids must not collide with what a forced run finds.
    let prefix = if existing > 0 {
        format!("SEED{}-", rng.below(1_000_000))
    } else {
        "ORG-".to_owned()
    };
    let first_webhook = store.last_webhook_id()?;
    let started = Instant::now();
    let mut total = SeedCounts::default();
    let mut batch: Vec<SeedOrg> = Vec::new();
    let mut batch_hosts = 0usize;
    let mut host_no: u64 = 0;
    let mut largest: (Option<String>, u64) = (None, 0);
    for (i, &n) in counts.iter().enumerate() {
        let org = make_org(
            &mut rng,
            &templates,
            &format!("{prefix}{:05}", i + 1),
            n,
            &mut host_no,
            now,
        )?;
        if u64::from(n) > largest.1 {
            largest = (Some(org.id.clone()), u64::from(n));
        }
        batch_hosts += n as usize;
        batch.push(org);
        if batch_hosts >= BATCH_HOSTS || i + 1 == counts.len() {
            add(&mut total, store.seed_orgs(&batch, now)?);
            tracing::info!(orgs = total.orgs, hosts = total.hosts, "seeding");
            batch.clear();
            batch_hosts = 0;
        }
    }
    let write_ms = started.elapsed().as_millis();
    let started = Instant::now();
    store.run_jobs(now, &JobSettings::default())?;
    let jobs_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let history_rows = store.seed_score_history(options.days, now, || {
        // Mostly small daily moves, sometimes a jump (an incident, or a fix rolled out).
        if rng.chance(0.03) {
            rng.range(-20.0, 20.0)
        } else {
            rng.range(-3.0, 3.0)
        }
    })?;
    store.seed_silence_webhooks(first_webhook, now)?;
    acknowledge_old_entries(store, now)?;
    Ok(SeedReport {
        orgs: total.orgs,
        environments: total.environments,
        hosts: total.hosts,
        snapshots: total.snapshots,
        history_rows,
        largest_org: largest.0,
        largest_org_hosts: largest.1,
        write_ms,
        jobs_ms,
        history_ms: started.elapsed().as_millis(),
    })
}

/// A TAM would have answered a critical detected days ago: acknowledge those (through the real
/// path) so that the seeded queue looks like a working one, with today's entries still open.
fn acknowledge_old_entries(store: &Store, now: OffsetDateTime) -> Result<(), SeedError> {
    let cutoff = crate::store::ts(now - Duration::days(1));
    for entry in store.list_queue(None, false, now)? {
        if entry.detected_at < cutoff {
            store.acknowledge(
                entry.id,
                "tam@seed.example",
                &crate::store::audit::Actor::cli(),
                now,
            )?;
        }
    }
    Ok(())
}

fn add(total: &mut SeedCounts, c: SeedCounts) {
    total.orgs += c.orgs;
    total.environments += c.environments;
    total.hosts += c.hosts;
    total.snapshots += c.snapshots;
}

fn make_org(
    rng: &mut Rng,
    templates: &Templates,
    id: &str,
    hosts: u32,
    host_no: &mut u64,
    now: OffsetDateTime,
) -> Result<SeedOrg, SeedError> {
    let name = format!(
        "{} {} {}",
        NAME_A[rng.below(NAME_A.len() as u64) as usize],
        NAME_B[rng.below(NAME_B.len() as u64) as usize],
        NAME_C[rng.below(NAME_C.len() as u64) as usize]
    );
    let contracts = contracts(rng, now.date());
    let env_count = (1 + hosts as usize / 400).min(ENV_NAMES.len());
    let mut environments: Vec<SeedEnvironment> = ENV_NAMES[..env_count]
        .iter()
        .map(|n| SeedEnvironment {
            name: (*n).to_owned(),
            hosts: Vec::new(),
        })
        .collect();
    for h in 0..hosts as usize {
        // The first environment (production) holds most hosts.
        let e = if h % 3 == 0 { 0 } else { h % env_count };
        let release = VDA_RELEASES[(e + host_no.is_multiple_of(11) as usize) % VDA_RELEASES.len()];
        *host_no += 1;
        environments[e]
            .hosts
            .push(make_host(rng, templates, *host_no, release, now)?);
    }
    Ok(SeedOrg {
        id: id.to_owned(),
        name,
        contracts,
        environments,
    })
}

/// One to two product lines: mostly one tier, sometimes mixed (served at the lowest), sometimes
/// lapsed.
fn contracts(rng: &mut Rng, today: Date) -> Vec<(String, ContractTerm)> {
    let term = |rng: &mut Rng, tier: Tier, lapsed: bool| {
        let years = 1 + rng.below(3) as i64;
        let start = if lapsed {
            today - Duration::days(365 * years + 10 + rng.below(200) as i64)
        } else {
            today - Duration::days(rng.below(360) as i64)
        };
        ContractTerm {
            tier,
            start,
            end: start + Duration::days(365 * years - 1),
        }
    };
    let pick = rng.below(100);
    let (tiers, lapsed): (&[Tier], bool) = match pick {
        0..25 => (&[Tier::PriorityPlus], false),
        25..70 => (&[Tier::Priority], false),
        70..85 => (&[Tier::Select], false),
        85..90 => (&[Tier::PriorityPlus, Tier::Select], false),
        90..95 => (&[Tier::PriorityPlus, Tier::Priority], false),
        _ => (&[Tier::Priority], true),
    };
    let products = ["cvad", "citrix-cloud"];
    tiers
        .iter()
        .zip(products)
        .map(|(t, p)| (p.to_owned(), term(rng, *t, lapsed)))
        .collect()
}

fn make_host(
    rng: &mut Rng,
    templates: &Templates,
    n: u64,
    release: (&str, &str),
    now: OffsetDateTime,
) -> Result<SeedHost, SeedError> {
    let host_id = uuid::Builder::from_random_bytes(rng.bytes()).into_uuid();
    let hostname = format!("vda{n:06}");
    let age = match rng.below(1000) {
        0..10 => Age::Silent10Days,
        10..30 => Age::Silent3Days,
        _ => Age::Fresh,
    };
    let a = Age::ALL.iter().position(|x| *x == age).unwrap_or(0);
    let which = rng.weighted(FIXTURE_WEIGHTS);
    let healthy = which.min(1);
    let jitter = Duration::seconds(rng.below(3300) as i64);
    let skew = if rng.chance(0.005) {
        rng.range(150.0, 400.0)
    } else {
        rng.range(-2.0, 2.0)
    };
    let mut snapshots = Vec::new();
    for (template, is_latest) in [
        (&templates.baseline[a][healthy], false),
        (&templates.latest[a][which], true),
    ] {
        let mut s = template.clone();
        s.collected_at += jitter;
        s.host.host_id = host_id;
        vary(rng, &mut s, &hostname, release, is_latest && which >= 2);
        let millis = u64::try_from(s.collected_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        s.id = uuid::Builder::from_unix_timestamp_millis(millis, &rng.bytes()).into_uuid();
        let body = serde_json::to_vec(&s).map_err(|e| SeedError::Encode(e.to_string()))?;
        let compressed = zstd::encode_all(body.as_slice(), BODY_ZSTD_LEVEL)
            .map_err(|e| SeedError::Encode(e.to_string()))?;
        let judged = Judged::of(&s, Some(skew));
        snapshots.push((
            NewSnapshot {
                id: s.id,
                schema_version: s.schema_version,
                collected_at: s.collected_at,
                body,
                judged,
            },
            compressed,
        ));
    }
    let last = snapshots
        .last()
        .map(|(s, _)| s.collected_at + Duration::seconds(2));
    Ok(SeedHost {
        host_id,
        hostname,
        role: "vda".to_owned(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        enrolled_at: now - Duration::days(30 + rng.below(300) as i64),
        snapshots,
        last_seen: last,
    })
}

/// Makes a fixture snapshot this host's: its names, its environment's VDA release, and figures that
/// differ from host to host. A `broken` snapshot keeps the fixture's problem figures.
fn vary(rng: &mut Rng, s: &mut Snapshot, hostname: &str, release: (&str, &str), broken: bool) {
    s.host.hostname = hostname.to_owned();
    let sections = &mut s.sections;
    if let Some(id) = sections.identity.as_mut() {
        id.hostname.short_name = hostname.to_owned();
        id.hostname.short_name_length = hostname.len();
        if let Some(fqdn) = id.hostname.fqdn.as_mut() {
            let domain = fqdn
                .split_once('.')
                .map(|(_, d)| d.to_owned())
                .unwrap_or_default();
            *fqdn = format!("{hostname}.{domain}");
        }
    }
    if let Some(vda) = sections.vda.as_mut() {
        let suffix = vda.version.split_once('-').map(|(_, s)| s.to_owned());
        vda.version = match suffix {
            Some(sfx) => format!("{}-{sfx}", release.0),
            None => release.0.to_owned(),
        };
        vda.release = Some(release.1.to_owned());
        if !broken && let Some(sessions) = vda.sessions.as_mut() {
            sessions.active = rng.below(12) as u32;
            sessions.disconnected = rng.below(3) as u32;
            vda.xorg_processes = Some(sessions.active + sessions.disconnected);
            vda.xorg_without_session = Some(0);
        }
    }
    if broken {
        return;
    }
    if let Some(system) = sections.system.as_mut() {
        let gib = 1u64 << 30;
        let total = [8, 16, 32, 64][rng.below(4) as usize] * gib;
        system.memory.total_bytes = total;
        system.memory.available_bytes = (total as f64 * rng.range(0.35, 0.8)) as u64;
        system.memory.used_bytes = total - system.memory.available_bytes;
        system.cpu_count = [2, 4, 8, 16][rng.below(4) as usize];
        let load = rng.range(0.05, 0.7) * f64::from(system.cpu_count);
        system.load_average.one = (load * 100.0).round() / 100.0;
        system.load_average.five = (load * 90.0).round() / 100.0;
        system.load_average.fifteen = (load * 80.0).round() / 100.0;
    }
    // The healthy fixtures record an OOM kill of a Citrix process; most real hosts have none.
    if let Some(mp) = sections.memory_pressure.as_mut()
        && rng.chance(0.85)
    {
        mp.oom_kills_recent = Some(Vec::new());
    }
    if let Some(disks) = sections.disks.as_mut() {
        for m in &mut disks.mounts {
            let free = rng.range(0.2, 0.85);
            m.available_bytes = (m.total_bytes as f64 * free) as u64;
            m.free_percent = (free * 1000.0).round() / 10.0;
        }
    }
}

/// `seed` on the command line.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Orgs to make.
    #[arg(long, default_value_t = 20)]
    pub orgs: u32,
    /// Hosts to make, spread over the orgs (a few large orgs, many small ones).
    #[arg(long, default_value_t = 500)]
    pub hosts: u32,
    /// Days of score history.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Seed of the generator: the same seed makes the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Add to a data directory that already has orgs.
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `seed` and prints what it made.
pub fn run(store: &Store, args: &SeedArgs, now: OffsetDateTime) -> Result<(), crate::cli::CliError> {
    let options = SeedOptions {
        orgs: args.orgs,
        hosts: args.hosts,
        days: args.days,
        seed: args.seed,
        force: args.force,
    };
    let started = Instant::now();
    let report = seed(store, &options, now).map_err(|e| match e {
        SeedError::NotEmpty(_) => crate::cli::CliError::Usage(e.to_string()),
        SeedError::Store(e) => e.into(),
        e => crate::cli::CliError::Failed(e.into()),
    })?;
    if args.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| crate::cli::CliError::Failed(e.into()))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "seeded {} orgs, {} environments, {} hosts, {} snapshots, {} days of score history in {:.1} s \
         (writes {:.1} s, jobs {:.1} s, history {:.1} s); largest org {} with {} hosts",
        report.orgs,
        report.environments,
        report.hosts,
        report.snapshots,
        args.days,
        started.elapsed().as_secs_f64(),
        report.write_ms as f64 / 1000.0,
        report.jobs_ms as f64 / 1000.0,
        report.history_ms as f64 / 1000.0,
        report.largest_org.as_deref().unwrap_or("-"),
        report.largest_org_hosts
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_decodes_and_shifts_in_time() {
        for (name, _) in FIXTURES {
            let s = fixture(name, Duration::ZERO).unwrap();
            let moved = fixture(name, Duration::days(3)).unwrap();
            assert_eq!(moved.collected_at - s.collected_at, Duration::days(3), "{name}");
            assert_eq!(moved.sections.names(), s.sections.names());
        }
        assert!(matches!(
            fixture("nope", Duration::ZERO),
            Err(SeedError::UnknownFixture(_))
        ));
    }

    #[test]
    fn host_counts_sum_and_skew() {
        let c = host_counts(1000, 50_000);
        assert_eq!(c.len(), 1000);
        assert_eq!(c.iter().sum::<u32>(), 50_000);
        assert!(c.iter().all(|&n| n >= 1));
        assert!(c[0] > 2000 && c[999] < 40, "{} {}", c[0], c[999]);
        let few = host_counts(10, 3);
        assert_eq!(few.iter().sum::<u32>(), 3);
        assert!(host_counts(0, 10).is_empty());
    }

    #[test]
    fn refuses_a_used_data_directory_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(dir.path());
        let now = OffsetDateTime::now_utc();
        let mut options = SeedOptions {
            orgs: 3,
            hosts: 9,
            days: 5,
            seed: 3,
            force: false,
        };
        let first = seed(&store, &options, now).unwrap();
        assert_eq!((first.orgs, first.hosts, first.snapshots), (3, 9, 18));
        let err = seed(&store, &options, now).unwrap_err();
        assert!(matches!(err, SeedError::NotEmpty(3)), "{err}");
        options.force = true;
        let again = seed(&store, &options, now).unwrap();
        assert_eq!(again.orgs, 3);
        let orgs = store.list_orgs().unwrap();
        assert_eq!(orgs.len(), 6);
        assert_eq!(orgs.iter().filter(|o| o.id.starts_with("SEED")).count(), 3);
        assert_eq!(store.list_hosts(None, None).unwrap().len(), 18);
    }

    #[test]
    fn rng_is_deterministic_and_weighted_draws_cover_all() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut seen = [0u32; 3];
        for _ in 0..3000 {
            seen[a.weighted(&[1, 2, 0])] += 1;
        }
        assert!(seen[0] > 800 && seen[1] > 1700 && seen[2] == 0, "{seen:?}");
        assert!((0..1000).map(|_| a.unit()).all(|x| (0.0..1.0).contains(&x)));
    }
}
