//! Shared helpers for gprof-bpf's integration tests: Go toolchains and fixture builds, and
//! root checks.

pub mod go;
pub mod pprof;
pub mod symcheck;

/// True when the tests may load eBPF programs. Root-only tests call this first and, when it
/// is false, print a loud skip message (CI runs as root, so there they always run).
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!(
        "\n!!!! SKIPPED {test}: needs root (CAP_BPF + CAP_PERFMON); run the suite as root !!!!\n"
    );
    false
}
