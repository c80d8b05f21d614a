//! Proves the gopclntab reader against Go's own runtime across the build matrix.
//!
//! * `callers_frames_matrix` (amd64): every Go version × {default, pie, ext (cgo), pie-ext
//!   (GNU ld), pie-lld} × {unstripped, `-s -w`} × {with, without `-trimpath`}. The `callers`
//!   fixture prints `runtime.Callers` PCs and the `runtime.CallersFrames` expansion at many
//!   call sites; each *real* return address (virtual inline PCs dropped) is translated to its
//!   link-time address and expanded by the reader, which must equal CallersFrames (function,
//!   file, line, and the physical frame's entry) frame for frame.
//! * `llvm_symbolizer_arm64` (arm64, cross-built, not run): main.* PCs every 4 bytes plus a
//!   sample of runtime PCs, our leaf-PC expansion vs `llvm-symbolizer --inlining` on the
//!   unstripped twin; the stripped builds are read by the reader, DWARF from the twin.
//! * `llvm_symbolizer_agrees_with_callers_frames` (amd64): oracle sanity check, independent of
//!   the reader: llvm-symbolizer on the real return addresses (minus one) equals
//!   CallersFrames, so the arm64 comparison uses a trustworthy oracle.
//!
//! Environment: `GPROF_MATRIX_VERSIONS=1.19,1.27.3` restricts the versions,
//! `GPROF_MATRIX_FULL=1` checks the whole product instead of the covering subset (amd64 and
//! arm64 alike),
//! `GPROF_TEST_THREADS` sets the build parallelism.

use anyhow::{Context as _, Result, ensure};
use gprof_bpf::symbolize::gopclntab::{Frame, GoTable, PcKind};
use std::collections::BTreeMap;
use std::path::Path;
use tests::symcheck::{
    Build, Link, Loc, Tally, build_threads, func_symbols, installed_versions, is_wrapper_name,
    llvm_symbolize, llvm_symbolizer, name_for_print, parallel_map, phdr_link_address, print_table,
    run_callers, same_text, symbol_address,
};

const FIXTURE: &str = "callers";
/// How many mismatches to print in full.
const SHOW: usize = 40;

fn versions() -> Vec<&'static str> {
    let all = installed_versions();
    match std::env::var("GPROF_MATRIX_VERSIONS") {
        Ok(list) if !list.trim().is_empty() => {
            let want: Vec<&str> = list.split(',').map(str::trim).collect();
            all.into_iter().filter(|v| want.contains(v)).collect()
        }
        _ => all,
    }
}

/// A callee that makes the reader keep a wrapper as the innermost frame (as the runtime does
/// above gopanic): DWARF-based oracles have no notion of wrapper elision.
const KEEP_WRAPPERS: Option<&str> = Some("runtime.gopanic");

fn reader_frames(
    table: &GoTable<&[u8]>,
    pc: u64,
    kind: PcKind,
    callee: Option<&str>,
) -> Result<Vec<Loc>> {
    let mut out: Vec<Frame> = Vec::new();
    table
        .frames_with_callee(pc, kind, callee, &mut out)
        .with_context(|| format!("reader failed at {pc:#x}"))?;
    Ok(out
        .iter()
        .map(|f| Loc {
            function: f.function.to_string(),
            file: f.file.to_string(),
            line: f.line,
        })
        .collect())
}

fn show_chain(chain: &[Loc]) -> String {
    chain.iter().map(|l| format!("\n        {l}")).collect()
}

/// Outcome of checking one build.
struct Checked {
    tally: Tally,
    mismatches: Vec<String>,
}

fn check_callers_build(b: &Build) -> Result<Checked> {
    let bin = b.build(FIXTURE)?;
    let twin = b.unstripped().build(FIXTURE)?;
    let run = run_callers(&bin)?;
    ensure!(
        run.anchor.0 == "main.anchor",
        "unexpected anchor {}",
        run.anchor.0
    );
    // The load bias from AT_PHDR and the binary's own program headers (never from the reader
    // under test). Cross-checked with main.anchor's address in the unstripped twin's .symtab
    // whenever the twin has the same layout: lld puts .rodata (with the build settings, which
    // include `-s -w`) before .text, so stripped lld builds are shifted against their twin.
    let bias = run.phdr.wrapping_sub(phdr_link_address(&bin)?);
    let anchor_link = symbol_address(&twin, "main.anchor")?;
    if !b.strip || same_text(&bin, &twin)? {
        ensure!(
            run.anchor.1.wrapping_sub(anchor_link) == bias,
            "load bias from AT_PHDR {bias:#x} != from main.anchor {:#x}",
            run.anchor.1.wrapping_sub(anchor_link)
        );
    }
    if !matches!(b.link, Link::Pie | Link::PieExternal | Link::PieLld) {
        ensure!(bias == 0, "non-PIE build has load bias {bias:#x}");
    }
    let bytes = std::fs::read(&bin)?;
    let table =
        GoTable::parse(&bytes[..]).with_context(|| format!("GoTable::parse({})", bin.display()))?;

    let mut tally = Tally::default();
    let mut mismatches = Vec::new();
    ensure!(
        run.stacks.len() >= 20,
        "only {} stacks in the fixture output",
        run.stacks.len()
    );
    let mut has_cgo_stack = false;
    for stack in &run.stacks {
        has_cgo_stack |= stack.tag.starts_with("cgo/");
        // The physical callee of each frame decides wrapper elision (traceback.go
        // `elideWrapperCalling`); taken from CallersFrames, not from the reader.
        let mut callee: Option<String> = None;
        for real in stack.real_pcs()? {
            let pc = real.raw.wrapping_sub(bias);
            let want: Vec<Loc> = real
                .frames
                .iter()
                .map(|f| Loc {
                    function: f.function.clone(),
                    file: f.file.clone(),
                    line: f.line,
                })
                .collect();
            tally.compared += want.len();
            let mut out: Vec<Frame> = Vec::new();
            let res = table.frames_with_callee(pc, PcKind::Return, callee.as_deref(), &mut out);
            let last = real.frames.last().unwrap();
            callee = last.physical.then(|| last.function.clone());
            let got: Vec<Loc> = out
                .iter()
                .map(|f| Loc {
                    function: f.function.to_string(),
                    file: f.file.to_string(),
                    line: f.line,
                })
                .collect();
            let mut problems = Vec::new();
            if let Err(e) = &res {
                problems.push(format!("reader error: {e:#}"));
            }
            if got != want {
                problems.push("frames differ".to_string());
            } else {
                // Secondary checks: the inlined flag of every frame, the physical entry.
                for (g, w) in out.iter().zip(&real.frames) {
                    if g.inlined == w.physical {
                        problems.push(format!(
                            "{}: inlined={} but CallersFrames physical={}",
                            w.function, g.inlined, w.physical
                        ));
                    }
                    if w.physical && g.entry != w.entry.wrapping_sub(bias) {
                        problems.push(format!(
                            "{}: entry {:#x}, want {:#x}",
                            w.function,
                            g.entry,
                            w.entry.wrapping_sub(bias)
                        ));
                    }
                }
            }
            if !problems.is_empty() {
                let entry_note = if real.frames[0].pc == real.raw {
                    " (raw PC == function entry)"
                } else {
                    ""
                };
                tally.mismatches += want.len().max(1);
                mismatches.push(format!(
                    "{} [{}] stack {:?}: return address {pc:#x} (runtime {:#x}){entry_note}: {}\n    CallersFrames:{}\n    reader:{}",
                    b.label(),
                    bin.display(),
                    stack.tag,
                    real.raw,
                    problems.join("; "),
                    show_chain(&want),
                    show_chain(&got)
                ));
            }
        }
    }
    ensure!(
        has_cgo_stack == b.link.cgo(),
        "cgo stacks present={has_cgo_stack} for {}",
        b.label()
    );
    Ok(Checked { tally, mismatches })
}

/// The builds to check. The whole product (versions × link modes × strip × trimpath, 160
/// builds with 8 toolchains) takes about 11 minutes to build cold, so the suite checks a
/// covering subset (32 builds): every version built default and `-s -w -trimpath`, and every
/// link mode, stripped and not, on the oldest and the newest version, where the pclntab
/// formats differ most. `GPROF_MATRIX_FULL=1` checks the whole product
/// (`cargo xtask bench matrix` runs it).
fn amd64_matrix(versions: &[&str]) -> Vec<Build> {
    matrix(versions, "amd64", &Link::ALL)
}

/// The builds of `arch` × `links` the suite checks (see [`amd64_matrix`]).
fn matrix(versions: &[&str], arch: &'static str, links: &[Link]) -> Vec<Build> {
    let full = std::env::var("GPROF_MATRIX_FULL").is_ok_and(|v| v == "1");
    let mut builds = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let edge = i == 0 || i + 1 == versions.len();
        for &link in links {
            for strip in [false, true] {
                for trim in [false, true] {
                    let covering = strip == trim && (edge || link == Link::Internal);
                    if full || covering {
                        builds.push(Build::new(v, arch, link, strip, trim));
                    }
                }
            }
        }
    }
    builds
}

fn modes_of(builds: &[Build]) -> Vec<String> {
    let mut modes: Vec<String> = Vec::new();
    for b in builds {
        if !modes.contains(&b.mode()) {
            modes.push(b.mode());
        }
    }
    modes
}

/// Builds everything up front, unstripped twins first (stripped checks need them), so that no
/// two threads ever build the same output.
fn build_all(builds: &[Build]) -> BTreeMap<String, String> {
    let t = std::time::Instant::now();
    let mut errors = BTreeMap::new();
    for stripped in [false, true] {
        let phase: Vec<&Build> = builds.iter().filter(|b| b.strip == stripped).collect();
        let res = parallel_map(&phase, build_threads(), |b| b.build(FIXTURE).err());
        for (b, e) in phase.iter().zip(res) {
            if let Some(e) = e {
                errors.insert(b.label(), format!("{e:#}"));
            }
        }
    }
    println!(
        "built {} fixture binaries in {:.1?}",
        builds.len(),
        t.elapsed()
    );
    errors
}

#[test]
fn callers_frames_matrix() {
    let versions = versions();
    assert!(
        !versions.is_empty(),
        "no Go toolchain installed: run scripts/setup.sh"
    );
    let builds = amd64_matrix(&versions);
    let build_errors = build_all(&builds);
    let results = parallel_map(&builds, build_threads(), |b| {
        match build_errors.get(&b.label()) {
            Some(e) => Err(anyhow::anyhow!("{e}")),
            None => check_callers_build(b),
        }
    });

    let mut cells = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut frames, mut bad, mut n_ok) = (0, 0, 0);
    for (b, r) in builds.iter().zip(results) {
        let tally = match r {
            Ok(c) => {
                frames += c.tally.compared;
                bad += c.tally.mismatches;
                if c.mismatches.is_empty() {
                    n_ok += 1;
                }
                failures.extend(c.mismatches);
                c.tally
            }
            Err(e) => Tally::failed(b, &e, &mut failures),
        };
        cells.insert((b.version.clone(), b.mode()), tally);
    }
    print_table(
        "reader vs runtime.CallersFrames (amd64; cell = CallersFrames frames compared, ok / mismatching/compared BAD)",
        &cells,
        &versions,
        &modes_of(&builds),
    );
    println!(
        "callers_frames_matrix: {} builds, {n_ok} fully equal; {frames} frames compared, {bad} in mismatching PCs",
        builds.len()
    );
    tests::symcheck::fail_on("callers_frames_matrix", &failures, SHOW);
}

// ---------------------------------------------------------------------------------------------
// llvm-symbolizer oracle
// ---------------------------------------------------------------------------------------------

/// Link-time PCs to probe in an unstripped build: every 4 bytes of every main.* function, and
/// entry, entry+4 and the middle of every 16th other function.
fn probe_pcs(twin: &Path) -> Result<Vec<u64>> {
    let syms = func_symbols(twin)?;
    let mut pcs = Vec::new();
    let mut other = 0usize;
    for s in &syms {
        if s.size == 0 {
            continue;
        }
        if s.name.starts_with("main.") {
            pcs.extend((s.addr..s.addr + s.size).step_by(4));
        } else if s.name.starts_with("runtime.") || s.name.contains('.') {
            other += 1;
            if other.is_multiple_of(16) {
                pcs.push(s.addr);
                if s.size > 4 {
                    pcs.push(s.addr + 4);
                }
                pcs.push(s.addr + (s.size / 2) / 4 * 4);
            }
        }
    }
    pcs.sort_unstable();
    pcs.dedup();
    Ok(pcs)
}

/// DWARF spells generic shapes out, keeps the `.abi0` suffix of assembly functions and writes
/// `·` as `.`; the runtime prints `[...]`, no suffix and `·` (the reader side maps `·` too).
fn normalize_llvm(chain: Vec<Loc>) -> Vec<Loc> {
    chain
        .into_iter()
        .map(|l| {
            let f = l.function.strip_suffix(".abi0").unwrap_or(&l.function);
            Loc {
                function: name_for_print(f),
                ..l
            }
        })
        .collect()
}

/// Makes a DWARF (llvm-symbolizer) chain and a reader chain comparable:
/// * Go's DWARF line tables leave out compiler-generated code, which the pclntab places at
///   `<autogenerated>:1`; llvm-symbolizer says `??:0` there.
/// * Wrapper elision (traceback.go `elideWrapperCalling`) is a property of stack traces, which
///   DWARF does not have: DWARF lists the wrappers around an inlined method (`<autogenerated>`)
///   and the dictionary wrappers of generic methods (a frame repeating the inlined shape
///   instantiation's name and line). The reader, like the runtime, drops them. So outer
///   `<autogenerated>` frames are dropped and adjacent identical frames collapsed on both
///   sides; the innermost frame is always compared (the reader is asked to keep wrappers
///   there). The CallersFrames matrix checks elision exactly.
fn comparable(chain: Vec<Loc>, from_dwarf: bool) -> Vec<Loc> {
    let mut out: Vec<Loc> = Vec::new();
    for (i, mut l) in chain.into_iter().enumerate() {
        if from_dwarf && l.file == "??" && l.line == 0 {
            l.file = "<autogenerated>".to_string();
            l.line = 1;
        }
        if i > 0 && l.file == "<autogenerated>" {
            continue;
        }
        if out.last() == Some(&l) {
            continue;
        }
        out.push(l);
    }
    out
}

/// Compares the reader on `bin` with llvm-symbolizer on `twin` at `pcs` (leaf PCs).
fn compare_with_llvm(
    tool: &Path,
    bin: &Path,
    twin: &Path,
    pcs: &[u64],
    label: &str,
) -> Result<Checked> {
    let bytes = std::fs::read(bin)?;
    let table =
        GoTable::parse(&bytes[..]).with_context(|| format!("GoTable::parse({})", bin.display()))?;
    let oracle = llvm_symbolize(tool, twin, pcs)?;
    let mut tally = Tally::default();
    let mut mismatches = Vec::new();
    for (&pc, want) in pcs.iter().zip(oracle) {
        // A physical wrapper (a `go`/`defer` wrapper or a generic dictionary wrapper, known by
        // its DWARF name) that the reader, like tracebackPCs, elides above an inlined ordinary
        // callee: DWARF still lists it. Accepted as the chain without its last frame; decided
        // from DWARF's raw names, never by asking the reader (the CallersFrames matrix checks
        // elision exactly).
        let want_elided = (want.len() > 1
            && want.last().is_some_and(|l| is_wrapper_name(&l.function)))
        .then(|| comparable(normalize_llvm(want[..want.len() - 1].to_vec()), true));
        let want = comparable(normalize_llvm(want), true);
        tally.compared += want.len();
        let got = match reader_frames(&table, pc, PcKind::Leaf, KEEP_WRAPPERS) {
            Ok(g) => comparable(
                g.into_iter()
                    .map(|l| Loc {
                        function: l.function.replace('·', "."),
                        ..l
                    })
                    .collect(),
                false,
            ),
            Err(e) => {
                tally.mismatches += 1;
                mismatches.push(format!("{label} [{}] pc {pc:#x}: {e:#}", bin.display()));
                continue;
            }
        };
        if got != want && want_elided.as_ref() != Some(&got) {
            tally.mismatches += want.len().max(1);
            mismatches.push(format!(
                "{label} [{}] leaf pc {pc:#x}:\n    llvm-symbolizer:{}\n    reader:{}",
                bin.display(),
                show_chain(&want),
                show_chain(&got)
            ));
        }
    }
    Ok(Checked { tally, mismatches })
}

#[test]
fn llvm_symbolizer_arm64() {
    let Some(tool) = llvm_symbolizer() else {
        tests::skip!("llvm-symbolizer not installed (scripts/setup.sh installs llvm-22)");
    };
    let versions = versions();
    let builds = matrix(&versions, "arm64", &[Link::Internal, Link::Pie]);
    let build_errors = build_all(&builds);
    let results = parallel_map(&builds, build_threads(), |b| -> Result<Checked> {
        if let Some(e) = build_errors.get(&b.label()) {
            anyhow::bail!("{e}");
        }
        let bin = b.build(FIXTURE)?;
        let twin = b.unstripped().build(FIXTURE)?;
        ensure!(
            same_text(&bin, &twin)?,
            "{} and its unstripped twin differ in .text",
            bin.display()
        );
        let pcs = probe_pcs(&twin)?;
        compare_with_llvm(&tool, &bin, &twin, &pcs, &b.label())
    });
    let mut cells = BTreeMap::new();
    let mut failures = Vec::new();
    let mut frames = 0;
    for (b, r) in builds.iter().zip(results) {
        let tally = match r {
            Ok(c) => {
                frames += c.tally.compared;
                failures.extend(c.mismatches);
                c.tally
            }
            Err(e) => Tally::failed(b, &e, &mut failures),
        };
        cells.insert((b.version.clone(), b.mode()), tally);
    }
    print_table(
        "reader (leaf PCs) vs llvm-symbolizer --inlining on the unstripped twin (arm64; cell = frames compared)",
        &cells,
        &versions,
        &modes_of(&builds),
    );
    println!(
        "llvm_symbolizer_arm64: {} builds, {frames} frames compared, {} failures",
        builds.len(),
        failures.len()
    );
    tests::symcheck::fail_on("llvm_symbolizer_arm64", &failures, SHOW);
}

/// The oracle itself: on pure-Go amd64 builds, llvm-symbolizer at (return address − 1) gives the same
/// chains as CallersFrames. Does not use the reader.
#[test]
fn llvm_symbolizer_agrees_with_callers_frames() {
    let Some(tool) = llvm_symbolizer() else {
        tests::skip!("llvm-symbolizer not installed (scripts/setup.sh installs llvm-22)");
    };
    let versions = versions();
    let builds: Vec<Build> = versions
        .iter()
        // Pure Go, like the arm64 builds this validates the oracle for. (On cgo builds go1.19's
        // DWARF gives the call site inside the cgo-rewritten cgo_export.go a wrong
        // DW_AT_call_line, 13 instead of 10: a DWARF quirk that the pclntab does not share.)
        .flat_map(|v| {
            [
                Build::new(v, "amd64", Link::Internal, false, true),
                Build::new(v, "amd64", Link::Pie, false, false),
            ]
        })
        .collect();
    let build_errors = build_all(&builds);
    let results = parallel_map(
        &builds,
        build_threads(),
        |b| -> Result<(usize, Vec<String>)> {
            if let Some(e) = build_errors.get(&b.label()) {
                anyhow::bail!("{e}");
            }
            let bin = b.build(FIXTURE)?;
            let run = run_callers(&bin)?;
            let bias = run
                .anchor
                .1
                .wrapping_sub(symbol_address(&bin, "main.anchor")?);
            let mut reals = Vec::new();
            for s in &run.stacks {
                reals.extend(s.real_pcs()?);
            }
            let pcs: Vec<u64> = reals
                .iter()
                .map(|r| r.frames[0].pc.wrapping_sub(bias))
                .collect();
            let oracle = llvm_symbolize(&tool, &bin, &pcs)?;
            let mut n = 0;
            let mut bad = Vec::new();
            for ((real, pc), got) in reals.iter().zip(&pcs).zip(oracle) {
                let got = comparable(normalize_llvm(got), true);
                let want: Vec<Loc> = real
                    .frames
                    .iter()
                    .map(|f| Loc {
                        function: f.function.clone(),
                        file: f.file.clone(),
                        line: f.line,
                    })
                    .collect();
                n += want.len();
                if got != want {
                    bad.push(format!(
                        "{} pc {pc:#x}:\n    CallersFrames:{}\n    llvm:{}",
                        b.label(),
                        show_chain(&want),
                        show_chain(&got)
                    ));
                }
            }
            Ok((n, bad))
        },
    );
    let mut failures = Vec::new();
    for (b, r) in builds.iter().zip(results) {
        match r {
            Ok((n, bad)) => {
                println!("{}: {n} frames, {} mismatching PCs", b.label(), bad.len());
                failures.extend(bad);
            }
            Err(e) => failures.push(format!("{}: {e:#}", b.label())),
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} failures:\n{}",
            failures.len(),
            failures
                .iter()
                .take(SHOW)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
