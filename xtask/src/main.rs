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

fn newest_go() -> Result<PathBuf> {
    let roots = std::env::var_os("GPROF_GO_ROOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/gprof-bpf/go".into());
    for v in [
        "1.27.3", "1.26.6", "1.25.5", "1.24.11", "1.23.9", "1.22.10", "1.21.13", "1.19",
    ] {
        let go = roots.join(v).join("bin/go");
        if go.exists() {
            return Ok(roots.join(v));
        }
    }
    bail!("no Go toolchain found: run `cargo xtask setup` as root")
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
    if unsafe_geteuid() != 0 {
        eprintln!(
            "\n!!!! xtask: not root: the sampler tests will SKIP (they load eBPF programs) !!!!\n"
        );
    }
    lint()?;
    // One test thread: the sampler tests measure CPU shares of real processes on a 2-CPU host,
    // and running them beside fixture builds would distort those shares.
    let (cargo_args, test_args): (Vec<String>, Vec<String>) =
        match args.iter().position(|a| a == "--") {
            Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
            None => (args, Vec::new()),
        };
    let (passed, failed, ignored) = run_counting_tests(
        cargo()
            .args(["test", "--release", "--workspace"])
            .args(&cargo_args)
            .args(["--", "--test-threads=1"])
            .args(&test_args),
    )?;
    bench::smoke()?;
    // One closing line for the whole suite (cargo prints one per test binary, the last of
    // which is an empty doc-test run).
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    Ok(())
}

/// Runs `cargo test`, echoing its output, and sums its `test result:` lines.
fn run_counting_tests(cmd: &mut Command) -> Result<(u64, u64, u64)> {
    use std::io::BufRead as _;
    eprintln!("xtask: {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next())
                    && let Ok(n) = n.parse::<u64>()
                {
                    match what {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        "ignored" => ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
        bail!("{cmd:?} failed: {status}");
    }
    Ok((passed, failed, ignored))
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
