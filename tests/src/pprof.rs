//! `go tool pprof` as an oracle: run it on a profile and compare its text with ours.

use anyhow::{Context as _, Result, bail};
use gprof_bpf::profile::Profile;
use gprof_bpf::report::{self, TextOptions};
use std::path::{Path, PathBuf};

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

/// Our text report of `profile` with `opts`.
pub fn render(profile: &Profile, opts: &TextOptions) -> String {
    let mut out = Vec::new();
    report::render_text(profile, opts, &mut out).expect("render_text");
    String::from_utf8(out).expect("utf-8 report")
}

impl Oracle {
    /// Our `--list RE` (with `--noinlines` if asked) must equal pprof's `-list` on `pb`, both
    /// searching sources in `source_dir` (so pprof's base-name heuristic shortens the names on
    /// both sides). `label` prefixes the comparison's name.
    pub fn same_list(
        &mut self,
        label: &str,
        profile: &Profile,
        pb: &Path,
        re: &str,
        noinlines: bool,
        source_dir: &Path,
    ) -> Result<()> {
        let opts = TextOptions {
            list: Some(regex::Regex::new(re)?),
            noinlines,
            source_paths: vec![source_dir.to_path_buf()],
            ..Default::default()
        };
        let source = source_dir.to_str().context("utf-8 path")?;
        let pb = pb.to_str().context("utf-8 path")?;
        let mut args = vec!["-list", re, "-source_path", source];
        if noinlines {
            args.push("-noinlines");
        }
        args.push(pb);
        let theirs = self.pprof_quiet(&args)?;
        if !theirs.contains("ROUTINE") {
            bail!("pprof listed nothing for {re}:\n{theirs}");
        }
        let ours = render(profile, &opts);
        let what = format!(
            "{label}-list '{re}'{}",
            if noinlines { " -noinlines" } else { "" }
        );
        self.same(&what, &ours, &theirs);
        Ok(())
    }
}
