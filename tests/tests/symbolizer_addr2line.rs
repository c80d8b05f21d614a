//! Table-wide check of the gopclntab reader's non-inline answers against `go tool addr2line`:
//! for every function entry of a large program (net/http,
//! encoding/json, go/types, crypto/tls, ...) and for one PC in the middle of every function,
//! `gprof_bpf::addr2line::run(.., inlines = false)` must print exactly what the toolchain's own
//! `go tool addr2line` prints: the *physical* function and the *innermost* file:line.
//!
//! Builds: Go 1.19, 1.24.11 and 1.27.3 (the installed subset; missing ones are skipped loudly),
//! each internal-linked, PIE+external (GNU ld, cgo, `-trimpath`) and PIE+external (lld, cgo),
//! all **unstripped**: `go tool addr2line` is wrong on stripped external-linked ≥1.26 binaries
//! (its debug/gosym misreads them), so it is no oracle there. Nor on go1.19 external PIEs (GNU ld or lld): the
//! pcHeader's textStart is 0 on disk (RELATIVE relocation) and go1.19's debug/gosym then
//! answers `?` for every PC; go1.19 is checked internal-linked and external non-PIE (cgo,
//! `-trimpath`) instead. Stripped builds are covered by symbolizer_matrix.rs
//! against runtime.CallersFrames and llvm-symbolizer.
//!
//! Normalization: an unknown file is `?` (the runtime's spelling, which the reader follows)
//! where debug/gosym says `` (empty), and `??` (our "no answer") is compared as `?`.
//!
//! The one principled exclusion (counted and printed, never silent):
//! * PCs after the INT3 of the `go:textfipsstart`/`go:textfipsend` markers (1.24+): they have
//!   no line table (`go tool objdump` shows `:-1`); debug/gosym reads past the end of the
//!   empty pc-value program and prints another function's line, the runtime's pcvalue says -1.
//!   Accepted when we say `?:0`.

use anyhow::{Context as _, Result, ensure};
use gprof_bpf::symbolize::gopclntab::GoTable;
use std::collections::BTreeMap;
use tests::symcheck::{
    Build, Link, Loc, Tally, build_threads, go_addr2line, parallel_map, parse_addr2line,
    print_table,
};

const FIXTURE: &str = "big";
const VERSIONS: &[&str] = &["1.19", "1.24.11", "1.27.3"];
const SHOW: usize = 40;

/// PCs to compare: every function entry and the midpoint between consecutive entries, taken
/// from the function table (its order and coverage are checked against the ELF symbols by
/// the caller).
fn probe_pcs(table: &GoTable<&[u8]>) -> Result<(Vec<u64>, usize)> {
    let n = table.func_count();
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        entries.push(
            table
                .func_entry(i)
                .with_context(|| format!("func_entry({i})"))?,
        );
    }
    ensure!(
        entries.windows(2).all(|w| w[0] < w[1]),
        "function entries are not strictly increasing"
    );
    let mut pcs = entries.clone();
    pcs.extend(entries.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2));
    pcs.sort_unstable();
    pcs.dedup();
    Ok((pcs, n))
}

fn ours(bytes: &[u8], pcs: &[u64]) -> Result<Vec<Loc>> {
    let input: String = pcs.iter().map(|a| format!("{a:#x}\n")).collect();
    let mut out = Vec::new();
    gprof_bpf::addr2line::run(
        bytes,
        std::io::Cursor::new(input.into_bytes()),
        &mut out,
        false,
    )?;
    parse_addr2line(&String::from_utf8(out)?, pcs.len())
}

struct Checked {
    tally: Tally,
    funcs: usize,
    mismatches: Vec<String>,
    /// PCs in go:textfips* markers, see the module docs.
    excluded: usize,
}

fn check(b: &Build) -> Result<Checked> {
    let bin = b.build(FIXTURE)?;
    let bytes = std::fs::read(&bin)?;
    let table =
        GoTable::parse(&bytes[..]).with_context(|| format!("GoTable::parse({})", bin.display()))?;
    let (pcs, funcs) = probe_pcs(&table)?;
    // Sanity: a big program has thousands of Go functions; every main.* and runtime.* Go text
    // symbol of .symtab must be a function-table entry.
    ensure!(funcs > 5000, "only {funcs} functions in {}", bin.display());
    let entries: std::collections::HashSet<u64> =
        (0..funcs).map(|i| table.func_entry(i).unwrap()).collect();
    let syms = tests::symcheck::func_symbols(&bin)?;
    let missing: Vec<String> = syms
        .iter()
        .filter(|s| {
            (s.name.starts_with("main.") || s.name.starts_with("runtime."))
                && !s.name.ends_with(".abi0")
        })
        .filter(|s| s.size > 0 && !entries.contains(&s.addr))
        .map(|s| format!("{} {:#x}", s.name, s.addr))
        .take(10)
        .collect();
    ensure!(
        missing.is_empty(),
        "symbols missing from the function table: {missing:?}"
    );

    let want = go_addr2line(&b.version, &bin, &pcs)?;
    let got = ours(&bytes, &pcs)?;
    let mut tally = Tally::default();
    let mut mismatches = Vec::new();
    let mut excluded = 0usize;
    for ((pc, w), g) in pcs.iter().zip(&want).zip(&got) {
        let (w, g) = (normalize(w), normalize(g));
        tally.compared += 1;
        if w != g
            && w.function.starts_with("go:textfips")
            && w.function == g.function
            && g.file == "?"
            && g.line == 0
        {
            excluded += 1;
            continue;
        }
        if w != g {
            tally.mismatches += 1;
            mismatches.push(format!(
                "{} [{}] pc {pc:#x}: go tool addr2line: {w} | ours: {g}",
                b.label(),
                bin.display()
            ));
        }
    }
    Ok(Checked {
        tally,
        funcs,
        mismatches,
        excluded,
    })
}

fn normalize(l: &Loc) -> Loc {
    let unknown = |s: &str| {
        if s.is_empty() || s == "??" {
            "?".to_string()
        } else {
            s.to_string()
        }
    };
    let function = if l.function == "??" {
        "?".to_string()
    } else {
        l.function.clone()
    };
    Loc {
        function,
        file: unknown(&l.file),
        line: l.line,
    }
}

#[test]
fn addr2line_matches_go_tool_addr2line() {
    let versions = tests::go::installed(VERSIONS);
    assert!(
        !versions.is_empty(),
        "none of {VERSIONS:?} is installed: run scripts/setup.sh"
    );
    // Every version internally linked; the other link modes on the oldest and newest version
    // only (`GPROF_MATRIX_FULL=1`: on every version), to keep the suite's cold builds short.
    let full = std::env::var("GPROF_MATRIX_FULL").is_ok_and(|v| v == "1");
    let (first, last) = (versions[0], versions[versions.len() - 1]);
    let builds: Vec<Build> = versions
        .iter()
        .flat_map(|v| {
            if !full && *v != first && *v != last {
                vec![Build::new(v, "amd64", Link::Internal, false, false)]
            } else if *v == "1.19" {
                // go1.19's debug/gosym cannot read externally linked PIEs (see above).
                vec![
                    Build::new(v, "amd64", Link::Internal, false, false),
                    Build::new(v, "amd64", Link::External, false, true),
                ]
            } else {
                vec![
                    Build::new(v, "amd64", Link::Internal, false, false),
                    Build::new(v, "amd64", Link::PieExternal, false, true),
                    Build::new(v, "amd64", Link::PieLld, false, false),
                ]
            }
        })
        .collect();
    let t = std::time::Instant::now();
    let built = parallel_map(&builds, build_threads(), |b| {
        b.build(FIXTURE).map_err(|e| format!("{e:#}"))
    });
    println!(
        "built {} `big` binaries in {:.1?}",
        builds.len(),
        t.elapsed()
    );

    let results = parallel_map(&builds, build_threads(), check);
    let mut cells = BTreeMap::new();
    let mut failures = Vec::new();
    for ((b, r), built) in builds.iter().zip(results).zip(built) {
        if let Err(e) = built {
            failures.push(format!("{}: {e}", b.label()));
            cells.insert(
                (b.version.clone(), b.mode()),
                Tally {
                    error: Some(e),
                    ..Tally::default()
                },
            );
            continue;
        }
        let tally = match r {
            Ok(c) => {
                println!(
                    "{}: {} functions, {} PCs compared (entries + midpoints), {} mismatches; excluded: {} in \
                     go:textfips* markers",
                    b.label(),
                    c.funcs,
                    c.tally.compared,
                    c.tally.mismatches,
                    c.excluded
                );
                failures.extend(c.mismatches);
                c.tally
            }
            Err(e) => Tally::failed(b, &e, &mut failures),
        };
        cells.insert((b.version.clone(), b.mode()), tally);
    }
    let mut modes: Vec<String> = Vec::new();
    for b in &builds {
        if !modes.contains(&b.mode()) {
            modes.push(b.mode());
        }
    }
    print_table(
        "gprof_bpf::addr2line (no inlines) vs go tool addr2line, big program (cell = PCs compared)",
        &cells,
        &versions,
        &modes,
    );
    tests::symcheck::fail_on("addr2line_matches_go_tool_addr2line", &failures, SHOW);
}
