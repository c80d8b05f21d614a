//! `go tool pprof` as an oracle: run it on a profile and compare its text with ours.

use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;

use crate::go;

/// One toolchain's `go tool pprof`, run in `dir`, counting the comparisons that passed.
pub struct Oracle {
    pub version: String,
    pub dir: PathBuf,
    pub compared: usize,
}

impl Oracle {
    pub fn pprof(&self, args: &[&str]) -> Result<(String, String)> {
        let mut cmd = go::go_command(&self.version)?;
        cmd.current_dir(&self.dir)
            .args(["tool", "pprof"])
            .args(args);
        let out = cmd.output().context("running go tool pprof")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            bail!("go {} tool pprof {args:?} failed: {stderr}", self.version);
        }
        Ok((stdout, stderr))
    }

    /// pprof's stdout for `args`, which must not print anything on stderr.
    pub fn pprof_quiet(&self, args: &[&str]) -> Result<String> {
        let (out, err) = self.pprof(args)?;
        if !err.trim().is_empty() {
            bail!("go {} tool pprof {args:?} warned:\n{err}", self.version);
        }
        Ok(out)
    }

    /// Asserts `ours == theirs` line by line, after the principled normalization.
    pub fn same(&mut self, what: &str, ours: &str, theirs: &str) {
        let (ours, theirs) = (normalize(ours, theirs), normalize(theirs, theirs));
        if ours != theirs {
            let (o, t): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
            let first = (0..o.len().max(t.len()))
                .find(|&i| o.get(i) != t.get(i))
                .unwrap_or(0);
            panic!(
                "go {} {what}: differs from go tool pprof at line {}:\n  ours:  {:?}\n  pprof: {:?}\n--- ours ---\n{ours}--- pprof ---\n{theirs}",
                self.version,
                first + 1,
                o.get(first),
                t.get(first)
            );
        }
        self.compared += 1;
        println!(
            "go {} {what}: identical to go tool pprof ({} lines)",
            self.version,
            theirs.lines().count()
        );
    }
}

/// Blanks the `Time:` line when pprof prints it in its pre-Go 1.20 layout (`... at 3:04pm`).
pub fn normalize(text: &str, pprof_text: &str) -> String {
    let old_layout = pprof_text
        .lines()
        .any(|l| l.starts_with("Time: ") && l.contains(" at "));
    let mut out = String::new();
    for l in text.lines() {
        if old_layout && l.starts_with("Time: ") {
            out.push_str("Time: <pre-1.20 layout>");
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    out
}
