//! Part 2 — In-kernel cost per sample: with `kernel.bpf_stats_enabled=1` the kernel accounts every run
//! of every BPF program (`run_time_ns`, `run_cnt`); we read them from the agent's own program fds
//! (`/proc/AGENT/fdinfo/FD`, `prog_type: 7` = perf_event), once a second, and report the mean ns
//! per run of each one-second window. The target is `spin busy` on 2 threads under DEPTH extra
//! frames, sampled at 999 Hz with `--pid`; the stack depth actually seen comes from the profile.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::{Agent, Env, Guard, Section, machine, repro, start_busy, summarize, summary_row};

/// (run_time_ns, run_cnt) of the agent's perf_event program(s).
fn prog_stats(pid: u32) -> Option<(u64, u64)> {
    let mut total = None;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let e = e.ok()?;
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        if !link.to_string_lossy().contains("bpf-prog") {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            e.file_name().to_string_lossy()
        )) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if field("prog_type:") != Some(7) {
            continue;
        }
        let (t, c) = total.unwrap_or((0, 0));
        total = Some((t + field("run_time_ns:")?, c + field("run_cnt:")?));
    }
    total
}

/// One measured target.
struct Row {
    /// What was profiled (`DEPTH 22`, `staticcheck net/http`).
    what: String,
    frames: f64,
    windows: Vec<f64>,
    per_run: f64,
    per_target_sample: f64,
    runs: u64,
    samples: u64,
    /// Count-map entries drained per sample: how well the kernel aggregated.
    entries_per_sample: f64,
    /// The footer's loss line (collisions, read faults, truncation), as printed.
    losses: String,
}

/// Profiles `pid` (`extra` flags added) at 999 Hz for `kernel_windows + 2` seconds and reads the
/// program's run time every second. `counted` picks the folded stacks whose depth is averaged.
fn measure(env: &Env, what: String, pid: &str, extra: &[&str], counted: &str) -> Result<Row> {
    let p = &env.params;
    let secs = p.kernel_windows as u64 + 2;
    let folded = env.tmp.join("kernel.folded");
    let mut args: Vec<String> = vec!["--pid".into(), pid.to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([
        "-F".into(),
        "999".into(),
        "-d".into(),
        format!("{secs}s"),
        "-o".into(),
        folded.display().to_string(),
    ]);
    // GPROF_BPF_DEBUG: the pipeline's counters (samples, count-map entries) on stderr.
    let mut agent = Agent::spawn_env(
        &env.gprof,
        &args,
        &env.tmp.join("kernel.stdout"),
        &[("GPROF_BPF_DEBUG", "1")],
    )?;
    let attached = agent.wait_line("gprof-bpf: sampling", Duration::from_secs(30))?;
    let apid = agent.guard.pid();
    // Skip the first half second (first inserts into empty maps, page faults).
    std::thread::sleep(Duration::from_millis(500));
    let first =
        prog_stats(apid).context("no perf_event program fd in the agent (is bpf_stats on?)")?;
    let mut prev = first;
    let mut last = first;
    let mut windows = Vec::new();
    let mut next = Instant::now();
    for _ in 0..p.kernel_windows {
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let Some(now) = prog_stats(apid) else { break };
        if now.1 > prev.1 {
            windows.push((now.0 - prev.0) as f64 / (now.1 - prev.1) as f64);
        }
        prev = now;
        last = now;
    }
    let covered = attached.elapsed().as_secs_f64() / secs as f64;
    let out = agent.stop(false)?;
    let text = std::fs::read_to_string(&folded).unwrap_or_default();
    let (mut samples, mut frame_sum) = (0u64, 0u64);
    for line in text.lines() {
        let Some((stack, n)) = line.rsplit_once(' ') else {
            continue;
        };
        let n: u64 = n.parse().unwrap_or(0);
        if stack.contains(counted) {
            samples += n;
            // Profiles of several processes start with a `process (pid)` root frame.
            let first = stack.split(';').next().unwrap_or("");
            let root = u64::from(
                first.ends_with(')')
                    && first
                        .rsplit_once(" (")
                        .is_some_and(|(_, pid)| pid[..pid.len() - 1].parse::<u32>().is_ok()),
            );
            frame_sum += n * (stack.matches(';').count() as u64 + 1 - root);
        }
    }
    let (dt, dc) = (last.0 - first.0, last.1 - first.1);
    let all_samples: u64 = text
        .lines()
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    // The counters cover attach → last window, the profile attach → end: scale the samples.
    let samples_covered = all_samples as f64 * covered.min(1.0);
    let counter = |name: &str| -> Option<f64> {
        let i = out.find(&format!(" {name}: "))?;
        out[i + name.len() + 3..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let entries_per_sample = match (counter("entries"), counter("samples")) {
        (Some(e), Some(s)) if s > 0.0 => e / s,
        _ => f64::NAN,
    };
    let losses = out
        .lines()
        .find(|l| l.starts_with("gprof-bpf:") && l.contains("profiler CPU time"))
        .map(|l| {
            let l = l.trim_start_matches("gprof-bpf: ");
            l.split("; profiler CPU time")
                .next()
                .unwrap_or(l)
                .to_string()
        })
        .unwrap_or_default();
    Ok(Row {
        what,
        frames: if samples > 0 {
            frame_sum as f64 / samples as f64
        } else {
            0.0
        },
        windows,
        per_run: if dc > 0 {
            dt as f64 / dc as f64
        } else {
            f64::NAN
        },
        per_target_sample: if samples_covered > 0.0 {
            last.0 as f64 / samples_covered
        } else {
            f64::NAN
        },
        runs: last.1,
        samples: all_samples,
        entries_per_sample,
        losses,
    })
}

/// The synthetic target: `spin busy` on 2 threads under `depth` extra frames.
fn one(env: &Env, depth: usize) -> Result<Row> {
    let secs = env.params.kernel_windows as u64 + 2;
    let mut busy = start_busy(env, secs + 6, 2, depth)?;
    let row = measure(
        env,
        format!("`spin` DEPTH {depth}"),
        &busy.pid().to_string(),
        &[],
        "main.pad",
    );
    let _ = busy.child().kill();
    row
}

/// The cost of the goroutine and label reads: the same labelled target (`spin busy … labels`,
/// three pprof labels per goroutine) profiled with them (`--goroutines`, the most work: id and
/// labels) and without (`--no-labels`), alternating A,B then B,A. Returns the per-pair
/// differences of the median ns per run, and the rows.
fn goroutine_cost(env: &Env, depth: usize) -> Result<(Vec<f64>, Vec<Row>)> {
    let pairs = if env.params.smoke {
        1
    } else {
        env.params.pairs.min(5)
    };
    let secs = (env.params.kernel_windows as u64 + 2) * 2 * pairs as u64 + 10;
    let mut busy = super::start_busy_with(env, secs, 2, depth, &["labels"])?;
    let pid = busy.pid().to_string();
    let mut diffs = Vec::new();
    let mut rows = Vec::new();
    for i in 0..pairs {
        let mut with = None;
        let mut without = None;
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for read in order {
            let flag = if read { "--goroutines" } else { "--no-labels" };
            let what = format!("`spin` DEPTH {depth}, 3 labels, `{flag}`");
            let row = measure(env, what, &pid, &[flag], "main.pad")?;
            let m = summarize(&row.windows).median;
            if read {
                with = Some(m);
            } else {
                without = Some(m);
            }
            rows.push(row);
        }
        if let (Some(a), Some(b)) = (with, without) {
            diffs.push(a - b);
        }
    }
    let _ = busy.child().kill();
    Ok((diffs, rows))
}

/// The real program: staticcheck (pinned in `bench/go/staticcheck/go.mod`, built from the Go
/// module proxy, stripped), analysing `net/http` over and over.
const REAL_TARGET: &str = "net/http";

fn staticcheck_env(env: &Env, cache: &Path) -> Vec<(String, String)> {
    vec![
        ("GOROOT".into(), env.goroot.display().to_string()),
        ("GOTOOLCHAIN".into(), "local".into()),
        (
            "PATH".into(),
            format!(
                "{}:{}",
                env.goroot.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        ("STATICCHECK_CACHE".into(), cache.display().to_string()),
    ]
}

/// Builds staticcheck and runs it once, which fills Go's build cache with the export data of
/// the target's dependencies: the measured runs are then analysis, not compilation.
fn build_staticcheck(env: &Env) -> Result<PathBuf> {
    let bin = env.workload("staticcheck");
    crate::run(
        env.go()
            .current_dir(env.root.join("bench/go/staticcheck"))
            .args(["build", "-trimpath", "-ldflags=-s -w", "-o"])
            .arg(&bin)
            .arg("honnef.co/go/tools/cmd/staticcheck"),
    )?;
    let status = Command::new(&bin)
        .args(["-checks", "all", REAL_TARGET])
        .envs(staticcheck_env(env, &env.tmp.join("scc-warm")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running staticcheck once (warm-up)")?;
    // Exit status 1 means "found problems" (net/http has style findings).
    if status.code().is_none_or(|c| c > 1) {
        bail!("staticcheck warm-up failed: {status}");
    }
    Ok(bin)
}

fn real(env: &Env) -> Result<Row> {
    let bin = build_staticcheck(env)?;
    let cache = env.tmp.join("scc-run");
    // A shell runs staticcheck over and over with an empty result cache (so every run analyses),
    // followed with --subprocesses.
    let script = format!(
        "while :; do rm -rf '{}'; '{}' -checks all {REAL_TARGET} >/dev/null 2>&1; done",
        cache.display(),
        bin.display()
    );
    let mut shell = Guard(Some(
        Command::new("sh")
            .args(["-c", &script])
            .envs(staticcheck_env(env, &cache))
            // Its own process group, so the running staticcheck ends with the loop.
            .process_group(0)
            .spawn()
            .context("starting the staticcheck loop")?,
    ));
    // Past `go list`, into type checking.
    std::thread::sleep(Duration::from_secs(2));
    // --subprocesses follows what starts from now on: the run already going is named too.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", shell.pid()))
        .unwrap_or_default();
    let mut pids = vec![shell.pid().to_string()];
    pids.extend(children.split_whitespace().map(str::to_string));
    let pids = pids.join(",");
    let row = measure(
        env,
        format!("staticcheck {REAL_TARGET} (real, stripped)"),
        &pids,
        &["--subprocesses"],
        "",
    );
    // SAFETY: signals the process group we created (the shell's pid is its id).
    unsafe { libc::kill(-(shell.pid() as i32), libc::SIGKILL) };
    let _ = shell.wait();
    row
}

pub fn run(env: &Env) -> Result<Section> {
    let knob = "/proc/sys/kernel/bpf_stats_enabled";
    let old = std::fs::read_to_string(knob).unwrap_or_else(|_| "0".into());
    std::fs::write(knob, "1").context("enabling kernel.bpf_stats_enabled")?;
    let mut goroutine_diffs = Vec::new();
    let diffs_out = &mut goroutine_diffs;
    let measured = (|| -> Result<Vec<Row>> {
        let goroutine_diffs = diffs_out;
        let mut rows = Vec::new();
        for &d in &env.params.kernel_depths {
            rows.push(one(env, d)?);
        }
        let (diffs, labelled) = goroutine_cost(env, env.params.kernel_depths[0])?;
        *goroutine_diffs = diffs;
        rows.extend(labelled);
        // The real program needs the Go module proxy and minutes to build: not in the smoke.
        if !env.params.smoke {
            rows.push(real(env)?);
        }
        Ok(rows)
    })();
    let _ = std::fs::write(knob, old.trim());
    let rows = measured?;
    let mut md = String::from("## 2. In-kernel cost per sample\n\n");
    md.push_str(&format!("Ran: {}.\n\n", machine()));
    md.push_str(&format!(
        "`sysctl kernel.bpf_stats_enabled=1` (restored after). Targets: `bench/go/spin busy S 2 DEPTH` (2 busy \
         goroutines under DEPTH frames of recursion plus the 6-level work tree), profiled with \
         `gprof-bpf --pid PID -F 999`; and a real program, staticcheck {sc} (pinned in \
         `bench/go/staticcheck/go.mod`, built from the Go module proxy with `-ldflags=-s -w`), analysing \
         `{REAL_TARGET}` in a loop under a shell profiled with `--pid SHELL --subprocesses -F 999`. \
         The agent's perf_event program's `run_time_ns`/`run_cnt` (from `/proc/AGENT/fdinfo`) are read every \
         second for {} windows after a 0.5 s warm-up; each window gives mean ns per run. A run is one cpu-clock \
         tick on a CPU: in --pid mode ticks of other processes are filtered out in a few ns and dilute the \
         mean, so the \"per target sample\" column charges all run time to the target's samples only (an upper \
         bound). bpf_stats itself adds two clock reads per run (~20–40 ns). Entries per sample: count-map \
         entries drained over samples (the pipeline's counters, `GPROF_BPF_DEBUG=1`); 1.0 means the kernel \
         aggregated nothing.\n\n",
        env.params.kernel_windows,
        sc = staticcheck_version(env),
    ));
    md.push_str("| target | user frames per sample (avg) | ns per run, median of windows | spread | whole run: ns per run | ns per target sample (upper bound, ≈) | runs / target samples | count entries per sample | losses (footer) | reproduce |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &rows {
        let s = summarize(&r.windows);
        md.push_str(&format!(
            "| {} | {:.1} | {:.0} ns | {} | {:.0} ns | {:.0} ns | {} / {} | {:.2} | {} | {} |\n",
            r.what,
            r.frames,
            s.median,
            s.spread(|v| format!("{v:.0}")),
            r.per_run,
            r.per_target_sample,
            r.runs,
            r.samples,
            r.entries_per_sample,
            if r.losses.is_empty() {
                "none"
            } else {
                &r.losses
            },
            repro("kernel", env)
        ));
    }
    md.push('\n');
    if let Some(r) = rows.first() {
        let s = summarize(&r.windows);
        let ok = s.median <= 1000.0;
        md.push_str(&summary_row(
            &format!("in-kernel ns per sample, {:.0}-frame Go stack", r.frames),
            &format!("{:.0} ns ({})", s.median, s.spread(|v| format!("{v:.0}"))),
            "≤ 1 µs median",
            if ok { "met" } else { "**missed**" },
        ));
    }
    if let Some(r) = rows.iter().find(|r| r.what.starts_with("staticcheck")) {
        let s = summarize(&r.windows);
        md.push_str(&summary_row(
            &format!(
                "in-kernel ns per sample, real program ({:.0} frames)",
                r.frames
            ),
            &format!("{:.0} ns ({})", s.median, s.spread(|v| format!("{v:.0}"))),
            "≤ 1 µs median",
            if s.median <= 1000.0 {
                "met"
            } else {
                "**missed**"
            },
        ));
        md.push_str(&summary_row(
            "count entries per sample, real program",
            &format!("{:.2}", r.entries_per_sample),
            "< 0.3",
            if r.entries_per_sample < 0.3 {
                "met"
            } else {
                "**missed**"
            },
        ));
    }
    if !goroutine_diffs.is_empty() {
        let s = summarize(&goroutine_diffs);
        let frames = rows
            .iter()
            .find(|r| r.what.contains("--goroutines"))
            .map_or(0.0, |r| r.frames);
        md.push_str(&format!(
            "\n**Goroutine and label reads.** The rows with 3 labels are one target profiled \
             alternately with `--goroutines` (fsbase → g → m → curg → goid and labels, the label \
             set read and interned) and with `--no-labels` (none of it), {} pairs (A,B then B,A); \
             added per run, median of the pairs' differences: **{:.0} ns** ({}).\n",
            s.n,
            s.median,
            s.spread(|v| format!("{v:.0}"))
        ));
        md.push_str(&summary_row(
            &format!("in-kernel cost of goroutine id + 3 labels, {frames:.0}-frame stack"),
            &format!("+{:.0} ns ({})", s.median, s.spread(|v| format!("{v:.0}"))),
            "≤ 150 ns added",
            if s.median <= 150.0 {
                "met"
            } else {
                "**missed**"
            },
        ));
    }
    md.push_str(&format!("\nReproduce: {}.\n", repro("kernel", env)));
    Ok(Section {
        id: "kernel",
        markdown: md,
    })
}

/// The staticcheck version pinned in bench/go/staticcheck/go.mod.
fn staticcheck_version(env: &Env) -> String {
    std::fs::read_to_string(env.root.join("bench/go/staticcheck/go.mod"))
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("require honnef.co/go/tools ")
                    .map(str::to_string)
            })
        })
        .unwrap_or_else(|| "?".into())
}
