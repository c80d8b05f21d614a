//! Annotated source listings, laid out exactly like `go tool pprof -list` (pprof's
//! `printSource` / `getSourceFromFile`), plus the hot lines when a source file is missing.

use super::graph::{self, Granularity, GraphOptions};
use super::source::{FileHint, SourceReader, trim_path};
use super::units::percentage;
use super::{Ctx, TextOptions};
use crate::profile::Profile;
use std::collections::BTreeMap;
use std::io::Write;

/// Lines shown before the first and after the last sampled line (pprof's `margin`).
const MARGIN: i64 = 5;

/// Writes `Total:` (when `with_total`) and the ROUTINE blocks of every function whose name
/// `matches`. Returns false (writing nothing) when no sampled function matches.
pub(crate) fn write_list(
    profile: &Profile,
    ctx: &Ctx,
    opts: &TextOptions,
    matches: &dyn Fn(&str) -> bool,
    with_total: bool,
    out: &mut dyn Write,
) -> Result<bool, super::ReportError> {
    let explicit: Vec<String> = opts
        .source_paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file_name = |f: &str| trim_path(f, &opts.trim_paths, &explicit);
    let g = graph::build(
        profile,
        &GraphOptions {
            granularity: Granularity::Lines,
            noinlines: opts.noinlines,
            value_index: ctx.index,
            file_name: &file_name,
            kept: None,
        },
    );

    // Function name -> file name -> nodes; sorted by name, then file ("" = no file).
    let mut functions: BTreeMap<&str, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if matches(&n.info.name) {
            functions
                .entry(&n.info.name)
                .or_default()
                .entry(&n.info.file)
                .or_default()
                .push(i);
        }
    }
    if functions.is_empty() {
        return Ok(false);
    }
    let mut reader = SourceReader::new(
        &opts.source_paths,
        &opts.trim_paths,
        &profile.comments,
        &opts.goroots,
    );
    let fmt = |v: i64| ctx.format(v, "minimum");
    let dot = |v: i64| if v == 0 { ".".to_string() } else { fmt(v) };
    if with_total {
        writeln!(out, "Total: {}", fmt(ctx.total))?;
    }
    for (name, files) in &functions {
        if files.keys().all(|f| f.is_empty()) {
            writeln!(out, "No source information for {name}")?;
            continue;
        }
        for (file, nodes) in files.iter().filter(|(f, _)| !f.is_empty()) {
            let mut nodes: Vec<&graph::Node> = nodes.iter().map(|&i| &g.nodes[i]).collect();
            nodes.sort_by_key(|n| (n.info.lineno, n.info.start_line));
            let flat = nodes.iter().fold(0i64, |a, n| a.wrapping_add(n.flat));
            let cum = nodes.iter().fold(0i64, |a, n| a.wrapping_add(n.cum));
            writeln!(out, "ROUTINE ======================== {name} in {file}")?;
            writeln!(
                out,
                "{:>10} {:>10} (flat, cum) {} of Total",
                fmt(flat),
                fmt(cum),
                percentage(cum, ctx.total)
            )?;

            // Per-line sums and pprof's window (start line or first - 5, last + 5).
            let mut per_line: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            for n in &nodes {
                let e = per_line.entry(n.info.lineno).or_default();
                e.0 = e.0.wrapping_add(n.flat);
                e.1 = e.1.wrapping_add(n.cum);
            }
            let first = nodes[0];
            let mut start = if first.info.start_line != 0 {
                first.info.start_line
            } else {
                first.info.lineno.saturating_sub(MARGIN)
            };
            let mut end = first.info.lineno.saturating_add(MARGIN);
            for n in &nodes {
                let node_start = if n.info.start_line != 0 {
                    n.info.start_line
                } else {
                    n.info.lineno.saturating_sub(MARGIN)
                };
                let node_end = n.info.lineno.saturating_add(MARGIN);
                if node_start < start {
                    start = node_start;
                } else if node_end > end {
                    end = node_end;
                }
            }
            start = start.max(1);

            // What the file must look like to be the right one among candidate copies (e.g. the
            // GOROOTs of several Go versions): long enough, `func` at the start line.
            let hint = FileHint {
                max_line: nodes.iter().map(|n| n.info.lineno).max().unwrap_or(0),
                start_line: nodes
                    .iter()
                    .map(|n| n.info.start_line)
                    .find(|&l| l > 0)
                    .unwrap_or(0),
            };
            match reader.lines(file, &hint) {
                Ok(lines) => {
                    let mut lineno = start;
                    while lineno <= end {
                        let Some(text) =
                            usize::try_from(lineno - 1).ok().and_then(|i| lines.get(i))
                        else {
                            break;
                        };
                        let (f, c) = per_line.get(&lineno).copied().unwrap_or_default();
                        write!(out, "{:>10} {:>10} {:>6}:", dot(f), dot(c), lineno)?;
                        out.write_all(text)?;
                        out.write_all(b"\n")?;
                        lineno += 1;
                    }
                }
                Err(e) => {
                    writeln!(out, " Error: {e}")?;
                    // Unlike pprof, still show where the time went.
                    for (lineno, (f, c)) in &per_line {
                        writeln!(out, "{:>10} {:>10} {:>6}:", dot(*f), dot(*c), lineno)?;
                    }
                }
            }
        }
    }
    Ok(true)
}
