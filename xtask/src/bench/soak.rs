//! Part 7 — Soak: the pipeline for a long `--all` run in bounded memory while the host churns.
//!
//! `gprof-bpf --all --window 15s --windows-only` runs for `--soak-seconds` (10 minutes by
//! default) while a churn loop starts and ends short-lived Go processes (the `churn` fixture:
//! a Go parent exec'ing Go children, as `go build` does), exec storms of `/bin/true`, and
//! compiles with gcc (a large C program). Every 5 s the agent's RSS and open fds are read from
//! /proc; per window its debug line gives the processes and files it holds and the symbol
//! cache. Flat means: median RSS of the last third <= 1.1 x median RSS of the first third, and
//! open fds bounded. The curve is written as an SVG beside BENCHMARKS.md.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::{Env, Section, machine, proc_usage, repro, summarize, summary_row};

struct Point {
    t: f64,
    rss_mib: f64,
    fds: usize,
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Starts short-lived processes until `stop`: Go children in batches, exec storms, gcc runs.
pub(super) fn churn(
    env: &Env,
    stop: Arc<AtomicBool>,
    started: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let churn = env.workload("churn");
    let tmp = env.tmp.clone();
    std::thread::spawn(move || {
        let c_src = tmp.join("soak.c");
        let _ = std::fs::write(
            &c_src,
            "#include <stdio.h>\nint main(void){long s=0;for(long i=0;i<1000;i++)s+=i;printf(\"%ld\\n\",s);return 0;}\n",
        );
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            // 50 Go children, 4 at a time (about 2.5 s of CPU).
            if Command::new(&churn)
                .args(["parent", "50", "4"])
                .stdout(Stdio::null())
                .status()
                .is_ok()
            {
                started.fetch_add(51, Ordering::Relaxed);
            }
            if round.is_multiple_of(3) {
                // An exec storm: 200 processes in a tight shell loop.
                let _ = Command::new("sh")
                    .args([
                        "-c",
                        "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done",
                    ])
                    .status();
                started.fetch_add(201, Ordering::Relaxed);
            }
            if round.is_multiple_of(5) {
                let _ = Command::new("gcc")
                    .args(["-O2", "-o"])
                    .arg(tmp.join("soak-c"))
                    .arg(&c_src)
                    .status();
                // gcc, cc1, as, collect2, ld.
                started.fetch_add(5, Ordering::Relaxed);
            }
        }
    })
}

fn svg(points: &[Point], path: &Path) -> Result<()> {
    let (w, h, pad) = (720.0, 300.0, 40.0);
    let tmax = points.last().map(|p| p.t).unwrap_or(1.0).max(1.0);
    let rmax = points.iter().map(|p| p.rss_mib).fold(1.0, f64::max) * 1.2;
    let x = |t: f64| pad + t / tmax * (w - 2.0 * pad);
    let y = |r: f64| h - pad - r / rmax * (h - 2.0 * pad);
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.t), y(p.rss_mib)))
        .collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{pad}\" y=\"20\">gprof-bpf --all soak: RSS (MiB) over time (s), max {:.1} MiB</text>\n\
         <text x=\"{}\" y=\"{}\">{tmax:.0} s</text>\n<text x=\"4\" y=\"{}\">{:.0}</text>\n",
        h - pad,
        w - pad,
        h - pad,
        h - pad,
        rmax / 1.2,
        w - pad - 30.0,
        h - pad + 16.0,
        y(rmax / 1.2) + 4.0,
        rmax / 1.2,
    );
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>\n</svg>\n",
        line.join(" ")
    ));
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

pub fn run(env: &Env) -> Result<Section> {
    let secs = env.params.soak_secs;
    let dir = env.tmp.join("soak-windows");
    let _ = std::fs::remove_dir_all(&dir);
    let window = if env.params.smoke { "2s" } else { "15s" };
    let log = env.tmp.join("soak.stderr");
    let mut agent = Command::new(&env.gprof)
        .args([
            "--all",
            "-d",
            &format!("{secs}s"),
            "--window",
            window,
            "--windows-only",
        ])
        .arg("--window-dir")
        .arg(&dir)
        .env("GPROF_BPF_DEBUG", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the agent")?;
    let apid = agent.id();
    let stderr = agent.stderr.take().context("agent stderr")?;
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    std::thread::sleep(Duration::from_secs(1));
    let churner = churn(env, stop.clone(), started.clone());
    let t0 = Instant::now();
    let mut points = Vec::new();
    let step = Duration::from_secs(if env.params.smoke { 1 } else { 5 });
    while t0.elapsed() < Duration::from_secs(secs.saturating_sub(2)) {
        std::thread::sleep(step);
        let Some((_, _, rss)) = proc_usage(apid) else {
            break;
        };
        points.push(Point {
            t: t0.elapsed().as_secs_f64(),
            rss_mib: rss as f64 / (1 << 20) as f64,
            fds: fds(apid),
        });
    }
    stop.store(true, Ordering::Relaxed);
    let status = agent.wait()?;
    let _ = churner.join();
    let lines = lines.join().unwrap_or_default();
    let _ = std::fs::write(&log, lines.join("\n"));
    let windows: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("gprof-bpf: debug: window"))
        .collect();
    let footer = lines
        .iter()
        .find(|l| l.starts_with("gprof-bpf: ") && l.contains("peak RSS"))
        .cloned()
        .unwrap_or_default();

    let third = (points.len() / 3).max(1);
    let first: Vec<f64> = points.iter().take(third).map(|p| p.rss_mib).collect();
    let last: Vec<f64> = points.iter().rev().take(third).map(|p| p.rss_mib).collect();
    let (f, l) = (summarize(&first).median, summarize(&last).median);
    let ratio = if f > 0.0 { l / f } else { f64::NAN };
    let peak = points.iter().map(|p| p.rss_mib).fold(0.0, f64::max);
    let max_fds = points.iter().map(|p| p.fds).max().unwrap_or(0);
    let last_fds = points.last().map(|p| p.fds).unwrap_or(0);
    // A smoke run writes under target/ (beside its BENCHMARKS.md), never into the tree.
    let svg_name = "soak-rss.svg";
    let svg_path = if env.params.smoke {
        env.bin.join(svg_name)
    } else {
        env.root.join("bench").join(svg_name)
    };
    svg(&points, &svg_path)?;
    let flat = ratio <= 1.1;
    let mut md = String::new();
    md.push_str(&summary_row(
        "soak: --all RSS, last third / first third",
        &format!("{ratio:.2} ({f:.1} → {l:.1} MiB, peak {peak:.1} MiB)"),
        "≤ 1.1",
        if flat { "met" } else { "MISSED" },
    ));
    md.push_str(&format!(
        "## Soak\n\n{}\n\n`gprof-bpf --all --window {window} --windows-only` for {secs} s while a churn loop \
         started {} short-lived processes (Go parents exec'ing Go children, `/bin/true` exec storms, \
         gcc compiles); agent exit: {status}.\n\n\
         | measure | value |\n|---|---|\n\
         | RSS, median of the first third | {f:.1} MiB |\n| RSS, median of the last third | {l:.1} MiB |\n\
         | ratio (goal ≤ 1.1) | {ratio:.2} |\n| peak RSS (sampled every {} s) | {peak:.1} MiB |\n\
         | open fds: max / at the end | {max_fds} / {last_fds} |\n| windows written | {} |\n\n\
         RSS curve: [bench/{svg_name}](bench/{svg_name}).\n\n",
        repro("soak", env),
        started.load(Ordering::Relaxed),
        step.as_secs(),
        windows.len(),
    ));
    md.push_str("Per-window counters (first, middle, last):\n\n```\n");
    for w in [
        windows.first(),
        windows.get(windows.len() / 2),
        windows.last(),
    ]
    .into_iter()
    .flatten()
    {
        md.push_str(w.trim_start_matches("gprof-bpf: debug: "));
        md.push('\n');
    }
    md.push_str(&footer);
    md.push_str("\n```\n\n");
    md.push_str(&format!("Machine: {}\n", machine()));
    Ok(Section {
        id: "soak",
        markdown: md,
    })
}
