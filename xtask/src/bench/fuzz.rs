//! The fuzz targets of `fuzz/` (cargo-fuzz): a few seconds each inside `cargo xtask test`, so a
//! target that no longer builds or crashes at once fails CI, and `cargo xtask bench fuzz`, which
//! runs each for a fixed number of executions and records the counts.
//!
//! `--sanitizer none` makes cargo-fuzz pass no `-Z` flag, so the default (stable) toolchain
//! builds the targets: no nightly needed (this machine cannot download one). The code is safe
//! Rust; fuzz builds keep debug assertions and overflow checks, so the fuzzer finds panics.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use super::{Section, summary_row};
use crate::{root, run};

/// One `cargo fuzz` command in `fuzz/` (its own workspace; the eBPF object is not needed to
/// fuzz the user-space parsers).
fn cargo_fuzz() -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(root().join("fuzz"))
        .env("AYA_BUILD_SKIP", "1")
        .arg("fuzz");
    c
}

/// The targets, as `cargo fuzz list` reports them.
fn targets() -> Result<Vec<String>> {
    let out = cargo_fuzz()
        .arg("list")
        .output()
        .context("running cargo fuzz list (is cargo-fuzz installed? scripts/setup.sh)")?;
    if !out.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list: Vec<String> = String::from_utf8(out.stdout)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if list.is_empty() {
        bail!("cargo fuzz list found no targets");
    }
    Ok(list)
}

/// A scratch corpus per target under target/ (libFuzzer writes new inputs to the first corpus
/// directory), plus the checked-in seeds for the gopclntab target, read only.
fn corpus_args(target: &str) -> Result<Vec<PathBuf>> {
    let scratch = root().join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&scratch)?;
    let mut dirs = vec![scratch];
    if target == "gopclntab" {
        dirs.push(root().join("fuzz/seeds"));
    }
    Ok(dirs)
}

/// Runs `target` with libFuzzer options `opts`; returns the executions from libFuzzer's closing
/// `Done N runs in S second(s)` line and the wall seconds of the run (libFuzzer's are whole
/// seconds).
fn fuzz(target: &str, opts: &[String]) -> Result<(u64, f64)> {
    let mut cmd = cargo_fuzz();
    cmd.args(["run", "--sanitizer", "none", target])
        .args(corpus_args(target)?)
        .arg("--")
        .args(opts);
    eprintln!("xtask: {cmd:?}");
    let t0 = Instant::now();
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    let secs = t0.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let lines: Vec<&str> = stderr.lines().collect();
        bail!(
            "fuzz target {target} failed ({}):\n{}",
            out.status,
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
    let runs = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Done ")?
                .split_once(" runs in ")?
                .0
                .parse()
                .ok()
        })
        .with_context(|| format!("no `Done N runs` line from fuzz target {target}"))?;
    Ok((runs, secs))
}

/// The CI smoke: builds every target and runs each for `seconds`. Without cargo-fuzz (setup
/// installs it as root) this is a loud skip, or a failure under strict mode.
pub fn smoke(seconds: u64) -> Result<()> {
    let installed = cargo_fuzz()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if gprof_testkit::strict() {
            bail!(
                "cargo-fuzz is not installed and {}=1 (scripts/setup.sh installs it)",
                gprof_testkit::STRICT_VAR
            );
        }
        eprintln!(
            "\n!!!! xtask: SKIPPED the fuzz smoke: cargo-fuzz is not installed (scripts/setup.sh) !!!!\n"
        );
        return Ok(());
    }
    run(cargo_fuzz().args(["build", "--sanitizer", "none"]))?;
    for t in targets()? {
        let (runs, secs) = fuzz(&t, &[format!("-max_total_time={seconds}")])?;
        eprintln!("xtask fuzz smoke: {t}: {runs} executions in {secs:.0}s, no crash");
    }
    Ok(())
}

/// Seconds one input may run before libFuzzer calls it a timeout.
const TIMEOUT_SECONDS: u64 = 10;

/// `cargo xtask bench fuzz`: every target for `execs` executions; the BENCHMARKS.md section.
pub fn bench(execs: u64) -> Result<Section> {
    run(cargo_fuzz().args(["build", "--sanitizer", "none"]))?;
    let mut rows = String::new();
    let mut total = 0u64;
    let targets = targets()?;
    for t in &targets {
        // A run that takes longer than TIMEOUT_SECONDS is a timeout, which libFuzzer reports
        // like a crash (non-zero exit, the input saved): the bench then fails.
        let (runs, secs) = fuzz(
            t,
            &[
                format!("-runs={execs}"),
                format!("-timeout={TIMEOUT_SECONDS}"),
            ],
        )?;
        if runs < execs {
            bail!("{t}: libFuzzer reported {runs} executions, asked for {execs}");
        }
        total += runs;
        let corpus = std::fs::read_dir(root().join("target/fuzz-corpus").join(t))
            .map(|d| d.count())
            .unwrap_or(0);
        rows.push_str(&format!(
            "| `{t}` | {runs} | 0 | 0 | {corpus} | {secs:.1} s | {:.0} |\n",
            runs as f64 / secs.max(1e-9)
        ));
    }
    let markdown = format!(
        "## 7. Fuzzing\n\n\
         Each target of `fuzz/` ran for {execs} executions without a crash or a timeout \
         (`cargo fuzz run --sanitizer none TARGET target/fuzz-corpus/TARGET -- -runs={execs} \
         -timeout={TIMEOUT_SECONDS}`; overflow checks and debug assertions on; a crash or an input that \
         runs longer than {TIMEOUT_SECONDS} s fails the bench). The corpus is what libFuzzer kept in \
         `target/fuzz-corpus/TARGET` (the gopclntab target also starts from the checked-in `fuzz/seeds`). \
         Reproduce: `cargo xtask bench fuzz --execs {execs}`.\n\n\
         | target | executions | crashes | timeouts | corpus (inputs) | wall time (with startup) | executions/s |\n|---|---|---|---|---|---|---|\n{rows}\n{}",
        summary_row(
            "fuzzing, executions without a crash",
            &format!("{total} over {} targets", targets.len()),
            "≥ 10 M per target",
            if execs >= 10_000_000 {
                "met"
            } else {
                "**missed** (short run)"
            },
        )
    );
    Ok(Section {
        id: "fuzz",
        markdown,
    })
}
