//! Developer tasks: `cargo xtask setup | demo | test | lint`.
//!
//! Every task that needs prerequisites runs `scripts/setup.sh` first (idempotent), so the
//! README's two commands work on a fresh Debian 12.

mod bench;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "gprof-bpf developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install prerequisites (Debian packages, bpf-linker, rust-src, Go toolchains).
    Setup,
    /// Build everything, start the bundled demo Go program, profile it and print the report.
    Demo {
        /// Seconds to profile.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Run the whole test suite (as root: the sampler tests load the real eBPF program).
    Test {
        /// Extra arguments for `cargo test` (after `--` go to the test binaries).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// cargo fmt --check and clippy -D warnings.
    Lint,
    /// Run the benchmarks (as root) and rewrite BENCHMARKS.md; see BENCHMARKS.md for the parts.
    Bench(bench::BenchArgs),
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn setup() -> Result<()> {
    if unsafe_geteuid() != 0 {
        eprintln!("xtask: not root: skipping scripts/setup.sh (it installs Debian packages)");
        return Ok(());
    }
    run(Command::new("bash").arg(root().join("scripts/setup.sh")))
}

fn unsafe_geteuid() -> u32 {
    // Avoids a libc dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:").map(|v| {
                    v.split_whitespace()
                        .nth(1)
                        .unwrap_or("1")
                        .parse()
                        .unwrap_or(1)
                })
            })
        })
        .unwrap_or(1)
}

/// GOROOT of the newest installed Go toolchain (the test kit knows where they live).
fn newest_go() -> Result<PathBuf> {
    let version = gprof_testkit::go::newest()?;
    gprof_testkit::go::goroot(&version).context("Go toolchain vanished")
}

fn demo(seconds: u64) -> Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "-p", "profiler-user"]))?;
    let goroot = newest_go()?;
    let out = root().join("target/demo/hotloop");
    run(Command::new(goroot.join("bin/go"))
        .current_dir(root().join("tests/fixtures/go/hotloop"))
        .env("GOROOT", &goroot)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .args(["build", "-o"])
        .arg(&out)
        .arg("."))?;
    // The demo program runs a bit longer than the recording so it is alive throughout.
    let mut child = Command::new(&out)
        .args(["demo", &(seconds + 3).to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("starting the demo program")?;
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    let result = run(Command::new(root().join("target/release/gprof-bpf")).args([
        "--pid",
        &pid,
        "--duration",
        &format!("{seconds}s"),
        "--source-path",
        root()
            .join("tests/fixtures/go/hotloop")
            .to_str()
            .unwrap_or("."),
    ]));
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn lint() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    // AYA_BUILD_SKIP: lint without the nested eBPF build (the kernel crate is linted as a
    // workspace member all the same); the test build right after builds the real object.
    run(cargo().env("AYA_BUILD_SKIP", "1").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

fn test(args: Vec<String>) -> Result<()> {
    setup()?;
    let strict = gprof_testkit::strict();
    if unsafe_geteuid() != 0 {
        eprintln!(
            "\n!!!! xtask: not root: the sampler tests will {} (they load eBPF programs) !!!!\n",
            if strict { "FAIL" } else { "SKIP" }
        );
    }
    lint()?;
    // One test thread: the sampler tests measure CPU shares of real processes on a 2-CPU host,
    // and running them beside fixture builds would distort those shares. (It also keeps each
    // test's `SKIPPED:` line between its `test NAME ...` and its result, which the count needs.)
    let (cargo_args, test_args): (Vec<String>, Vec<String>) =
        match args.iter().position(|a| a == "--") {
            Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
            None => (args, Vec::new()),
        };
    let counts = run_counting_tests(
        cargo()
            .args(["test", "--release", "--workspace"])
            .args(&cargo_args)
            .args(["--", "--test-threads=1"])
            .args(&test_args),
    )?;
    // A few seconds per fuzz target: a target that no longer builds or crashes at once fails.
    bench::fuzz::smoke(bench::FUZZ_SMOKE_SECONDS)?;
    bench::smoke()?;
    // One closing line for the whole suite (cargo prints one per test binary, the last of
    // which is an empty doc-test run).
    counts.print(strict);
    Ok(())
}

/// The suite's outcome. cargo counts a test that skipped (returned early, see gprof_testkit)
/// as passed; here it counts as skipped instead.
#[derive(Default)]
struct Counts {
    /// Sums of cargo's `test result:` lines.
    cargo_passed: u64,
    failed: u64,
    ignored: u64,
    /// Passing tests that printed a `SKIPPED:` line (whole or in part).
    skipped: u64,
    /// The running test printed a `SKIPPED:` line.
    skipping: bool,
}

impl Counts {
    fn line(&mut self, line: &str) {
        if line.starts_with(gprof_testkit::SKIPPED_PREFIX) {
            self.skipping = true;
            return;
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next())
                    && let Ok(n) = n.parse::<u64>()
                {
                    match what {
                        "passed" => self.cargo_passed += n,
                        "failed" => self.failed += n,
                        "ignored" => self.ignored += n,
                        _ => {}
                    }
                }
            }
            return;
        }
        // A test's result: `test NAME ... ok`, or `ok` alone after a SKIPPED line.
        let result = match line.strip_prefix("test ") {
            Some(rest) => rest.rsplit_once(" ... ").map(|(_, r)| r.trim()),
            None => Some(line.trim()),
        };
        match result {
            Some("ok") => {
                self.skipped += u64::from(self.skipping);
                self.skipping = false;
            }
            Some(r) if r == "FAILED" || r.starts_with("ignored") => self.skipping = false,
            _ => {}
        }
    }

    fn print(&self, strict: bool) {
        let passed = self.cargo_passed.saturating_sub(self.skipped);
        println!(
            "tests: {passed} passed, {} failed, {} skipped",
            self.failed,
            self.skipped + self.ignored
        );
        if self.skipped + self.ignored > 0 {
            println!(
                "tests: skipped = {} that could not run here (SKIPPED lines above; {}=1 fails them) + {} #[ignore]d",
                self.skipped,
                gprof_testkit::STRICT_VAR,
                self.ignored
            );
        }
        if strict {
            println!("tests: strict mode ({}=1)", gprof_testkit::STRICT_VAR);
        }
    }
}

/// Runs `cargo test`, echoing its output, and counts its results.
fn run_counting_tests(cmd: &mut Command) -> Result<Counts> {
    use std::io::BufRead as _;
    eprintln!("xtask: {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut counts = Counts::default();
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        counts.line(&line);
    }
    let status = child.wait()?;
    if !status.success() {
        counts.print(gprof_testkit::strict());
        bail!("{cmd:?} failed: {status}");
    }
    Ok(counts)
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup(),
        Task::Demo { seconds } => demo(seconds),
        Task::Test { args } => test(args),
        Task::Lint => lint(),
        Task::Bench(args) => bench::main(args),
    }
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn a_skipped_test_is_not_counted_as_passed() {
        let out = "\
running 4 tests
test a ... ok
test b ... 
SKIPPED: b: needs root
ok
test c ... 
SKIPPED: c: Go 1.19 is not installed
SKIPPED: c: Go 1.21.13 is not installed
ok
test d ... ignored
test e ... 
SKIPPED: e: no llvm-symbolizer
FAILED
test f ... ok

test result: FAILED. 4 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
";
        let mut c = Counts::default();
        for l in out.lines() {
            c.line(l);
        }
        assert_eq!(
            (c.cargo_passed - c.skipped, c.failed, c.skipped, c.ignored),
            (2, 1, 2, 1)
        );
    }
}
