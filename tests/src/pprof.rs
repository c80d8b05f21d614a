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

/// A profile as `go tool pprof -raw` prints it: Go's own reader of the file, used as the one
/// reader for runtime/pprof's profiles and ours alike.
#[derive(Clone, Debug, Default)]
pub struct RawProfile {
    /// Sample type names as pprof prints them (`samples/count`, `cpu/nanoseconds`).
    pub types: Vec<String>,
    pub samples: Vec<RawSample>,
    pub locations: std::collections::HashMap<u64, RawLocation>,
}

#[derive(Clone, Debug)]
pub struct RawSample {
    pub values: Vec<i64>,
    /// Location ids, leaf first.
    pub locations: Vec<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct RawLocation {
    pub address: u64,
    /// Function names of the location's lines, innermost (inlined) first.
    pub functions: Vec<String>,
}

impl RawProfile {
    /// Column of sample type `name` (e.g. `cpu/nanoseconds`).
    pub fn column(&self, name: &str) -> Result<usize> {
        self.types
            .iter()
            .position(|t| t == name)
            .with_context(|| format!("no sample type {name} in {:?}", self.types))
    }
}

/// Parses `go tool pprof -raw` output: the `Samples:` table (values, then `:` and location
/// ids; label lines skipped) and the `Locations` table (`ID: 0xADDR M=N name file:line:col
/// s=N`, one more indented `name file:line:col s=N` line per outer inlined frame).
pub fn parse_raw(text: &str) -> Result<RawProfile> {
    #[derive(PartialEq)]
    enum Section {
        Head,
        Samples,
        Locations,
        Rest,
    }
    let mut section = Section::Head;
    let mut p = RawProfile::default();
    let mut current: Option<u64> = None;
    // `name file:line[:col] s=N`: the name may hold spaces (shape types); the file may not.
    let function_of = |s: &str| -> String {
        let s = s.trim();
        let s = match s.rsplit_once(" s=") {
            Some((head, tail)) if tail.bytes().all(|b| b.is_ascii_digit()) => head,
            _ => s,
        };
        match s.rsplit_once(' ') {
            Some((name, _file)) => name.to_string(),
            None => s.to_string(),
        }
    };
    for line in text.lines() {
        match line.trim_end() {
            "Samples:" => {
                section = Section::Samples;
                continue;
            }
            "Locations" => {
                section = Section::Locations;
                continue;
            }
            "Mappings" => {
                section = Section::Rest;
                continue;
            }
            _ => {}
        }
        match section {
            Section::Head | Section::Rest => {}
            Section::Samples => {
                if p.types.is_empty() {
                    p.types = line.split_whitespace().map(str::to_string).collect();
                    continue;
                }
                let Some((values, locs)) = line.split_once(':') else {
                    continue;
                };
                let values: Option<Vec<i64>> =
                    values.split_whitespace().map(|v| v.parse().ok()).collect();
                let locs: Option<Vec<u64>> =
                    locs.split_whitespace().map(|v| v.parse().ok()).collect();
                // Label lines (`pid:[12]`, `process:[x]`) do not parse as numbers.
                if let (Some(values), Some(locations)) = (values, locs)
                    && values.len() == p.types.len()
                {
                    p.samples.push(RawSample { values, locations });
                }
            }
            Section::Locations => {
                let t = line.trim_start();
                let head = t.split_once(": 0x").and_then(|(id, rest)| {
                    let id: u64 = id.parse().ok()?;
                    let (addr, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                    let addr = u64::from_str_radix(addr, 16).ok()?;
                    let rest = rest.trim_start();
                    let rest = match rest.strip_prefix("M=") {
                        Some(r) => r.split_once(' ').map_or("", |x| x.1),
                        None => rest,
                    };
                    Some((id, addr, rest.to_string()))
                });
                if let Some((id, address, rest)) = head {
                    let mut loc = RawLocation {
                        address,
                        functions: Vec::new(),
                    };
                    if !rest.trim().is_empty() {
                        loc.functions.push(function_of(&rest));
                    }
                    p.locations.insert(id, loc);
                    current = Some(id);
                } else if !t.is_empty() {
                    let id = current.context("inline line before any location")?;
                    p.locations
                        .get_mut(&id)
                        .context("location vanished")?
                        .functions
                        .push(function_of(t));
                }
            }
        }
    }
    anyhow::ensure!(
        !p.types.is_empty() && !p.locations.is_empty(),
        "not go tool pprof -raw output"
    );
    for s in &p.samples {
        for id in &s.locations {
            anyhow::ensure!(
                p.locations.contains_key(id),
                "sample refers to location {id}"
            );
        }
    }
    Ok(p)
}

impl Oracle {
    /// `go tool pprof -raw FILE`, parsed; pprof must not warn.
    pub fn raw(&self, file: &Path) -> Result<RawProfile> {
        let f = file.to_str().context("utf-8 path")?;
        parse_raw(&self.pprof_quiet(&["-raw", f])?)
            .with_context(|| format!("go tool pprof -raw {}", file.display()))
    }
}
