//! Builds the eBPF object (profiler-ebpf's `profiler` bin) for bpfel and puts it in OUT_DIR,
//! where `src/sampler.rs` embeds it.
//!
//! This runs the nested cargo build the way aya-build's `build_ebpf` does (same command, flags,
//! target dir and toolchain selection), but quietly: aya-build forwards every line of the
//! nested cargo's progress (`Compiling core ...`) as a `cargo:warning`, which a newcomer's
//! first build shows as dozens of warnings. Here the progress is kept and printed only when
//! the build fails; compiler diagnostics of the eBPF code itself are still real warnings.
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, anyhow, bail};
use cargo_metadata::{Artifact, CompilerMessage, Message};

const PACKAGE: &str = "profiler-ebpf";

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=PROFILER_EBPF_TOOLCHAIN");
    if matches!(std::env::var("AYA_BUILD_SKIP").as_deref(), Ok("1" | "true")) {
        // Fast `cargo check`/`clippy`: an empty stub keeps include_bytes_aligned! compiling.
        let stub = out_dir.join("profiler");
        if !stub.exists() {
            std::fs::write(&stub, [])?;
        }
        return Ok(());
    }
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == PACKAGE)
        .ok_or_else(|| anyhow!("{PACKAGE} package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    // We build-depend on profiler-ebpf, so cargo reruns us when its library changes; this
    // covers its binary too.
    println!("cargo:rerun-if-changed={root_dir}");
    build_ebpf(&out_dir)
}

/// The nested `cargo build` of aya-build 0.2 (`build_ebpf`), with its output captured.
fn build_ebpf(out_dir: &Path) -> anyhow::Result<()> {
    // The eBPF object is built with the stable toolchain: its LLVM (22) matches the bpf-linker
    // that scripts/setup.sh builds, and stable's LLVM only moves every six weeks. A dated
    // nightly cannot be downloaded on our machines. RUSTC_BOOTSTRAP=1 lets stable take
    // `-Z build-std=core` (a nightly takes it anyway).
    let toolchain = std::env::var("PROFILER_EBPF_TOOLCHAIN").unwrap_or_else(|_| "stable".into());
    let endian = std::env::var("CARGO_CFG_TARGET_ENDIAN")?;
    let target = match endian.as_str() {
        "little" => "bpfel-unknown-none",
        "big" => "bpfeb-unknown-none",
        other => bail!("unsupported endian={other}"),
    };
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH")?;
    let arch = if arch.starts_with("riscv64") {
        "riscv64".to_string()
    } else {
        arch
    };
    let mut cmd = match which::which("rustup") {
        Ok(rustup) => {
            let mut c = Command::new(rustup);
            c.args(["run", &toolchain, "cargo"]);
            c
        }
        Err(_) => Command::new("cargo"),
    };
    let target_dir = out_dir.join("aya-build").join("target").join(PACKAGE);
    cmd.args([
        "build",
        "--package",
        PACKAGE,
        "--bins",
        "--message-format=json",
    ])
    .args(["--release", "--target", target, "-Z", "build-std=core"])
    .args(["--features", ""])
    .arg("--target-dir")
    .arg(&target_dir)
    .env(
        "CARGO_ENCODED_RUSTFLAGS",
        format!("--cfg=bpf_target_arch=\"{arch}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf"),
    )
    .env_remove("RUSTC")
    .env_remove("RUSTC_WORKSPACE_WRAPPER")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if !toolchain.starts_with("nightly") {
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("failed to spawn {cmd:?}"))?;
    // The nested cargo's progress, read on a thread so neither pipe can fill and block it.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let progress = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut executables = Vec::new();
    let mut diagnostics = Vec::new();
    for message in Message::parse_stream(stdout) {
        match message.context("nested cargo's stdout is not its JSON stream")? {
            Message::CompilerArtifact(Artifact {
                executable: Some(exe),
                target,
                ..
            }) => executables.push((target.name, exe.into_std_path_buf())),
            Message::CompilerMessage(CompilerMessage { message, .. }) => {
                diagnostics.extend(
                    message
                        .rendered
                        .unwrap_or_default()
                        .lines()
                        .map(String::from),
                );
            }
            Message::TextLine(line) => diagnostics.push(line),
            _ => {}
        }
    }
    let status = child.wait().context("waiting for the nested cargo")?;
    let progress = progress.join().unwrap_or_default();
    // Diagnostics of the eBPF code are worth seeing on every build.
    for line in &diagnostics {
        println!("cargo:warning={line}");
    }
    if !status.success() {
        // Cargo shows a failed build script's stderr: the whole nested log, for the cause.
        eprintln!("{progress}");
        bail!("building the eBPF object failed ({status}): {cmd:?}");
    }
    for (name, exe) in executables {
        let dst = out_dir.join(&name);
        std::fs::copy(&exe, &dst)
            .with_context(|| format!("copying {} to {}", exe.display(), dst.display()))?;
    }
    Ok(())
}
