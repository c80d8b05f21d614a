//! Reports: what a [`Profile`] looks like to people and tools.
//!
//! * text: `go tool pprof -list` and `-top` layouts, byte for byte ([`render_text`]), built on a
//!   port of pprof's graph, unit and percentage rules (see `docs/pprof-text-format.md`);
//! * `.pb.gz`: `profile.proto` writer and reader ([`encode_pprof`], [`decode_pprof`]);
//! * `.svg` flame graph (inferno) and `.folded` collapsed stacks;
//! * [`footer`]: what the recording lost and cost.

mod folded;
mod graph;
mod list;
mod pprof;
mod source;
pub mod tags;
mod top;
pub mod units;

pub use pprof::{PprofError, decode_pprof, encode_pprof, encoded_size};

/// Why a report could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("no matches found for regexp: {0}")]
    NoMatches(String),
    #[error("writing {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The profile's ids do not hold together (a bug of whoever built it).
    #[error("{0}")]
    Invalid(String),
    #[error("the profile has no samples to draw a flame graph from")]
    NoSamples,
}

use crate::profile::Profile;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the text report shows and where listings find their sources.
#[derive(Clone, Debug, Default)]
pub struct TextOptions {
    /// `-list REGEX`: annotated source of the functions whose name matches.
    pub list: Option<regex::Regex>,
    /// `-top` with `-nodecount=N` (`Some(0)`: every node, like a bare `-top`).
    pub top: Option<usize>,
    /// `-noinlines`: attribute inlined code to its first out-of-line caller (listings and
    /// the top table).
    pub noinlines: bool,
    /// `-source_path`: directories searched for relative source names (and their ancestors).
    pub source_paths: Vec<PathBuf>,
    /// `-trim_path`: prefixes removed from recorded source names before searching.
    pub trim_paths: Vec<String>,
    /// GOROOTs to search for standard-library sources first (`--goroot`), before `$GOROOT`,
    /// `go env GOROOT`, `/usr/local/go` and `/usr/lib/go-*`; among them all, those of the Go
    /// version the profile's comments name are preferred.
    pub goroots: Vec<PathBuf>,
}

/// Output file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Gzipped `profile.proto`.
    Pprof,
    /// Flame graph.
    Svg,
    /// Collapsed stacks, one `root;...;leaf count` line per stack.
    Folded,
    /// The text report of [`render_text`] followed by the footer.
    Text,
}

/// Which sample value a report shows, in which unit, and its total.
pub(crate) struct Ctx {
    pub index: usize,
    pub sample_type: String,
    /// Lower-cased unit of the sample value.
    pub unit: String,
    pub total: i64,
}

impl Ctx {
    pub fn new(profile: &Profile) -> Self {
        let index = profile
            .default_sample_type
            .min(profile.sample_types.len().saturating_sub(1));
        let (sample_type, unit) = profile
            .sample_types
            .get(index)
            .map(|t| (t.kind.clone(), t.unit.to_lowercase()))
            .unwrap_or_default();
        Ctx {
            index,
            sample_type,
            unit,
            total: graph::total(profile, index),
        }
    }

    /// A value printed in `output_unit` ("minimum": its own best unit).
    pub fn format(&self, v: i64, output_unit: &str) -> String {
        units::scaled_label(v, &self.unit, output_unit)
    }
}

/// Functions listed by the default report.
const DEFAULT_TOP: usize = 10;
const DEFAULT_LISTINGS: usize = 3;

/// Default (no list/top given): the `Total:` line, a top table of the 10 hottest functions,
/// then listings of the 3 hottest functions by flat.
/// With `top`: exactly `go tool pprof -top` (-nodecount=N) output. With `list`: exactly
/// `go tool pprof -list REGEX` output (both given: the table, then the listing).
/// The footer is not included (see [`footer`]).
pub fn render_text(
    profile: &Profile,
    opts: &TextOptions,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let ctx = Ctx::new(profile);
    if let Some(n) = opts.top {
        let t = top::top(profile, &ctx, n, opts.noinlines);
        for l in top::profile_labels(profile, &ctx, &t.unit)
            .iter()
            .chain(&t.report_labels)
        {
            writeln!(out, "{l}")?;
        }
        writeln!(out, "{}", t.header)?;
        for r in &t.rows {
            writeln!(out, "{}", r.line)?;
        }
    }
    if let Some(re) = &opts.list
        && !list::write_list(profile, &ctx, opts, &|name| re.is_match(name), true, out)?
    {
        return Err(ReportError::NoMatches(re.to_string()));
    }
    if opts.top.is_some() || opts.list.is_some() {
        return Ok(());
    }

    writeln!(out, "Total: {}", ctx.format(ctx.total, "minimum"))?;
    let t = top::top(profile, &ctx, DEFAULT_TOP, opts.noinlines);
    for l in &t.report_labels {
        writeln!(out, "{l}")?;
    }
    writeln!(out, "{}", t.header)?;
    for r in &t.rows {
        writeln!(out, "{}", r.line)?;
    }
    let hottest: Vec<&str> = t
        .rows
        .iter()
        .filter(|r| r.flat != 0 && !r.name.is_empty())
        .map(|r| r.name.as_str())
        .collect();
    for name in hottest.into_iter().take(DEFAULT_LISTINGS) {
        list::write_list(profile, &ctx, opts, &|n| n == name, false, out)?;
    }
    Ok(())
}

/// The format a file name asks for: `.pb.gz`/`.pb`/`.pprof` (pprof), `.svg`,
/// `.folded`/`.collapsed`, `.txt`.
pub fn format_from_path(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    let ends = |exts: &[&str]| {
        exts.iter()
            .any(|e| name.ends_with(e) && name.len() > e.len())
    };
    if ends(&[".pb.gz", ".pb", ".pprof", ".pprof.gz"]) {
        Some(Format::Pprof)
    } else if ends(&[".svg"]) {
        Some(Format::Svg)
    } else if ends(&[".folded", ".collapsed"]) {
        Some(Format::Folded)
    } else if ends(&[".txt"]) {
        Some(Format::Text)
    } else {
        None
    }
}

/// Writes `profile` to `path` in `format` (text: the report of `opts` plus the footer).
pub fn write_file(
    profile: &Profile,
    path: &Path,
    format: Format,
    opts: &TextOptions,
) -> Result<(), ReportError> {
    let mut buf: Vec<u8> = Vec::new();
    match format {
        Format::Pprof => buf = encode_pprof(profile)?,
        Format::Svg => folded::write_flamegraph(profile, &mut buf)?,
        Format::Folded => folded::write_folded(profile, &mut buf)?,
        Format::Text => {
            render_text(profile, opts, &mut buf)?;
            if let Some(f) = footer(profile) {
                writeln!(buf, "{f}")?;
            }
        }
    }
    std::fs::write(path, buf).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Footer line stating lost samples, the profiler's own CPU time and peak RSS, when
/// profile.stats is Some (followed by one line per recording note).
pub fn footer(profile: &Profile) -> Option<String> {
    let stats = profile.stats.as_ref()?;
    let lost: Vec<String> = stats
        .lost
        .iter()
        .filter(|(_, n)| *n != 0)
        .map(|(what, n)| format!("{what} ({n})"))
        .collect();
    let lost = if lost.is_empty() {
        "nothing lost".to_string()
    } else {
        lost.join(", ")
    };
    let cpu = i64::try_from(stats.agent_cpu.as_nanos()).unwrap_or(i64::MAX);
    let rss = i64::try_from(stats.agent_max_rss).unwrap_or(i64::MAX);
    let mut s = format!(
        "gprof-bpf: {lost}; profiler CPU time {}, peak RSS {}",
        units::label(cpu, "nanoseconds"),
        units::label(rss, "bytes")
    );
    for n in &stats.notes {
        s.push_str(&format!("\ngprof-bpf: note: {n}"));
    }
    Some(s)
}

#[cfg(test)]
mod tests;
