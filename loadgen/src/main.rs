//! `callhome-loadgen`: simulates N enrolled agents against a collector (or anything that answers
//! `POST /v1/snapshots` over TLS, such as the nginx ceiling of `scripts/bench-ingest`) and reports
//! sustained snapshots per second, latency, errors by status, and the server's CPU and memory.
//! See `docs/benchmarks.md`, section "Ingest".

mod agents;
mod client;
mod pool;
mod procstat;
mod report;
mod run;
mod template;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::client::Target;
use crate::run::{Mode, Plan};

#[derive(Debug, Parser)]
#[command(
    name = "callhome-loadgen",
    version,
    about = "Ingest load generator for callhome collectors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll agents until the agents file holds --agents of them (skips those already there).
    Enroll {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Enrollment requests in flight at once.
        #[arg(long, default_value_t = 8)]
        connections: usize,
    },
    /// Post snapshots for a while and report (enrolls first if the file holds too few agents and
    /// --token is given).
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct FleetArgs {
    /// The server, `https://HOST:PORT`.
    #[arg(long)]
    url: String,
    /// PEM file of the certificate(s) to trust: the collector's `DATA/tls/cert.pem`.
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// Number of simulated agents (hosts), each with its own credential and host id.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Where the agents' host ids and credentials are kept between runs (mode 0600).
    #[arg(long, value_name = "FILE", default_value = "loadgen-agents.json")]
    agents_file: PathBuf,
    /// An enrollment token (`callhome-collector token issue ORG ENV`), needed only to enroll.
    #[arg(long)]
    token: Option<String>,
    /// Directory of snapshot JSON files used as templates (the golden snapshots of the fixture
    /// trees, or `callhome-agent collect` output).
    #[arg(long, value_name = "DIR", default_value = "tests/fixtures/golden")]
    templates: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Keep-alive TLS connections (closed loop: requests in flight).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds of load before the measured window (not counted in the rate or latencies).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Open loop: snapshots due per second, whatever the answers. Without it: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Bodies compressed before the clock starts. Default: rate x (warm-up + duration) in open
    /// loop, 10,000/s x (warm-up + duration) in closed loop; past it, bodies are built during the
    /// run (reported), or reused with --cycle.
    #[arg(long)]
    pool: Option<usize>,
    /// Reuse the pool's bodies round and round instead of building more. Only for a server that
    /// stores nothing (the nginx ceiling): a collector would answer `duplicate` from a cheaper path.
    #[arg(long)]
    cycle: bool,
    /// Seconds before an unanswered request counts as a timeout.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Server process(es) whose CPU and memory to report (repeat for nginx's master and workers).
    #[arg(long = "server-pid", alias = "collector-pid", value_name = "PID")]
    server_pids: Vec<u32>,
    /// Threads of the generator (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Name of the target in the report.
    #[arg(long, default_value = "collector")]
    label: String,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(r) => r.threads,
        Command::Enroll { .. } => None,
    }
    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Enroll { fleet, connections } => {
                let (_, agents) = fleet_of(&fleet, connections).await?;
                eprintln!("{} agents in {}", agents.len(), fleet.agents_file.display());
                Ok(())
            }
            Command::Run(args) => run_load(args, threads).await,
        }
    })
}

/// The templates, and the agents (enrolling the missing ones when a token is given).
async fn fleet_of(
    args: &FleetArgs,
    connections: usize,
) -> Result<(Vec<template::Template>, Vec<agents::Agent>)> {
    if args.agents == 0 {
        bail!("--agents must be at least 1");
    }
    let templates = template::load_dir(&args.templates)?;
    let (origin, mut have) = agents::load(&args.agents_file)?;
    if let Some(origin) = origin.filter(|o| !have.is_empty() && *o != args.url) {
        // Expected for the nginx ceiling, which accepts any credential; a 401 storm otherwise.
        eprintln!(
            "note: the agents in {} were enrolled at {origin}, not {}",
            args.agents_file.display(),
            args.url
        );
    }
    if have.len() < args.agents {
        let Some(token) = &args.token else {
            bail!(
                "{} holds {} agents, {} wanted: give --token to enroll the others",
                args.agents_file.display(),
                have.len(),
                args.agents
            );
        };
        let target = Target::new(&args.url, &args.ca)?;
        let started = Instant::now();
        let before = have.len();
        have = agents::enroll(&target, token, &templates, have, args.agents, connections).await?;
        agents::save(&args.agents_file, &args.url, &have)?;
        eprintln!(
            "enrolled {} agents in {:.1} s",
            have.len() - before,
            started.elapsed().as_secs_f64()
        );
    }
    have.truncate(args.agents);
    Ok((templates, have))
}

async fn run_load(args: RunArgs, threads: usize) -> Result<()> {
    if args.connections == 0 || args.duration == 0 {
        bail!("--connections and --duration must be at least 1");
    }
    let mode = match args.rate {
        Some(r) if r.is_finite() && r > 0.0 => Mode::Open { rate: r },
        Some(r) => bail!("--rate {r}: give a positive number of snapshots per second"),
        None => Mode::Closed,
    };
    let (templates, agents) = fleet_of(&args.fleet, 8).await?;
    let target = Target::new(&args.fleet.url, &args.fleet.ca)?;
    let pool_size = args.pool.unwrap_or(match mode {
        // A little over what is due, for the requests of the warm-up's first instants.
        Mode::Open { rate } => {
            (rate * (args.warmup + args.duration) as f64 * 1.01).ceil() as usize + args.connections
        }
        Mode::Closed => 10_000 * (args.warmup + args.duration) as usize,
    });
    let fleet = pool::Fleet::new(&agents, templates)?;
    let built = Instant::now();
    let pool = tokio::task::spawn_blocking(move || pool::Pool::build(fleet, pool_size, threads, args.cycle))
        .await
        .context("building the body pool")??;
    eprintln!(
        "{} bodies built in {:.1} s (mean {:.0} bytes zstd, {:.0} bytes JSON)",
        pool.prebuilt(),
        built.elapsed().as_secs_f64(),
        pool.mean_body_bytes(),
        pool.mean_json_bytes()
    );
    let pool = Arc::new(pool);
    let plan = Plan {
        mode,
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        timeout: Duration::from_secs(args.timeout),
        server_pids: args.server_pids.clone(),
    };
    eprintln!(
        "{} against {}: {} agents, {} connections, {} s warm-up + {} s measured",
        match mode {
            Mode::Closed => "closed loop".to_owned(),
            Mode::Open { rate } => format!("open loop at {rate}/s"),
        },
        args.fleet.url,
        agents.len(),
        args.connections,
        args.warmup,
        args.duration
    );
    let outcome = run::run(&target, Arc::clone(&pool), &plan).await?;
    let report = report::Report::new(&args.label, &args.fleet.url, agents.len(), &plan, &pool, outcome);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
