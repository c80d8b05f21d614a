//! One way out for what the library says while it works: progress, warnings and debug
//! counters go to a [`Reporter`], never straight to stderr. The CLI's is [`Stderr`] (the
//! `gprof-bpf: ...` lines); an agent plugs its log in here.

/// Where the library's progress, warnings and debug lines go.
pub trait Reporter: Send + Sync {
    /// What is happening now ("sampling pid [12] at 99 Hz ..."); silenced by `--quiet`.
    fn progress(&self, msg: &str);
    /// Something the user should know that does not stop the work.
    fn warn(&self, msg: &str);
    /// Counters for benchmarks and debugging (GPROF_BPF_DEBUG).
    fn debug(&self, msg: &str);
}

/// The CLI's reporter: `gprof-bpf: MSG` lines on stderr.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr {
    /// No progress lines (`--quiet`); warnings and debug lines still print.
    pub quiet: bool,
}

impl Reporter for Stderr {
    fn progress(&self, msg: &str) {
        if !self.quiet {
            eprintln!("gprof-bpf: {msg}");
        }
    }

    fn warn(&self, msg: &str) {
        eprintln!("gprof-bpf: warning: {msg}");
    }

    fn debug(&self, msg: &str) {
        eprintln!("gprof-bpf: debug: {msg}");
    }
}
