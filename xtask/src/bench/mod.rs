//! `cargo xtask bench [PART]`: builds the Go workloads of `bench/go/`, runs the measurements and
//! rewrites their sections of `BENCHMARKS.md`.
//!
//! The machine this runs on is shared and noisy, so every timing that can be is a ratio against a
//! baseline measured in the same run, in alternating A/B pairs (A,B then B,A), and reported as
//! a median with its spread. Absolute numbers (in-kernel ns per run, agent CPU and RSS, attach
//! latency) are reported over repeated windows or runs, also as median and spread.
//!
//! Each part owns one section of the output file between `<!-- bench:ID:begin/end -->` markers;
//! running one part rewrites only its section, and the summary table at the top is rebuilt from
//! the `<!-- row: ... -->` lines every section carries.

mod agent;
mod fidelity;
mod fleet;
pub mod fuzz;
mod goroutines;
mod kernel;
mod latency;
mod notes;
mod slowdown;
mod soak;
mod symbolize;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};

use super::{cargo, newest_go, root, run, unsafe_geteuid};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    part: Option<Part>,
    /// A/B pairs (or repeated runs/windows) per timing; at least 10 for a real run.
    #[arg(long, global = true, default_value_t = 10)]
    pairs: usize,
    /// Seconds of each agent-cost recording.
    #[arg(long, global = true, default_value_t = 60)]
    agent_seconds: u64,
    /// Seconds of the soak run (at least 600 for BENCHMARKS.md).
    #[arg(long, global = true, default_value_t = 600)]
    soak_seconds: u64,
    /// Seconds of the fleet-agent run (at least 1800 for BENCHMARKS.md).
    #[arg(long, global = true, default_value_t = 1800)]
    fleet_seconds: u64,
    /// File whose sections are rewritten.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Run what `cargo xtask test` runs: every part, tiny sizes, into target/bench/smoke/
    /// (`fuzz --smoke`: each fuzz target for a few seconds).
    #[arg(long, global = true)]
    smoke: bool,
    /// Executions per fuzz target (`fuzz` part).
    #[arg(long, global = true, default_value_t = 10_000_000)]
    execs: u64,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything below, in this order.
    All,
    /// 1. Slowdown of a fixed-work Go program: gprof-bpf --all vs perf record -g -a, 99 and 999 Hz.
    Slowdown,
    /// 2. In-kernel ns per run of the perf_event program (bpf_stats), ~30-frame Go stacks.
    Kernel,
    /// 3. Agent CPU time and peak RSS while profiling a busy host (--pid and --all, 99 Hz).
    Agent,
    /// 4. Symbolizer: gprof-bpf addr2line vs go tool addr2line (and the criterion bench if present).
    Symbolize,
    /// 5. Fidelity: per-function shares vs the truth, gprof-bpf vs perf vs runtime/pprof.
    Fidelity,
    /// 6. Attach latency: start to first sample, and start to report with --duration.
    Latency,
    /// 7. Soak: --all for 10 minutes while thousands of short-lived processes come and go.
    Soak,
    /// 8. Fleet: `gprof-bpf agent` with its defaults for --fleet-seconds on a busy, churning
    ///    host, shipping to Pyroscope: CPU, RSS over time, bytes per minute per process.
    Fleet,
    /// 9. Goroutines: `gprof-bpf dump` of 10,000 goroutines, live and with --lock.
    Goroutines,
    /// 10. Fuzzing: every target of fuzz/ for --execs executions (not part of `all`).
    Fuzz,
    /// 11. The whole symbolizer matrix: every Go version, link mode, strip and trimpath build
    ///     against runtime.CallersFrames and go tool addr2line, and the goroutine dump and
    ///     binary readers on every build; the suite checks a covering
    ///     subset (not part of `all`).
    Matrix,
}

/// Sizes of every measurement.
#[derive(Clone, Debug)]
pub struct Params {
    /// Smoke run: tiny sizes, writes under target/, never compared with goals seriously.
    pub smoke: bool,
    pub pairs: usize,
    /// Wall seconds of one fixed-work run (unprofiled).
    pub slowdown_run_secs: f64,
    /// Extra recursion under the busy workload's call tree, per kernel-cost row.
    pub kernel_depths: Vec<usize>,
    pub kernel_windows: usize,
    pub agent_secs: u64,
    pub agent_window_secs: u64,
    pub sym_random_pcs: usize,
    pub fidelity_runs: usize,
    pub fidelity_secs: f64,
    pub fidelity_hz: u64,
    pub latency_duration_ms: u64,
    pub soak_secs: u64,
    pub fleet_secs: u64,
    pub fuzz_execs: u64,
}

impl Params {
    fn full(
        pairs: usize,
        agent_secs: u64,
        soak_secs: u64,
        fleet_secs: u64,
        fuzz_execs: u64,
    ) -> Self {
        Params {
            smoke: false,
            pairs,
            slowdown_run_secs: 1.5,
            kernel_depths: vec![22, 2, 120],
            kernel_windows: pairs,
            agent_secs,
            agent_window_secs: (agent_secs / 12).max(1),
            sym_random_pcs: 200_000,
            fidelity_runs: 3,
            fidelity_secs: 10.0,
            fidelity_hz: 999,
            latency_duration_ms: 1000,
            soak_secs,
            fleet_secs,
            fuzz_execs,
        }
    }

    pub fn smoke() -> Self {
        Params {
            smoke: true,
            pairs: 1,
            slowdown_run_secs: 0.2,
            kernel_depths: vec![22],
            kernel_windows: 2,
            agent_secs: 3,
            agent_window_secs: 1,
            sym_random_pcs: 2000,
            fidelity_runs: 1,
            fidelity_secs: 1.5,
            fidelity_hz: 999,
            latency_duration_ms: 300,
            soak_secs: 12,
            fleet_secs: 12,
            fuzz_execs: 1000,
        }
    }
}

/// Everything a part needs: paths of the tools and workloads.
pub struct Env {
    pub root: PathBuf,
    pub goroot: PathBuf,
    pub gprof: PathBuf,
    pub perf: Option<PathBuf>,
    /// target/bench (workload binaries) and target/bench/tmp (scratch files).
    pub bin: PathBuf,
    pub tmp: PathBuf,
    pub is_root: bool,
    pub params: Params,
}

impl Env {
    pub fn workload(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
    pub fn go(&self) -> Command {
        let mut c = Command::new(self.goroot.join("bin/go"));
        c.env("GOROOT", &self.goroot)
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0");
        c
    }
}

/// One rewritten section of the output file.
pub struct Section {
    pub id: &'static str,
    pub markdown: String,
}

/// A summary-table row: what, result, goal, verdict.
pub fn summary_row(what: &str, result: &str, goal: &str, verdict: &str) -> String {
    format!("<!-- row: | {what} | {result} | {goal} | {verdict} | -->\n")
}

// ---------------------------------------------------------------------------------------------
// Statistics.

#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn summarize(values: &[f64]) -> Summary {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    Summary {
        n: v.len(),
        median: quantile(&v, 0.5),
        q1: quantile(&v, 0.25),
        q3: quantile(&v, 0.75),
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

impl Summary {
    /// "median" and "IQR q1 … q3, min … max, n" with `f` formatting each number.
    pub fn spread(&self, f: impl Fn(f64) -> String) -> String {
        format!(
            "IQR {} … {}; range {} … {}; n={}",
            f(self.q1),
            f(self.q3),
            f(self.min),
            f(self.max),
            self.n
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// A child process killed (SIGKILL, by its own pid) if still running when dropped.
pub struct Guard(pub Option<Child>);

impl Guard {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }
    pub fn wait(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self.0.take().context("already waited")?;
        Ok(c.wait()?)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn sigint(pid: u32) {
    // SAFETY: signalling a child we started, by its pid.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
}

/// A running gprof-bpf (or perf) with its stderr read line by line on a thread.
pub struct Agent {
    pub guard: Guard,
    pub started: Instant,
    lines: mpsc::Receiver<(Instant, String)>,
    pub stderr: Vec<String>,
    pub stdout_path: PathBuf,
}

impl Agent {
    /// Starts `program args`, stdout to `stdout_path`, stderr captured.
    pub fn spawn(program: &Path, args: &[String], stdout_path: &Path) -> Result<Agent> {
        Agent::spawn_env(program, args, stdout_path, &[])
    }

    /// [`Agent::spawn`] with extra environment variables.
    pub fn spawn_env(
        program: &Path,
        args: &[String],
        stdout_path: &Path,
        env: &[(&str, &str)],
    ) -> Result<Agent> {
        let out = std::fs::File::create(stdout_path)?;
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Agent {
            guard: Guard(Some(child)),
            started,
            lines: rx,
            stderr: Vec::new(),
            stdout_path: stdout_path.to_path_buf(),
        })
    }

    /// Waits for a stderr line starting with `prefix`; returns when it was read.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, line)) => {
                    let hit = line.starts_with(prefix);
                    self.stderr.push(line);
                    if hit {
                        return Ok(t);
                    }
                }
                Err(_) => bail!(
                    "no {prefix:?} line within {timeout:?}; stderr so far:\n{}",
                    self.stderr.join("\n")
                ),
            }
        }
    }

    /// SIGINT (unless it already exits by itself), waits, returns stdout + stderr text.
    pub fn stop(mut self, interrupt: bool) -> Result<String> {
        if interrupt {
            sigint(self.guard.pid());
        }
        let status = self.guard.wait()?;
        while let Ok((_, line)) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.stderr.push(line);
        }
        let stdout = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        if !(status.success() || (interrupt && status.code().is_none())) {
            bail!(
                "{status}: {}\n{}",
                self.stderr.join("\n"),
                stdout.lines().take(5).collect::<Vec<_>>().join("\n")
            );
        }
        Ok(format!("{stdout}\n{}", self.stderr.join("\n")))
    }
}

/// Starts `spin busy SECONDS THREADS DEPTH` and waits for its "ready PID" line.
pub fn start_busy(env: &Env, secs: u64, threads: usize, depth: usize) -> Result<Guard> {
    start_busy_with(env, secs, threads, depth, &[])
}

/// [`start_busy`] with extra arguments (`labels`: under three pprof labels).
pub fn start_busy_with(
    env: &Env,
    secs: u64,
    threads: usize,
    depth: usize,
    extra: &[&str],
) -> Result<Guard> {
    let mut child = Command::new(env.workload("spin"))
        .args([
            "busy",
            &secs.to_string(),
            &threads.to_string(),
            &depth.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting spin busy")?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut buf = [0u8; 64];
    let mut line = String::new();
    while !line.contains('\n') {
        let n = out.read(&mut buf)?;
        if n == 0 {
            bail!("spin busy exited early");
        }
        line.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Ok(Guard(Some(child)))
}

/// Parses "profiler CPU time X, peak RSS Y" from a report footer: (seconds, bytes).
pub fn parse_footer(text: &str) -> Option<(f64, f64)> {
    let line = text.lines().find(|l| l.contains("profiler CPU time"))?;
    let after = line.split("profiler CPU time").nth(1)?;
    let mut parts = after.split(", peak RSS");
    let cpu = parse_quantity(parts.next()?.trim())?;
    let rss = parse_quantity(parts.next()?.trim())?;
    Some((cpu, rss))
}

/// "125.99ms" → 0.12599 (seconds), "22.48MB" → bytes, "1.2s", "900us", "3.4GB", "512kB".
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches([',', ';']);
    let i = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(i);
    let v: f64 = num.parse().ok()?;
    let m = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(v * m)
}

/// On-CPU nanoseconds of every thread of `pid` (schedstat), and VmHWM/VmRSS in bytes.
pub fn proc_usage(pid: u32) -> Option<(u64, u64, u64)> {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let t = t.ok()?;
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Some((ns, kb("VmHWM:"), kb("VmRSS:")))
}

// ---------------------------------------------------------------------------------------------
// Machine description, output file.

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{} — {cpus} CPUs ({model}), kernel {}, load average at start {}",
        sh("date -u '+%Y-%m-%d %H:%M UTC'"),
        kernel.trim(),
        load.join(" ")
    )
}

const HEADER: &str = "# Benchmarks\n\n\
Generated by `cargo xtask bench` (sections: `cargo xtask bench slowdown | kernel | agent | symbolize | \
fidelity | latency | soak | fleet | goroutines | fuzz`; each rewrites only its own section, the summary is rebuilt from all of them). \
Do not edit by hand.\n\n\
The machine these ran on is shared with other builds (note the load average in each section), so \
every timing is a ratio against a baseline measured in the same run, alternating A/B \
(A,B then B,A), or a repeated absolute measurement, reported as the median with its interquartile \
range (IQR) and range. Smoke runs (`cargo xtask test`) write `target/bench/smoke/BENCHMARKS.md` \
instead, with tiny sizes, and assert nothing.\n";

const ORDER: [&str; 11] = [
    "slowdown",
    "kernel",
    "agent",
    "symbolize",
    "fidelity",
    "latency",
    "soak",
    "fleet",
    "goroutines",
    "fuzz",
    "findings",
];

fn begin(id: &str) -> String {
    format!("<!-- bench:{id}:begin -->")
}
fn end(id: &str) -> String {
    format!("<!-- bench:{id}:end -->")
}

/// Rewrites `path`: header, summary from every section's rows, then the sections in order
/// (new ones replacing old ones, old ones kept).
pub fn write_sections(path: &Path, new: &[Section]) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut bodies: Vec<(String, String)> = Vec::new();
    for id in ORDER {
        let body = match new.iter().find(|s| s.id == id) {
            Some(s) => Some(s.markdown.clone()),
            None if id == "findings" => Some(notes::FINDINGS.to_string()),
            None => {
                let (b, e) = (begin(id), end(id));
                match (old.find(&b), old.find(&e)) {
                    (Some(i), Some(j)) if i < j => Some(old[i + b.len()..j].trim().to_string()),
                    _ => None,
                }
            }
        };
        if let Some(body) = body {
            bodies.push((id.to_string(), body));
        }
    }
    let mut out = String::from(HEADER);
    out.push_str("\n## Summary: results vs goals\n\n| measurement | result: median (spread) | goal | verdict |\n|---|---|---|---|\n");
    for (_, body) in &bodies {
        for line in body.lines() {
            if let Some(row) = line
                .strip_prefix("<!-- row: ")
                .and_then(|r| r.strip_suffix(" -->"))
            {
                out.push_str(row);
                out.push('\n');
            }
        }
    }
    for (id, body) in &bodies {
        out.push_str(&format!("\n{}\n{}\n{}\n", begin(id), body.trim(), end(id)));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask bench: wrote {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Driver.

fn build(params: Params) -> Result<Env> {
    let root = root();
    let built = root.join("target/release/gprof-bpf");
    if let Err(e) = run(cargo().args(["build", "--release", "-p", "profiler-user"])) {
        // Others edit the tree concurrently: a half-edited file must not stop a benchmark run
        // when a binary from a good build exists. Say so loudly.
        if !built.exists() {
            return Err(e);
        }
        eprintln!(
            "\n!!!! xtask bench: the build failed ({e}); using the existing {} !!!!\n",
            built.display()
        );
    }
    let goroot = newest_go()?;
    let bin = root.join(if params.smoke {
        "target/bench/smoke"
    } else {
        "target/bench"
    });
    let tmp = bin.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    // A private copy: a concurrent `cargo build` must not swap the binary mid-run.
    let gprof = bin.join("gprof-bpf");
    std::fs::copy(&built, &gprof).with_context(|| format!("copying {}", built.display()))?;
    let perf = ["/usr/bin/perf", "/usr/local/bin/perf"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let env = Env {
        gprof,
        root: root.clone(),
        goroot,
        perf,
        bin,
        tmp,
        is_root: unsafe_geteuid() == 0,
        params,
    };
    for name in ["spin", "shares", "many"] {
        run(env
            .go()
            .current_dir(root.join("bench/go").join(name))
            .args(["build", "-o"])
            .arg(env.workload(name))
            .arg("."))?;
    }
    // The soak's short-lived Go processes: the integration tests' churn fixture.
    run(env
        .go()
        .current_dir(root.join("tests/fixtures/go/churn"))
        .args(["build", "-o"])
        .arg(env.workload("churn"))
        .arg("."))?;
    Ok(env)
}

fn run_part(env: &Env, part: Part) -> Result<Section> {
    let t0 = Instant::now();
    eprintln!("xtask bench: === {part:?} ===");
    let s = match part {
        Part::Slowdown => slowdown::run(env),
        Part::Kernel => kernel::run(env),
        Part::Agent => agent::run(env),
        Part::Symbolize => symbolize::run(env),
        Part::Fidelity => fidelity::run(env),
        Part::Latency => latency::run(env),
        Part::Soak => soak::run(env),
        Part::Fleet => fleet::run(env),
        Part::Goroutines => goroutines::run(env),
        Part::Fuzz => fuzz::bench(env.params.fuzz_execs),
        Part::Matrix | Part::All => unreachable!(),
    };
    eprintln!(
        "xtask bench: {part:?} took {:.0}s",
        t0.elapsed().as_secs_f64()
    );
    s
}

fn parts(part: Part) -> Vec<Part> {
    match part {
        Part::All => vec![
            Part::Slowdown,
            Part::Kernel,
            Part::Agent,
            Part::Symbolize,
            Part::Fidelity,
            Part::Latency,
            Part::Soak,
            Part::Fleet,
            Part::Goroutines,
        ],
        p => vec![p],
    }
}

fn needs_root(part: Part) -> bool {
    part != Part::Symbolize
}

/// Seconds per fuzz target in `cargo xtask test`.
pub const FUZZ_SMOKE_SECONDS: u64 = 5;

pub fn main(args: BenchArgs) -> Result<()> {
    if args.part == Some(Part::Matrix) {
        // A correctness check too long for the suite, not a measurement: it passes or fails.
        let tests = [
            "symbolizer_matrix",
            "symbolizer_addr2line",
            "goroutine_dump",
        ];
        let mut c = cargo();
        c.args(["test", "--release", "-p", "tests"]);
        for t in tests {
            c.args(["--test", t]);
        }
        run(c
            .args(["--", "--test-threads=1", "--nocapture"])
            .env("GPROF_MATRIX_FULL", "1"))?;
        return run(cargo()
            .args([
                "test",
                "--release",
                "-p",
                "profiler-user",
                "--lib",
                "goruntime",
            ])
            .args(["--", "--test-threads=1", "--nocapture"])
            .env("GPROF_MATRIX_FULL", "1"));
    }
    if args.part == Some(Part::Fuzz) {
        // Needs neither root nor the gprof-bpf build. `--smoke`: what `cargo xtask test` runs.
        if args.smoke {
            return fuzz::smoke(FUZZ_SMOKE_SECONDS);
        }
        let out = args.out.unwrap_or_else(|| root().join("BENCHMARKS.md"));
        return write_sections(&out, &[fuzz::bench(args.execs)?]);
    }
    if args.smoke {
        return smoke();
    }
    if args.pairs < 10 {
        eprintln!(
            "xtask bench: warning: --pairs {} < 10: fine for a try, not for BENCHMARKS.md",
            args.pairs
        );
    }
    let env = build(Params::full(
        args.pairs,
        args.agent_seconds,
        args.soak_seconds,
        args.fleet_seconds,
        args.execs,
    ))?;
    let out = args.out.unwrap_or_else(|| env.root.join("BENCHMARKS.md"));
    let mut sections = Vec::new();
    for part in parts(args.part.unwrap_or(Part::All)) {
        if needs_root(part) && !env.is_root {
            bail!("{part:?} needs root (eBPF, perf -a, bpf_stats)");
        }
        sections.push(run_part(&env, part)?);
        // Write after every part, so a long run that fails late keeps what it measured.
        write_sections(&out, &sections)?;
    }
    Ok(())
}

/// The CI hook: every part with tiny sizes, into target/bench/smoke/BENCHMARKS.md. Asserts no
/// timing; fails only when a part cannot run at all. Parts that need root are skipped without it.
pub fn smoke() -> Result<()> {
    let t0 = Instant::now();
    let env = build(Params::smoke())?;
    let out = env.bin.join("BENCHMARKS.md");
    let mut sections = Vec::new();
    for part in parts(Part::All) {
        if needs_root(part) && !env.is_root {
            if gprof_testkit::strict() {
                bail!("{part:?} needs root and {}=1", gprof_testkit::STRICT_VAR);
            }
            eprintln!("xtask bench smoke: SKIPPED {part:?} (needs root)");
            continue;
        }
        sections.push(run_part(&env, part)?);
    }
    write_sections(&out, &sections)?;
    eprintln!(
        "xtask bench smoke: ok in {:.0}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The command that reproduces a section.
pub fn repro(part: &str, env: &Env) -> String {
    if env.params.smoke {
        "`cargo xtask test` (smoke sizes)".to_string()
    } else {
        format!(
            "`sudo cargo xtask bench {part} --pairs {}`",
            env.params.pairs
        )
    }
}
