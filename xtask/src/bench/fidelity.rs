//! Part 5 — Fidelity: `bench/go/shares` runs four functions for 40/30/20/10 % of its CPU (calibrated
//! alone at start) and measures the truth itself with the thread CPU clock around every call.
//! gprof-bpf (`--pid`), `perf record -g -p` and the program's own runtime/pprof profile the same
//! measured phase at the same rate; each tool's share of each function (flat, renormalized over
//! the four) is compared with the truth in percentage points.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{Agent, Env, Guard, Section, machine, repro, summarize, summary_row};

const FUNCS: [&str; 4] = ["main.shareA", "main.shareB", "main.shareC", "main.shareD"];
const TOOLS: [&str; 3] = ["gprof-bpf", "perf", "runtime/pprof"];

/// flat% per function from `go tool pprof -top` output.
fn pprof_top(env: &Env, file: &std::path::Path) -> Result<HashMap<String, f64>> {
    let out = env
        .go()
        .args([
            "tool",
            "pprof",
            "-top",
            "-nodecount=1000",
            "-nodefraction=0",
            "-edgefraction=0",
            "-symbolize=none",
        ])
        .arg(file)
        .output()?;
    if !out.status.success() {
        bail!(
            "go tool pprof -top {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut m = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 6
            && f[1].ends_with('%')
            && let Ok(v) = f[1].trim_end_matches('%').parse::<f64>()
        {
            *m.entry(f[5..].join(" ")).or_default() += v;
        }
    }
    Ok(m)
}

/// Overhead% per symbol from `perf report --no-children --sort sym`.
fn perf_top(perf: &std::path::Path, data: &std::path::Path) -> Result<HashMap<String, f64>> {
    let out = Command::new(perf)
        .args([
            "report",
            "--stdio",
            "-q",
            "--no-children",
            "--sort",
            "sym",
            "-g",
            "none",
            "--percent-limit",
            "0",
            "-i",
        ])
        .arg(data)
        .output()?;
    if !out.status.success() {
        bail!("perf report: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut m = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 3
            && f[0].ends_with('%')
            && let Ok(v) = f[0].trim_end_matches('%').parse::<f64>()
        {
            *m.entry(f[2..].join(" ")).or_default() += v;
        }
    }
    Ok(m)
}

fn normalize(m: &HashMap<String, f64>) -> Option<[f64; 4]> {
    let v: Vec<f64> = FUNCS
        .iter()
        .map(|f| m.get(*f).copied().unwrap_or(0.0))
        .collect();
    let sum: f64 = v.iter().sum();
    (sum > 0.0).then(|| {
        [
            v[0] / sum * 100.0,
            v[1] / sum * 100.0,
            v[2] / sum * 100.0,
            v[3] / sum * 100.0,
        ]
    })
}

/// One run: truth and each tool's shares (percent), in FUNCS order.
/// Shares in FUNCS order, percent.
type Shares = [f64; 4];

fn one(env: &Env) -> Result<(Shares, Vec<Option<Shares>>)> {
    let p = &env.params;
    let t = &env.tmp;
    let (pprof_file, truth_file, ours_file, perf_file) = (
        t.join("fidelity.pprof.pb.gz"),
        t.join("fidelity.truth"),
        t.join("fidelity.gprof.pb.gz"),
        t.join("fidelity.perf.data"),
    );
    for f in [&pprof_file, &truth_file, &ours_file, &perf_file] {
        let _ = std::fs::remove_file(f);
    }
    let mut w = Guard(Some(
        Command::new(env.workload("shares"))
            .arg(format!("{}", p.fidelity_secs))
            .arg(&pprof_file)
            .arg(p.fidelity_hz.to_string())
            .arg(&truth_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    ));
    let mut lines = BufReader::new(w.child().stdout.take().context("stdout")?).lines();
    let ready = lines.next().context("shares: no ready line")??;
    let pid = ready
        .strip_prefix("ready ")
        .context("shares: bad ready line")?
        .trim()
        .to_string();
    let hz = p.fidelity_hz.to_string();
    let args: Vec<String> = vec![
        "--pid".into(),
        pid.clone(),
        "-F".into(),
        hz.clone(),
        "-o".into(),
        ours_file.display().to_string(),
    ];
    let mut agent = Agent::spawn(&env.gprof, &args, &t.join("fidelity.stdout"))?;
    let mut perf = match &env.perf {
        Some(perf) => Some(Guard(Some(
            Command::new(perf)
                .args([
                    "record",
                    "-q",
                    "-e",
                    "cpu-clock",
                    "-F",
                    &hz,
                    "-g",
                    "-p",
                    &pid,
                    "-o",
                ])
                .arg(&perf_file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        ))),
        None => None,
    };
    agent.wait_line("gprof-bpf: sampling", Duration::from_secs(30))?;
    // perf -p prints nothing when attached: give it a moment.
    std::thread::sleep(Duration::from_millis(700));
    {
        let stdin = w.child().stdin.as_mut().context("stdin")?;
        writeln!(stdin, "go")?;
    }
    let done = lines.next().context("shares: no done line")??;
    if done.trim() != "done" {
        bail!("shares: unexpected {done:?}");
    }
    if let Some(g) = perf.as_mut() {
        super::sigint(g.pid());
        g.wait()?;
    }
    agent.stop(true)?;
    drop(w.child().stdin.take());
    w.wait()?;
    let truth_text = std::fs::read_to_string(&truth_file)?;
    let mut truth = [0.0; 4];
    for line in truth_text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = FUNCS.iter().position(|x| Some(x) == f.first()) {
            truth[i] = f.get(1).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) * 100.0;
        }
    }
    let ours = normalize(&pprof_top(env, &ours_file)?);
    let theirs = match &env.perf {
        Some(perf) => normalize(&perf_top(perf, &perf_file)?),
        None => None,
    };
    let rt = normalize(&pprof_top(env, &pprof_file)?);
    Ok((truth, vec![ours, theirs, rt]))
}

pub fn run(env: &Env) -> Result<Section> {
    let p = &env.params;
    // errors[tool][func] over runs; shares likewise.
    let mut errors = vec![vec![Vec::new(); 4]; 3];
    let mut shares = vec![vec![Vec::new(); 4]; 3];
    let mut truths = vec![Vec::new(); 4];
    for i in 0..p.fidelity_runs {
        let (truth, tools) = one(env)?;
        eprintln!("xtask bench: fidelity run {i}: truth {truth:.1?} tools {tools:.1?}");
        for fi in 0..4 {
            truths[fi].push(truth[fi]);
        }
        for (ti, t) in tools.iter().enumerate() {
            if let Some(s) = t {
                for fi in 0..4 {
                    errors[ti][fi].push((s[fi] - truth[fi]).abs());
                    shares[ti][fi].push(s[fi]);
                }
            }
        }
    }
    let mut md = String::from("## 5. Fidelity\n\n");
    md.push_str(&format!("Ran: {}.\n\n", machine()));
    md.push_str(&format!(
        "Workload `bench/go/shares`: four non-inlined functions (integer LCG, float sqrt, random 4 MiB memory walk, \
         byte FNV hash) called round-robin on one locked OS thread with iteration counts calibrated (each alone, at \
         start) for 40/30/20/10 % of the CPU; the truth is the thread CPU time (CLOCK_THREAD_CPUTIME_ID) measured \
         around every call during the profiled phase. All three profile that same phase at {} Hz: `gprof-bpf --pid \
         PID -F {0} -o x.pb.gz`, `perf record -e cpu-clock -F {0} -g -p PID` (read with `perf report --no-children \
         --sort sym`), and the program's own runtime/pprof (`runtime.SetCPUProfileRate({0})` before \
         `StartCPUProfile`). gprof-bpf's and runtime/pprof's files are read with `go tool pprof -top`. Each tool's \
         flat share of each function is renormalized over the four functions (other threads and the timing calls \
         are excluded) and compared with the truth. {} runs of {} s; with ~{} samples a run, sampling noise alone is \
         about ±{:.1} points (1σ) on the 40 % function.\n\n",
        p.fidelity_hz,
        p.fidelity_runs,
        p.fidelity_secs,
        (p.fidelity_hz as f64 * p.fidelity_secs) as u64,
        (0.24 / (p.fidelity_hz as f64 * p.fidelity_secs)).sqrt() * 100.0,
    ));
    md.push_str("| function | truth | gprof-bpf share | error (pp), median / max | perf share | error | runtime/pprof share | error |\n|---|---|---|---|---|---|---|---|\n");
    for (fi, name) in FUNCS.iter().enumerate() {
        let tr = summarize(&truths[fi]);
        let mut row = format!("| `{name}` | {:.2}% |", tr.median);
        for ti in 0..3 {
            let (s, e) = (summarize(&shares[ti][fi]), summarize(&errors[ti][fi]));
            if s.n == 0 {
                row.push_str(" n/a | n/a |");
            } else {
                row.push_str(&format!(
                    " {:.2}% | {:.2} / {:.2} |",
                    s.median, e.median, e.max
                ));
            }
        }
        md.push_str(&row);
        md.push('\n');
    }
    md.push('\n');
    let worst = |ti: usize| {
        (0..4)
            .map(|fi| summarize(&errors[ti][fi]).max)
            .fold(f64::NAN, f64::max)
    };
    let mean = |ti: usize| {
        let all: Vec<f64> = (0..4).flat_map(|fi| errors[ti][fi].clone()).collect();
        if all.is_empty() {
            f64::NAN
        } else {
            all.iter().sum::<f64>() / all.len() as f64
        }
    };
    md.push_str("| tool | worst error over functions and runs (pp) | mean absolute error (pp) |\n|---|---|---|\n");
    for (ti, t) in TOOLS.iter().enumerate() {
        md.push_str(&format!("| {t} | {:.2} | {:.2} |\n", worst(ti), mean(ti)));
    }
    md.push('\n');
    let (gw, gm, pm) = (worst(0), mean(0), mean(1));
    // 1σ of the sampling noise of a mean absolute error over all functions and runs: the
    // difference of two tools' means is only meaningful beyond that.
    let samples = p.fidelity_hz as f64 * p.fidelity_secs;
    let noise = (0.24 / samples).sqrt() * 100.0 / ((4 * p.fidelity_runs) as f64).sqrt();
    let verdict = if gw > 2.0 || gm > pm + noise {
        "**missed**"
    } else if gm > pm {
        "met (mean worse than perf by less than sampling noise)"
    } else {
        "met"
    };
    md.push_str(&summary_row(
        "fidelity: gprof-bpf worst per-function error",
        &format!(
            "{gw:.2} pp (mean {gm:.2}; perf mean {pm:.2}, runtime/pprof mean {:.2})",
            mean(2)
        ),
        "≤ 2 pp on every function, no worse than perf",
        verdict,
    ));
    if gw > 2.0 {
        md.push_str(&format!(
            "**Goal missed**: gprof-bpf's worst error is {gw:.2} pp ({:.2} over 2 pp).\n\n",
            gw - 2.0
        ));
    }
    if gm > pm {
        md.push_str(&format!(
            "gprof-bpf's mean error {gm:.3} pp vs perf's {pm:.3} pp: a difference of {:.3} pp, against a sampling noise \
             of about {noise:.3} pp (1σ) on such a mean{}.\n\n",
            gm - pm,
            if gm > pm + noise { ": **goal missed**" } else { ": not a measurable difference" }
        ));
    }
    md.push_str(&format!("Reproduce: {}.\n", repro("fidelity", env)));
    Ok(Section {
        id: "fidelity",
        markdown: md,
    })
}
