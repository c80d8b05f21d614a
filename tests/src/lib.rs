//! Shared helpers for gprof-bpf's integration tests: `go tool pprof` and symbolizer oracles.
//! The skip rule, the Go toolchains and the fixture builds come from the test kit
//! (`tests/kit`, shared with profiler-user's unit tests and xtask) and are re-exported here.

pub mod pprof;
pub mod symcheck;

pub use gprof_testkit::{go, require, require_ok, require_root, skip, strict};
