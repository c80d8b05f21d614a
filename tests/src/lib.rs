//! Shared helpers for gprof-bpf's integration tests: `go tool pprof` and symbolizer oracles.
//! The skip rule, the Go toolchains and the fixture builds come from the test kit
//! (`tests/kit`, shared with profiler-user's unit tests and xtask) and are re-exported here.

pub mod pprof;
pub mod symcheck;

pub use gprof_testkit::{go, require, require_ok, require_root, skip, strict};

/// Runs a recording to its end on a fresh single-threaded runtime (as `main` does).
pub fn record(opts: gprof_bpf::record::RecordOptions) -> gprof_bpf::profile::Profile {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(gprof_bpf::record::run(opts, true))
        .expect("recording")
}
