//! No aliasing with periodic work (root: real eBPF program).
//!
//! `tests/fixtures/go/periodic` runs, on two threads, rounds locked to the wall clock: 6, 3 and
//! 1 ms in `main.spinA`, `spinB`, `spinC` per 10.1 ms round (the 99 Hz sampling period), and the
//! same split of a 5.05 ms round (half the period). A sampler with a fixed period of 10.1 ms
//! sees every round of a thread at the same phase, and so one function only. The fixture keeps
//! its own account: its threads' CPU time (CLOCK_THREAD_CPUTIME_ID) around every call, the
//! oracle.
//!
//! * With default settings (99 Hz, period jitter on), each of 5 runs of each variant must give
//!   every function's share (of the CPU time recorded in the three) within 3 points of the
//!   fixture's account. A run lasts until the fixture used 30 CPU-seconds (15 s on two idle
//!   CPUs, ~2,900 samples): the shares come from samples, and at 5.5 s (~1,000 samples) the
//!   binomial noise alone (1.5 points for a 60 % share) would put one of the ten runs beyond 3
//!   points in about a third of the test's runs; at 2,900 samples (0.9 points) in about 1 %.
//!   That holds only if the samples are independent. Within one 50 ms jitter draw they were a
//!   lattice (≈5 samples at nearly one phase when the drawn period is near the round), and
//!   runs missed by up to 3.25 points (worst of ten runs: 3.02 with period weights, 3.25 with
//!   measured weights). The kernel now thins a 5× faster timer at random (see
//!   `sampler::kernel::thinning`): worst of ten runs 1.73, 1.58 and 2.30 points in three
//!   test runs. The test takes 5–7.5 minutes on 2 loaded CPUs.
//! * With `--no-jitter`, one shorter run of each variant must be off by more than 3 points:
//!   the check above would catch aliasing. (A fixed period locks each thread's samples to one
//!   phase of its round, so one function per thread: shares of 0, 50 or 100 %.)

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use gprof_bpf::profile::Profile;
use gprof_bpf::record::RecordOptions;
use tests::go;

const FUNCTIONS: [&str; 3] = ["main.spinA", "main.spinB", "main.spinC"];
/// CPU seconds per run (both threads), with jitter and without.
const CPU_SECONDS: f64 = 30.0;
const CPU_SECONDS_NO_JITTER: f64 = 4.0;
const RUNS: usize = 5;
/// Samples in the three functions a jittered run must have (99 Hz × 30 s is 2,970).
const MIN_SAMPLES: i64 = 2400;
const TOLERANCE: f64 = 3.0;
/// Rounds in µs: the 99 Hz period and half of it.
const VARIANTS: [(&str, u32); 2] = [("period", 10101), ("half period", 5051)];

/// Percent of the CPU of the three functions, per function.
type Shares = HashMap<&'static str, f64>;

fn account(path: &Path) -> anyhow::Result<Shares> {
    let text = std::fs::read_to_string(path)?;
    let mut ns = HashMap::new();
    for line in text.lines() {
        let (name, v) = line
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("bad line {line:?}"))?;
        let f = FUNCTIONS
            .iter()
            .find(|f| **f == name)
            .ok_or_else(|| anyhow::anyhow!("unknown function {name}"))?;
        ns.insert(*f, v.parse::<f64>()?);
    }
    let total: f64 = ns.values().sum();
    anyhow::ensure!(ns.len() == 3 && total > 0.0, "incomplete account {text:?}");
    Ok(ns
        .into_iter()
        .map(|(k, v)| (k, 100.0 * v / total))
        .collect())
}

/// Shares of the recorded CPU time (sample weights) whose stack holds each function; and the
/// number of samples in any of them.
fn recorded(p: &Profile) -> (Shares, i64) {
    let weight = p
        .sample_types
        .iter()
        .position(|t| t.unit == "nanoseconds")
        .unwrap_or(0);
    let mut w: HashMap<&'static str, f64> = HashMap::new();
    let mut n = 0;
    for s in &p.samples {
        let f = s.location_ids.iter().find_map(|&id| {
            p.location(id).lines.iter().find_map(|l| {
                let name = &p.function(l.function_id).name;
                FUNCTIONS.iter().find(|f| **f == name.as_str())
            })
        });
        if let Some(f) = f {
            *w.entry(f).or_default() += s.values[weight] as f64;
            n += s.values[0];
        }
    }
    let total: f64 = w.values().sum();
    let shares = FUNCTIONS
        .iter()
        .map(|f| {
            (
                *f,
                100.0 * w.get(f).copied().unwrap_or(0.0) / total.max(1.0),
            )
        })
        .collect();
    (shares, n)
}

/// One recording of one variant: (fixture's account, our shares, samples in the three).
fn run(
    bin: &Path,
    round_us: u32,
    jitter: bool,
    cpu_seconds: f64,
    i: usize,
) -> anyhow::Result<(Shares, Shares, i64)> {
    let file = go::target_dir().join(format!("fidelity-aliasing-{round_us}-{i}.txt"));
    let _ = std::fs::remove_file(&file);
    let p = tests::record(RecordOptions {
        command: vec![
            bin.to_str().unwrap().into(),
            round_us.to_string(),
            cpu_seconds.to_string(),
            file.to_str().unwrap().into(),
        ],
        duration: Some(Duration::from_secs(600)),
        jitter,
        ..RecordOptions::default()
    });
    let (ours, n) = recorded(&p);
    Ok((account(&file)?, ours, n))
}

fn fmt(s: &Shares) -> String {
    FUNCTIONS
        .iter()
        .map(|f| format!("{:5.1}", s[f]))
        .collect::<Vec<_>>()
        .join(" ")
}

fn max_diff(a: &Shares, b: &Shares) -> f64 {
    FUNCTIONS
        .iter()
        .map(|f| (a[f] - b[f]).abs())
        .fold(0.0, f64::max)
}

fn fixture() -> Option<std::path::PathBuf> {
    let version = tests::require_ok(go::newest(), "a Go toolchain")?;
    tests::require_ok(
        go::build("periodic", &version, &[], &[]),
        "building periodic",
    )
}

/// Runs every variant `runs` times; returns the largest difference per variant, and the rows
/// off by more than the tolerance or with fewer than `min_samples` samples.
fn measure(
    bin: &Path,
    jitter: bool,
    runs: usize,
    cpu_seconds: f64,
    min_samples: i64,
) -> (Vec<f64>, Vec<String>) {
    let mut worst = Vec::new();
    let mut failures = Vec::new();
    for (name, round) in VARIANTS {
        let mut w = 0f64;
        for i in 0..runs {
            let t = Instant::now();
            let (theirs, ours, n) = match run(bin, round, jitter, cpu_seconds, i) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{name} run {i}: {e:#}"));
                    continue;
                }
            };
            let d = max_diff(&theirs, &ours);
            w = w.max(d);
            let row = format!(
                "{name:>11} ({round} µs) run {i}: fixture A/B/C {} %, ours {} % of {n} samples; max |Δ| {d:.2} points ({:.1}s)",
                fmt(&theirs),
                fmt(&ours),
                t.elapsed().as_secs_f64()
            );
            println!("{}{row}", if jitter { "" } else { "no jitter: " });
            if d > TOLERANCE || n < min_samples {
                failures.push(row);
            }
        }
        worst.push(w);
    }
    (worst, failures)
}

#[test]
fn periodic_work_does_not_alias_with_the_sampling_period() {
    if !tests::require_root() {
        return;
    }
    let Some(bin) = fixture() else { return };
    let t = Instant::now();
    let (_, failures) = measure(&bin, true, RUNS, CPU_SECONDS, MIN_SAMPLES);
    assert!(
        failures.is_empty(),
        "shares off by more than {TOLERANCE} points (or fewer than {MIN_SAMPLES} samples):\n{}",
        failures.join("\n")
    );
    // Without jitter the same comparison fails: the check has teeth.
    let (worst, _) = measure(&bin, false, 1, CPU_SECONDS_NO_JITTER, 0);
    println!(
        "--no-jitter: largest difference per variant {worst:.1?} points; {:.0}s in all",
        t.elapsed().as_secs_f64()
    );
    for ((name, _), w) in VARIANTS.iter().zip(&worst) {
        assert!(
            *w > TOLERANCE,
            "{name}: with --no-jitter the shares are within {w:.2} points: the fixture does not \
             provoke aliasing, so the check above proves nothing"
        );
    }
}
