//! Part 4 — Symbolizer speed: `gprof-bpf addr2line -e BIN` vs Go's own addr2line tool
//! (`cmd/addr2line` built from the toolchain, what `go tool addr2line` runs, called directly so
//! the `go` command's start-up is not charged to it) on the same PCs of a large Go binary: every
//! function entry plus random text PCs, alternating A/B. Also the open-to-first-answer time of
//! each (spawn, one PC on stdin, stdin closed, first output line). When the criterion bench
//! `profiler-user/benches/symbolize.rs` exists, its results are run and quoted too.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use super::{Env, Section, machine, repro, run as run_cmd, summarize, summary_row};

fn build_big(env: &Env) -> Result<(PathBuf, &'static str)> {
    let candidates = [
        (
            "profiler-user/benches/bigprog",
            "profiler-user/benches/bigprog",
        ),
        ("tests/fixtures/go/big", "tests/fixtures/go/big"),
    ];
    for (dir, name) in candidates {
        let src = env.root.join(dir);
        if src.join("main.go").exists() {
            let out = env.bin.join("symbolize-big");
            run_cmd(
                env.go()
                    .current_dir(&src)
                    .env("GOFLAGS", "-mod=mod")
                    .env("GOPROXY", "off")
                    .args(["build", "-o"])
                    .arg(&out)
                    .arg("."),
            )?;
            return Ok((out, name));
        }
    }
    bail!(
        "no large Go program to symbolize (profiler-user/benches/bigprog or tests/fixtures/go/big)"
    )
}

/// Function entries (from `go tool nm`) and `random` uniformly random PCs in [first, last entry).
fn pcs(env: &Env, bin: &Path, random: usize) -> Result<(Vec<u64>, usize)> {
    let out = env.go().args(["tool", "nm", "-n"]).arg(bin).output()?;
    if !out.status.success() {
        bail!("go tool nm failed");
    }
    let mut entries: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let kind = it.next()?;
            (kind == "T" || kind == "t").then_some(addr)
        })
        .collect();
    entries.sort_unstable();
    entries.dedup();
    let (lo, hi) = (
        *entries.first().context("no text symbols")?,
        *entries.last().context("no text symbols")?,
    );
    let n_entries = entries.len();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        entries.push(lo + x % (hi - lo));
    }
    Ok((entries, n_entries))
}

fn time_batch(cmd: &mut Command, input: &Path, output: &Path) -> Result<f64> {
    let t0 = Instant::now();
    let st = cmd
        .stdin(std::fs::File::open(input)?)
        .stdout(std::fs::File::create(output)?)
        .stderr(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("{cmd:?}: {st}");
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// The floor of a whole-process run on this machine: spawning our binary with nothing to do
/// (`--version`: process start, dynamic linking, exit) plus writing `bytes` (the output) to a
/// fresh file in the same directory as the tools' output, truncating the previous one as the
/// tools' runs do. Returns (start, write) in seconds.
fn floor(gprof: &Path, bytes: &[u8], output: &Path) -> Result<(f64, f64)> {
    let t0 = Instant::now();
    let st = Command::new(gprof)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let start = t0.elapsed().as_secs_f64();
    if !st.success() {
        bail!("{} --version: {st}", gprof.display());
    }
    let t0 = Instant::now();
    let mut f = std::fs::File::create(output)?;
    f.write_all(bytes)?;
    drop(f);
    Ok((start, t0.elapsed().as_secs_f64()))
}

fn first_answer(cmd: &mut Command, pc: u64) -> Result<f64> {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    {
        let mut stdin = child.stdin.take().context("stdin")?;
        writeln!(stdin, "{pc:#x}")?;
    }
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let t = t0.elapsed().as_secs_f64();
    child.wait()?;
    if line.is_empty() {
        bail!("{cmd:?}: no answer");
    }
    Ok(t)
}

fn criterion(env: &Env) -> Option<String> {
    if env.params.smoke || !env.root.join("profiler-user/benches/symbolize.rs").exists() {
        return None;
    }
    let out = super::cargo()
        .env("AYA_BUILD_SKIP", "1")
        .args([
            "bench",
            "-p",
            "profiler-user",
            "--bench",
            "symbolize",
            "--",
            "--noplot",
            "--sample-size",
            "10",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "5",
        ])
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Some(format!(
            "(the criterion bench failed: {})\n",
            text.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
        ));
    }
    let keep: Vec<&str> = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("bench binary")
                || t.starts_with("open →")
                || t.contains("time:")
                || t.contains("thrpt:")
                || (!l.starts_with(' ')
                    && !t.is_empty()
                    && !t.contains("Compiling")
                    && !t.contains("Finished")
                    && !t.contains("Running")
                    && !t.starts_with("Benchmarking")
                    && !t.starts_with("Found")
                    && !t.starts_with("Gnuplot")
                    && !t.starts_with("warning")
                    && !t.contains("outliers"))
        })
        .collect();
    Some(keep.join("\n"))
}

pub fn run(env: &Env) -> Result<Section> {
    let p = &env.params;
    let (big, big_name) = build_big(env)?;
    let size = std::fs::metadata(&big)?.len();
    let (all, n_entries) = pcs(env, &big, p.sym_random_pcs)?;
    let input = env.tmp.join("symbolize.pcs");
    let text: String = all.iter().map(|pc| format!("{pc:#x}\n")).collect();
    std::fs::write(&input, text)?;
    // Since Go 1.24 `go tool addr2line` builds the tool on demand into the build cache and runs
    // it from there; build the same package once here and run it directly.
    let go_tool = env.bin.join("go-addr2line");
    run_cmd(
        env.go()
            .args(["build", "-o"])
            .arg(&go_tool)
            .arg("cmd/addr2line"),
    )?;
    let ours = || {
        let mut c = Command::new(&env.gprof);
        c.args(["addr2line", "-e"]).arg(&big);
        c
    };
    let theirs = || {
        let mut c = Command::new(&go_tool);
        c.arg(&big);
        c
    };
    let (out_a, out_b) = (env.tmp.join("symbolize.ours"), env.tmp.join("symbolize.go"));
    let (mut ratios, mut rate_ours, mut rate_go) = (Vec::new(), Vec::new(), Vec::new());
    let (mut first_ours, mut first_go, mut first_ratio) = (Vec::new(), Vec::new(), Vec::new());
    let main_entry = all[n_entries / 2];
    let (mut floor_start, mut floor_write, mut floor_ratio) = (Vec::new(), Vec::new(), Vec::new());
    let out_floor = env.tmp.join("symbolize.floor");
    let mut last_out: Option<Vec<u8>> = None;
    for i in 0..p.pairs {
        let (a, b) = if i % 2 == 0 {
            let a = time_batch(&mut ours(), &input, &out_a)?;
            (a, time_batch(&mut theirs(), &input, &out_b)?)
        } else {
            let b = time_batch(&mut theirs(), &input, &out_b)?;
            (time_batch(&mut ours(), &input, &out_a)?, b)
        };
        ratios.push(b / a);
        rate_ours.push(all.len() as f64 / a);
        rate_go.push(all.len() as f64 / b);
        let bytes = match last_out.take() {
            Some(v) => v,
            None => std::fs::read(&out_a)?,
        };
        let (fs, fw) = floor(&env.gprof, &bytes, &out_floor)?;
        last_out = Some(bytes);
        floor_start.push(fs * 1e3);
        floor_write.push(fw * 1e3);
        floor_ratio.push(b / (fs + fw));
        let (fa, fb) = if i % 2 == 0 {
            let fa = first_answer(&mut ours(), main_entry)?;
            (fa, first_answer(&mut theirs(), main_entry)?)
        } else {
            let fb = first_answer(&mut theirs(), main_entry)?;
            (first_answer(&mut ours(), main_entry)?, fb)
        };
        first_ours.push(fa * 1e3);
        first_go.push(fb * 1e3);
        first_ratio.push(fb / fa);
    }
    let a = std::fs::read_to_string(&out_a)?;
    let b = std::fs::read_to_string(&out_b)?;
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let same = la.iter().zip(&lb).filter(|(x, y)| x == y).count();
    let (r, ro, rg) = (
        summarize(&ratios),
        summarize(&rate_ours),
        summarize(&rate_go),
    );
    let (fls, flw, flr) = (
        summarize(&floor_start),
        summarize(&floor_write),
        summarize(&floor_ratio),
    );
    let (fo, fg, fr) = (
        summarize(&first_ours),
        summarize(&first_go),
        summarize(&first_ratio),
    );
    let mut md = String::from("## 4. Symbolizer speed\n\n");
    md.push_str(&format!("Ran: {}.\n\n", machine()));
    md.push_str(&format!(
        "Binary: `{big_name}` built with Go {} ({:.1} MB). Input: its {n_entries} function entries (`go tool nm`, \
         T/t) then {} random PCs in its text, {} lines in all. A = `gprof-bpf addr2line -e BIN`, B = \
         `go-addr2line BIN` (`go build cmd/addr2line` of the same toolchain: the binary `go tool addr2line` runs, without the `go` command's start-up), whole input on stdin, \
         {} pairs alternating order; the outputs agree on {same} of {} lines (both print `function` then \
         `file:line` per PC). First answer: spawn, write one PC, close stdin, read the first output line \
         (Go's tool prints only at EOF, so closing stdin is what lets both answer), {} pairs.\n\n",
        env.goroot.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
        size as f64 / 1e6,
        p.sym_random_pcs,
        all.len(),
        p.pairs,
        la.len().max(lb.len()),
        p.pairs,
    ));
    md.push_str("| measurement | gprof-bpf | go addr2line | ratio (B/A), median | ratio spread | reproduce |\n|---|---|---|---|---|---|\n");
    md.push_str(&format!(
        "| PCs per second | {:.2} M/s | {:.2} M/s | {:.1}× | {} | {} |\n",
        ro.median / 1e6,
        rg.median / 1e6,
        r.median,
        r.spread(|v| format!("{v:.1}×")),
        repro("symbolize", env)
    ));
    md.push_str(&format!(
        "| open → first answer (process start included) | {:.1} ms ({}) | {:.1} ms | {:.1}× | {} | {} |\n\n",
        fo.median,
        fo.spread(|v| format!("{v:.1}")),
        fg.median,
        fr.median,
        fr.spread(|v| format!("{v:.1}×")),
        repro("symbolize", env)
    ));
    md.push_str(&format!(
        "Floor, measured in the same pairs: starting our binary with nothing to do (`gprof-bpf --version`) \
         takes {:.1} ms ({}) and writing the {:.1} MB of output to a fresh file in the same directory {:.1} ms \
         ({}); go addr2line's time over their sum, the highest ratio any tool producing this output in a \
         new process could reach here, is {:.1}× ({}).\n\n",
        fls.median,
        fls.spread(|v| format!("{v:.1}")),
        a.len() as f64 / 1e6,
        flw.median,
        flw.spread(|v| format!("{v:.1}")),
        flr.median,
        flr.spread(|v| format!("{v:.1}×")),
    ));
    md.push_str(&summary_row(
        "symbolizer throughput vs go tool addr2line",
        &format!("{:.1}× ({})", r.median, r.spread(|v| format!("{v:.1}"))),
        "≥ 20×",
        if r.median >= 20.0 {
            "met"
        } else {
            "**missed**"
        },
    ));
    md.push_str(&summary_row(
        "symbolizer open → first answer",
        &format!("{:.1} ms ({})", fo.median, fo.spread(|v| format!("{v:.1}"))),
        "≤ 20 ms",
        if fo.median <= 20.0 {
            "met"
        } else {
            "**missed**"
        },
    ));
    if r.median < 20.0 {
        md.push_str(&format!(
            "\n**Goal missed**: {:.1}× is {:.1}× short of 20×. Both sides include process start, reading the \
             binary and {} PCs from stdin, and writing {:.1} MB of output (the file paths are long); at 20× that \
             output alone would have to be written in {:.0} ms. See the criterion numbers below for the lookups \
             themselves.\n",
            r.median,
            20.0 - r.median,
            all.len(),
            a.len() as f64 / 1e6,
            1e3 * all.len() as f64 / rg.median / 20.0,
        ));
    }
    if fo.median > 20.0 {
        md.push_str(&format!(
            "\n**Goal missed**: first answer {:.1} ms, {:.1} ms over 20 ms.\n",
            fo.median,
            fo.median - 20.0
        ));
    }
    if let Some(c) = criterion(env) {
        md.push_str(&format!(
            "\nCriterion bench (`AYA_BUILD_SKIP=1 cargo bench -p profiler-user --bench symbolize -- --sample-size 10 --warm-up-time 1 --measurement-time 5`, the library without \
             process start or I/O; the lookups time the bench thread's CPU time, so descheduling on this shared machine is not counted), as printed:\n\n```\n{}\n```\n",
            c.trim()
        ));
    }
    md.push_str(&format!("\nReproduce: {}.\n", repro("symbolize", env)));
    Ok(Section {
        id: "symbolize",
        markdown: md,
    })
}
