//! Test support shared by profiler-user's unit tests, the `tests` crate and xtask (it depends on
//! none of them): the one rule for skipping, the Go toolchains and the fixture builds.
//!
//! **A skip is not a pass.** A test that cannot run what it claims to check (no root, no Go
//! toolchain, no `llvm-symbolizer`, a fixture that does not build) calls [`skip`] (or
//! [`require`], [`require_root`]) with the reason:
//! * with `GPROF_BPF_STRICT=1` (set by `.ci/run`) that panics: the test fails with the reason;
//! * otherwise it prints `SKIPPED: <test>: <reason>` on the real stdout (past libtest's
//!   capture, so it shows for passing tests too) and the test goes on or returns. `cargo xtask
//!   test` counts those lines: a test that printed one is counted as skipped, not passed.

pub mod callers;
pub mod go;
pub mod matrix;
pub mod oracle;
pub mod receivers;

use std::fmt::Display;
use std::io::Write as _;

/// The environment variable that turns every skip into a failure.
pub const STRICT_VAR: &str = "GPROF_BPF_STRICT";

/// The line prefix `cargo xtask test` counts.
pub const SKIPPED_PREFIX: &str = "SKIPPED: ";

/// True under `GPROF_BPF_STRICT=1`.
pub fn strict() -> bool {
    std::env::var(STRICT_VAR).is_ok_and(|v| v == "1")
}

/// Name of the running test (libtest names each test's thread after it).
fn current_test() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => "<unnamed test>".to_string(),
    }
}

/// Skips (part of) the current test because of `reason`: panics under strict mode, else prints
/// the loud `SKIPPED:` line. The caller returns or leaves out the part it cannot check.
#[track_caller]
pub fn skip(reason: impl Display) {
    let test = current_test();
    if strict() {
        panic!("{STRICT_VAR}=1 and {test} cannot run: {reason}");
    }
    // Its own line: libtest has printed `test NAME ... ` without a newline.
    let _ = writeln!(std::io::stdout(), "\n{SKIPPED_PREFIX}{test}: {reason}");
}

/// `cond`, or else [`skip`] with `reason` and false.
#[track_caller]
pub fn require(cond: bool, reason: impl Display) -> bool {
    if !cond {
        skip(reason);
    }
    cond
}

/// True when the tests may load eBPF programs (root); otherwise skips.
#[track_caller]
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    require(
        unsafe { libc::geteuid() } == 0,
        "needs root (CAP_BPF + CAP_PERFMON) to load the eBPF program",
    )
}

/// `value`, or else [`skip`] with the error and None: for prerequisites such as a fixture
/// build that may fail for reasons outside the code under test.
#[track_caller]
pub fn require_ok<T, E: Display>(value: Result<T, E>, what: &str) -> Option<T> {
    match value {
        Ok(v) => Some(v),
        Err(e) => {
            skip(format!("{what}: {e:#}"));
            None
        }
    }
}

/// Skips the current test (see [`skip`]) and returns from it.
#[macro_export]
macro_rules! skip {
    ($($reason:tt)*) => {{
        $crate::skip(format!($($reason)*));
        return;
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_name_comes_from_the_thread() {
        assert_eq!(
            super::current_test(),
            "tests::the_test_name_comes_from_the_thread"
        );
    }
}
