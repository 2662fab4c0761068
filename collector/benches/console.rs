//! Console read-model benchmark: the customers page (`orgs_ranked`, all orgs and a TAM's 20) and the
//! org page (`org_detail` of the largest org) on 1,000 orgs and 50,000 hosts. The budget is
//! 150 ms per page; the bench exits 1 when a page's median is over it.
//!
//! `cargo bench -p callhome-collector --bench console` seeds a temporary data directory (about
//! 4.5 minutes in release on 2 busy cores, most of it the periodic jobs), or reuses `CALLHOME_BENCH_DATA_DIR` (seeded there first if empty).
//! `CALLHOME_BENCH_RUNS` sets the runs per query (default 25). Without `--bench` (as `cargo test
//! --benches` runs it) it checks the same queries once on a small seed, in seconds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use callhome_collector::seed_cmd::{self, SeedOptions};
use callhome_collector::store::Store;
use callhome_collector::store::console::FindingQuery;
use time::OffsetDateTime;

const BUDGET: Duration = Duration::from_millis(150);

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (orgs, hosts, runs) = if full {
        let runs = std::env::var("CALLHOME_BENCH_RUNS")
            .ok()
            .map(|r| r.parse::<usize>().context("CALLHOME_BENCH_RUNS"))
            .transpose()?
            .unwrap_or(25);
        (1000, 50_000, runs.max(1))
    } else {
        (20, 300, 1)
    };
    let temp;
    let data_dir: PathBuf = match std::env::var_os("CALLHOME_BENCH_DATA_DIR").filter(|_| full) {
        Some(dir) => dir.into(),
        None => {
            temp = tempfile::tempdir().context("temporary directory")?;
            temp.path().to_owned()
        }
    };
    let store = Store::open_in(&data_dir).context("open the data directory")?;
    let now = OffsetDateTime::now_utc();
    if store.count_orgs()? == 0 {
        let started = Instant::now();
        let options = SeedOptions {
            orgs,
            hosts,
            days: 90,
            seed: 1,
            force: false,
        };
        let report = seed_cmd::seed(&store, &options, now)?;
        println!(
            "seeded {} orgs, {} hosts, {} snapshots, {} history rows in {:.1} s (writes {:.1} s, jobs {:.1} s) in {}",
            report.orgs,
            report.hosts,
            report.snapshots,
            report.history_rows,
            started.elapsed().as_secs_f64(),
            report.write_ms as f64 / 1000.0,
            report.jobs_ms as f64 / 1000.0,
            data_dir.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(bench(&store, now, runs, full))
}

async fn bench(store: &Store, now: OffsetDateTime, runs: usize, full: bool) -> anyhow::Result<()> {
    let all = store.orgs_ranked(None, now).await?;
    let host_total: i64 = all.iter().map(|o| o.hosts).sum();
    println!(
        "database: {} orgs, {host_total} hosts; {runs} runs per query: median wall time \
         (min .. max), process CPU time per run",
        all.len()
    );
    // A TAM's book: 20 orgs spread over the ranking.
    let step = (all.len() / 20).max(1);
    let tam: Vec<String> = all.iter().step_by(step).take(20).map(|o| o.org.clone()).collect();
    let largest = all
        .iter()
        .max_by_key(|o| o.hosts)
        .context("no org to look at")?
        .clone();
    let mut over = Vec::new();
    let mut report = |name: String, t: Timings, page: bool| {
        let cpu = t
            .cpu_per_run
            .map_or_else(|| "n/a".to_owned(), |c| format!("{:.1} ms", ms(c)));
        let (median, min, max) = stats(t.wall);
        let flag = if page && median > BUDGET {
            over.push(name.clone());
            "  OVER THE 150 ms BUDGET"
        } else {
            ""
        };
        println!(
            "{name:<50} {:>8.2} ms  ({:.2} .. {:.2})  cpu/run {cpu}{flag}",
            ms(median),
            ms(min),
            ms(max)
        );
    };

    let t = time(runs, || store.orgs_ranked(None, now)).await?;
    report(format!("orgs_ranked, all {} orgs", all.len()), t, true);
    let t = time(runs, || store.orgs_ranked(Some(&tam), now)).await?;
    report(format!("orgs_ranked, a TAM's {} orgs", tam.len()), t, true);
    let t = time(runs, || store.org_trends(tam.clone(), 30, now)).await?;
    report(format!("org_trends, {} orgs x 30 days", tam.len()), t, true);
    let t = time(runs, || store.org_detail(&largest.org, now)).await?;
    report(
        format!("org_detail, largest org ({} hosts)", largest.hosts),
        t,
        true,
    );
    let t = time(runs, || store.org_hosts(&largest.org, None)).await?;
    report(
        format!("org_hosts, largest org ({} hosts)", largest.hosts),
        t,
        true,
    );
    let t = time(runs, || {
        store.findings_filtered(&largest.org, FindingQuery::default(), now)
    })
    .await?;
    report("findings_filtered, largest org, open".to_owned(), t, true);
    let hosts = store.org_hosts(&largest.org, None).await?;
    let riskiest: uuid::Uuid = hosts
        .first()
        .context("largest org has no host")?
        .host_id
        .parse()?;
    let t = time(runs, || store.host_detail(riskiest, now)).await?;
    report(
        "host_detail, riskiest host of the largest org".to_owned(),
        t,
        true,
    );
    let t = time(runs, || store.hosts_csv(&largest.org)).await?;
    report("hosts_csv, largest org (export, no budget)".to_owned(), t, false);
    let queue = store.list_queue(None, false, now)?;
    if let Some(entry) = queue.iter().find(|q| q.host_id.is_some()) {
        let t = time(runs, || store.queue_entry_diff(entry.id)).await?;
        report("queue_entry_diff (two snapshots decoded)".to_owned(), t, true);
    }
    if full && !over.is_empty() {
        bail!("over the 150 ms budget: {}", over.join(", "));
    }
    Ok(())
}

/// Wall times of `runs` runs of `f` (after one to warm the caches), and the process's CPU time
/// per run (user + system, all threads): on a shared machine the wall time includes waiting for
/// a core, the CPU time does not.
struct Timings {
    wall: Vec<Duration>,
    cpu_per_run: Option<Duration>,
}

async fn time<T, E, F, Fut>(runs: usize, mut f: F) -> anyhow::Result<Timings>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    f().await?;
    let mut wall = Vec::with_capacity(runs);
    let cpu_before = process_cpu();
    for _ in 0..runs {
        let started = Instant::now();
        std::hint::black_box(f().await?);
        wall.push(started.elapsed());
    }
    let cpu_per_run = cpu_before
        .zip(process_cpu())
        .map(|(a, b)| b.saturating_sub(a) / u32::try_from(runs).unwrap_or(u32::MAX));
    Ok(Timings { wall, cpu_per_run })
}

/// User + system CPU time of this process from `/proc/self/stat` (Linux; clock ticks of 10 ms,
/// fine enough summed over many runs).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn stats(mut times: Vec<Duration>) -> (Duration, Duration, Duration) {
    times.sort();
    let median = times[times.len() / 2];
    (median, times[0], times[times.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
