//! Part 2 — In-kernel cost per sample: with `kernel.bpf_stats_enabled=1` the kernel accounts every run
//! of every BPF program (`run_time_ns`, `run_cnt`); we read them from the agent's own program fds
//! (`/proc/AGENT/fdinfo/FD`, `prog_type: 7` = perf_event), once a second, and report the mean ns
//! per run of each one-second window. The target is `spin busy` on 2 threads under DEPTH extra
//! frames, sampled at 999 Hz with `--pid`; the stack depth actually seen comes from the profile.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::{Agent, Env, Section, machine, repro, start_busy, summarize, summary_row};

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

struct Row {
    depth: usize,
    frames: f64,
    windows: Vec<f64>,
    per_run: f64,
    per_target_sample: f64,
    runs: u64,
    samples: u64,
}

fn one(env: &Env, depth: usize) -> Result<Row> {
    let p = &env.params;
    let secs = p.kernel_windows as u64 + 2;
    let mut busy = start_busy(env, secs + 6, 2, depth)?;
    let folded = env.tmp.join("kernel.folded");
    let args: Vec<String> = vec![
        "--pid".into(),
        busy.pid().to_string(),
        "-F".into(),
        "999".into(),
        "-d".into(),
        format!("{secs}s"),
        "-o".into(),
        folded.display().to_string(),
    ];
    let mut agent = Agent::spawn(&env.gprof, &args, &env.tmp.join("kernel.stdout"))?;
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
    agent.stop(false)?;
    let _ = busy.child().kill();
    let text = std::fs::read_to_string(&folded).unwrap_or_default();
    let (mut samples, mut frame_sum) = (0u64, 0u64);
    for line in text.lines() {
        let Some((stack, n)) = line.rsplit_once(' ') else {
            continue;
        };
        let n: u64 = n.parse().unwrap_or(0);
        if stack.contains("main.pad") {
            samples += n;
            frame_sum += n * (stack.matches(';').count() as u64 + 1);
        }
    }
    let (dt, dc) = (last.0 - first.0, last.1 - first.1);
    let all_samples: u64 = text
        .lines()
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    // The counters cover attach → last window, the profile attach → end: scale the samples.
    let samples_covered = all_samples as f64 * covered.min(1.0);
    Ok(Row {
        depth,
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
    })
}

pub fn run(env: &Env) -> Result<Section> {
    let knob = "/proc/sys/kernel/bpf_stats_enabled";
    let old = std::fs::read_to_string(knob).unwrap_or_else(|_| "0".into());
    std::fs::write(knob, "1").context("enabling kernel.bpf_stats_enabled")?;
    let mut rows = Vec::new();
    let mut err = None;
    for &d in &env.params.kernel_depths {
        match one(env, d) {
            Ok(r) => rows.push(r),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let _ = std::fs::write(knob, old.trim());
    if let Some(e) = err {
        return Err(e);
    }
    let mut md = String::from("## 2. In-kernel cost per sample\n\n");
    md.push_str(&format!("Ran: {}.\n\n", machine()));
    md.push_str(&format!(
        "`sysctl kernel.bpf_stats_enabled=1` (restored after), target `bench/go/spin busy S 2 DEPTH` (2 busy \
         goroutines under DEPTH frames of recursion plus the 6-level work tree), `gprof-bpf --pid PID -F 999`. \
         The agent's perf_event program's `run_time_ns`/`run_cnt` (from `/proc/AGENT/fdinfo`) are read every \
         second for {} windows after a 0.5 s warm-up; each window gives mean ns per run. A run is one cpu-clock \
         tick on a CPU: in --pid mode ticks of other processes are filtered out in a few ns and dilute the \
         mean, so the last column charges all run time to the target's samples only (an upper bound). \
         bpf_stats itself adds two clock reads per run (~20–40 ns).\n\n",
        env.params.kernel_windows
    ));
    md.push_str("| user frames per sample (avg) | ns per run, median of windows | spread | whole run: ns per run | ns per target sample (upper bound, ≈) | runs / target samples (whole recording) | reproduce |\n|---|---|---|---|---|---|---|\n");
    for r in &rows {
        let s = summarize(&r.windows);
        md.push_str(&format!(
            "| {:.1} (DEPTH {}) | {:.0} ns | {} | {:.0} ns | {:.0} ns | {} / {} | {} |\n",
            r.frames,
            r.depth,
            s.median,
            s.spread(|v| format!("{v:.0}")),
            r.per_run,
            r.per_target_sample,
            r.runs,
            r.samples,
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
        if !ok {
            md.push_str(&format!(
                "**Goal missed** by {:.0} ns ({:.1}×). Where it goes (profiler-ebpf/src/main.rs): every sample with a \
                 new (tid, stack, [SP], [SP+8]) key inserts into `COUNTS_n`, and every new user stack copies the \
                 whole 1.5 KiB `UserStack` (192 frames, whatever the depth) into `USER_STACKS_n`; both maps are \
                 `BPF_F_NO_PREALLOC`, so each insert allocates in the kernel. The sampled PC is part of the stack \
                 hash, so on a real program nearly every sample is new. The frame-pointer walk itself costs two \
                 `bpf_probe_read_user` per frame (compare the DEPTH rows).\n\n",
                s.median - 1000.0,
                s.median / 1000.0
            ));
        }
    }
    md.push_str(&format!("Reproduce: {}.\n", repro("kernel", env)));
    Ok(Section {
        id: "kernel",
        markdown: md,
    })
}
