//! Builds the eBPF object (profiler-ebpf's `profiler` bin) for bpfel and puts it in OUT_DIR,
//! where `src/sampler.rs` embeds it.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let out_dir = std::env::var("OUT_DIR")?;
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=PROFILER_EBPF_TOOLCHAIN");
    if matches!(std::env::var("AYA_BUILD_SKIP").as_deref(), Ok("1" | "true")) {
        // Fast `cargo check`/`clippy`: an empty stub keeps include_bytes_aligned! compiling.
        let stub = std::path::Path::new(&out_dir).join("profiler");
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
        .find(|p| p.name.as_str() == "profiler-ebpf")
        .ok_or_else(|| anyhow!("profiler-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?
        .as_str();
    // The eBPF object is built with the stable toolchain: its LLVM (22) matches the bpf-linker
    // that scripts/setup.sh builds, and stable's LLVM only moves every six weeks. A dated
    // nightly cannot be downloaded on our machines. RUSTC_BOOTSTRAP=1 lets stable take
    // `-Z build-std=core`, which aya-build adds when it sees the variable.
    let toolchain = std::env::var("PROFILER_EBPF_TOOLCHAIN").unwrap_or_else(|_| "stable".into());
    if !toolchain.starts_with("nightly") {
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    }
    let toolchain: &'static str = Box::leak(toolchain.into_boxed_str());
    let package = Package {
        name: "profiler-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(toolchain))
}
