//! What scoring a snapshot adds to ingest: the per-snapshot cost of the scoring path (host rules,
//! trend point, host score) next to that of decoding the snapshot's JSON, which ingest pays anyway.
//!
//! `cargo bench -p callhome-collector --bench scoring`. Each figure is the median, over several timed
//! batches, of a batch's time divided by its iterations.
//!
//! Inputs are the agent's golden fixture snapshots (`tests/fixtures/golden/`), which store only what
//! is stable from run to run; the ids, timings and agent version they lack are put back. "healthy" is
//! `rpm-healthy`; "unhealthy" is the same host with the broken sections of the other fixtures
//! (full disk, clock off, expiring certificate, flapping services, unregistered VDA, noisy logs).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use callhome_collector::score::{ScoreItem, score_host};
use callhome_shared::rules::{HOST_RULES, TrendPoint, evaluate_host};
use callhome_shared::{Snapshot, decode_snapshot};
use serde_json::{Value, json};

const BATCHES: usize = 15;
/// Each batch runs for about this long, so that timer resolution does not matter.
const BATCH_TARGET: Duration = Duration::from_millis(40);

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/golden")
}

fn read_fixture(name: &str) -> Result<Value> {
    let path = golden_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Puts back what the golden files leave out, so that the body is one an agent would post.
fn complete(mut snapshot: Value) -> Result<Value> {
    let obj = snapshot.as_object_mut().context("a snapshot is an object")?;
    obj.insert("id".into(), json!("0193a4b2-0000-7000-8000-000000000001"));
    obj.insert("collection_ms".into(), json!(180));
    obj.insert("agent".into(), json!({ "version": "0.1.0" }));
    obj.get_mut("host")
        .and_then(Value::as_object_mut)
        .context("a snapshot has a host")?
        .insert("host_id".into(), json!("0193a4b2-0000-7000-8000-0000000000aa"));
    if let Some(probes) = obj.get_mut("probes").and_then(Value::as_object_mut) {
        for report in probes.values_mut() {
            if let Some(r) = report.as_object_mut() {
                r.insert("duration_ms".into(), json!(3));
            }
        }
    }
    Ok(snapshot)
}

/// The healthy host with the named sections of broken fixtures laid over its own.
fn unhealthy() -> Result<Value> {
    let mut base = read_fixture("rpm-healthy")?;
    let overlays: [(&str, &[&str]); 6] = [
        (
            "disk-full",
            &["disks", "crashes", "memory_pressure", "system", "updates"],
        ),
        ("time-off", &["timesync"]),
        ("cert-expiring", &["certificates"]),
        ("service-flapping", &["services", "controllers"]),
        ("vda-unregistered", &["vda"]),
        ("log-over-cap", &["logs"]),
    ];
    for (fixture, sections) in overlays {
        let broken = read_fixture(fixture)?;
        for section in sections {
            let value = broken["sections"]
                .get(*section)
                .with_context(|| format!("{fixture} has no section {section}"))?
                .clone();
            base["sections"][*section] = value;
        }
    }
    Ok(base)
}

/// The scoring path ingest would add: host rules, the trend point, the host's score.
fn score(snapshot: &Snapshot) -> (usize, f64) {
    let eval = evaluate_host(snapshot);
    let point = TrendPoint::from_snapshot(snapshot);
    let items: Vec<ScoreItem> = eval
        .findings
        .iter()
        .map(|f| ScoreItem {
            host: Some(snapshot.host.host_id),
            rule: f.rule.clone(),
            subject: f.subject.clone(),
            severity: f.severity,
        })
        .collect();
    black_box(point);
    (eval.findings.len(), score_host(&items).value)
}

/// Median seconds per call of `f`, over [`BATCHES`] batches sized to [`BATCH_TARGET`].
fn median_per_call<T>(mut f: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    let mut calibration = 0u32;
    while start.elapsed() < BATCH_TARGET / 4 {
        black_box(f());
        calibration += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / f64::from(calibration.max(1));
    let iterations = ((BATCH_TARGET.as_secs_f64() / per_call) as u32).max(1);
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iterations {
                black_box(f());
            }
            t.elapsed().as_secs_f64() / f64::from(iterations)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[BATCHES / 2]
}

fn main() -> Result<()> {
    println!(
        "scoring bench: {} host rules, median of {BATCHES} batches of ~{} ms each",
        HOST_RULES.len(),
        BATCH_TARGET.as_millis()
    );
    println!(
        "{:<10} {:>7} {:>9} {:>12} {:>12} {:>8}",
        "snapshot", "bytes", "findings", "decode µs", "scoring µs", "ratio"
    );
    for (name, value) in [
        ("healthy", complete(read_fixture("rpm-healthy")?)?),
        ("unhealthy", complete(unhealthy()?)?),
    ] {
        let body = serde_json::to_vec(&value)?;
        let snapshot =
            decode_snapshot(&body).with_context(|| format!("the {name} snapshot does not decode"))?;
        let (findings, value) = score(&snapshot);
        if !(0.0..=100.0).contains(&value) {
            bail!("score {value} out of bounds");
        }
        let decode = median_per_call(|| decode_snapshot(black_box(&body)));
        let scoring = median_per_call(|| score(black_box(&snapshot)));
        println!(
            "{name:<10} {:>7} {findings:>9} {:>12.1} {:>12.1} {:>8.3}",
            body.len(),
            decode * 1e6,
            scoring * 1e6,
            scoring / decode
        );
    }
    Ok(())
}
