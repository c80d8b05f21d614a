//! Real binaries built with the installed toolchains (the test kit finds them and builds the
//! fixtures of tests/fixtures/go); a missing toolchain or tool is a loud skip, a failure under
//! `GPROF_BPF_STRICT=1` (see gprof_testkit).

use super::super::*;
use gprof_testkit::matrix::{Build, Link, llvm_symbolizer};
use gprof_testkit::{go, oracle};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fixture `name` built with Go `ver` in `mode` (`default`, `sw` = `-ldflags=-s -w`, `pie`,
/// `arm64`); None after a skip when it cannot be built here.
fn build(ver: &str, name: &str, mode: &str) -> Option<PathBuf> {
    let b = match mode {
        "default" => Build::new(ver, "amd64", Link::Internal, false, false),
        "sw" => Build::new(ver, "amd64", Link::Internal, true, false),
        "pie" => Build::new(ver, "amd64", Link::Pie, false, false),
        "arm64" => Build::new(ver, "arm64", Link::Internal, false, false),
        _ => panic!("mode {mode}"),
    };
    gprof_testkit::require_ok(b.build(name), &format!("building {name} ({})", b.label()))
}

/// The oldest and the newest installed toolchain (skips for the missing ones).
fn oldest_and_newest() -> Vec<&'static str> {
    let installed = go::installed(go::MATRIX_VERSIONS);
    match (installed.first(), installed.last()) {
        (Some(a), Some(b)) if a != b => vec![*a, *b],
        (Some(a), _) => vec![*a],
        _ => Vec::new(),
    }
}

fn symtab(bin: &[u8]) -> Vec<(String, u64, u64)> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let f = object::File::parse(bin).unwrap();
    f.symbols()
        .filter(|s| s.kind() == SymbolKind::Text)
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.address(), s.size())))
        .collect()
}

/// Smoke test: a tiny program built with the newest installed toolchain; main.Marker found
/// through the table must match the ELF symbol table of the unstripped binary.
#[test]
fn tiny_program_matches_symtab() {
    let ver = match go::newest() {
        Ok(v) => v,
        Err(e) => gprof_testkit::skip!("{e:#}"),
    };
    let ver = ver.as_str();
    for mode in ["default", "pie", "sw"] {
        let Some(exe) = build(ver, "tiny", mode) else {
            continue;
        };
        let bin = std::fs::read(&exe).unwrap();
        let t = GoTable::parse(&bin[..]).unwrap();
        // Oracle: the unstripped twin's symtab (same layout; "sw" only drops symbols).
        let oracle_bin =
            std::fs::read(build(ver, "tiny", if mode == "sw" { "default" } else { mode }).unwrap())
                .unwrap();
        let syms = symtab(&oracle_bin);
        let (_, addr, size) = syms
            .iter()
            .find(|s| s.0 == "main.Marker")
            .expect("main.Marker in symtab")
            .clone();
        let f = t
            .func_at(addr + size / 2)
            .unwrap()
            .expect("main.Marker in pclntab");
        assert_eq!(f.name, "main.Marker");
        assert_eq!(f.entry, addr);
        assert!(f.end >= addr + size);
        let mut out = Vec::new();
        t.frames(addr, PcKind::Leaf, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].function, "main.Marker");
        assert!(out[0].file.ends_with("main.go"), "{}", out[0].file);
        // A frameless leaf: the entry instruction is the `if` (line 7).
        assert!(matches!(out[0].line, 6 | 7), "{}", out[0].line);
        assert_eq!(
            out[0].start_line,
            if t.version_family() == Family::Go120 {
                6
            } else {
                0
            }
        );
        assert_eq!(f.start_line, out[0].start_line);
        // Every symtab function of the Go text resolves to itself.
        let (lo, hi) = t.text_range();
        let mut checked = 0;
        for (name, a, _) in syms.iter().filter(|s| s.1 >= lo && s.1 < hi) {
            let Some(f) = t.func_at(*a).unwrap() else {
                continue;
            };
            // runtime.text (a linker symbol, not a function) shares its address with the first
            // table entry, which has its own name.
            if f.entry == *a && !name.starts_with("runtime.text") {
                let n = name.strip_suffix(".abi0").unwrap_or(name);
                assert_eq!(f.name, n, "at {a:#x}");
                checked += 1;
            }
        }
        assert!(checked > 500, "only {checked} functions checked");
        let bi = crate::symbolize::buildinfo::read(&bin).unwrap();
        assert_eq!(
            bi.go_version.as_deref(),
            Some(format!("go{ver}").as_str()).map(|s| if ver == "1.19" {
                bi.go_version.as_deref().unwrap_or(s)
            } else {
                s
            })
        );
        assert_eq!(bi.main_path.as_deref(), Some("example.com/tiny"));
        assert_eq!(bi.module_path.as_deref(), Some("example.com/tiny"));
        if mode != "sw" {
            assert!(bi.go_build_id.is_some());
        }
    }
}

/// The per-function cache answers exactly as the uncached reader on real binaries of every
/// installed toolchain (every PC of small functions, a stride elsewhere; cold and warm).
#[test]
fn cache_matches_uncached_real() {
    for ver in go::installed(go::MATRIX_VERSIONS) {
        let Some(exe) = build(ver, "tiny", "default") else {
            continue;
        };
        let bin = std::fs::read(&exe).unwrap();
        let t = GoTable::parse(&bin[..]).unwrap();
        let (lo, hi) = t.text_range();
        let mut pcs: Vec<u64> = (lo.saturating_sub(2)..hi + 2).step_by(13).collect();
        for i in 0..t.func_count() {
            let e = t.func_entry(i).unwrap();
            pcs.extend([e, e + 1, e + 4, t.func_entry(i + 1).unwrap() - 1]);
        }
        super::check_cache_exact(&t, &pcs);
        super::check_cache_exact(&t, &pcs);
    }
}

/// Runs the callers fixture built with `ver`/`mode` and checks our expansion of its real PCs
/// against its own runtime.CallersFrames output, frame for frame. Which frames belong to which
/// PC comes from the runtime's output alone (gprof_testkit::callers), not from the reader.
fn check_callers(ver: &str, mode: &str) {
    let Some(exe) = build(ver, "callers", mode) else {
        return;
    };
    let run = gprof_testkit::callers::run_callers(&exe).unwrap();
    let bin = std::fs::read(&exe).unwrap();
    let t = GoTable::parse(&bin[..]).unwrap_or_else(|e| panic!("{ver} {mode}: {e}"));
    // Load bias from main.anchor: link address from the unstripped twin's symtab.
    let twin = if mode == "sw" { "default" } else { mode };
    let twin_bin = std::fs::read(build(ver, "callers", twin).unwrap()).unwrap();
    let link_anchor = symtab(&twin_bin)
        .into_iter()
        .find(|s| s.0 == "main.anchor")
        .expect("main.anchor symbol")
        .1;
    assert_eq!(run.anchor.0, "main.anchor");
    let bias = run.anchor.1.wrapping_sub(link_anchor);
    assert!(!run.stacks.is_empty());
    let mut frames = Vec::new();
    for st in &run.stacks {
        // The callee of each PC decides wrapper elision: the runtime's physical frame below it.
        let mut callee: Option<String> = None;
        for real in st.real_pcs().unwrap() {
            let pc = real.raw.wrapping_sub(bias);
            frames.clear();
            t.frames_with_callee(pc, PcKind::Return, callee.as_deref(), &mut frames)
                .unwrap();
            let ours: Vec<(&str, &str, u32, u64)> = frames
                .iter()
                .map(|f| (f.function.as_ref(), f.file, f.line, f.entry))
                .collect();
            let runtime: Vec<(&str, &str, u32, u64)> = real
                .frames
                .iter()
                .map(|f| {
                    let entry = f.entry.wrapping_sub(bias);
                    (f.function.as_str(), f.file.as_str(), f.line, entry)
                })
                .collect();
            assert_eq!(ours, runtime, "{ver} {mode} stack {} pc {pc:#x}", st.tag);
            let last = real.frames.last().unwrap();
            callee = last.physical.then(|| last.function.clone());
        }
    }
}

#[test]
fn callers_fixture_newest_and_oldest() {
    for ver in oldest_and_newest() {
        for mode in ["default", "pie", "sw"] {
            check_callers(ver, mode);
        }
    }
}

// The whole build matrix (every version, link mode, strip and -trimpath) is
// tests/tests/symbolizer_matrix.rs::callers_frames_matrix.

/// `addr2line::run` without --inlines against `go tool addr2line` of the same toolchain
/// (its output for known PCs; unknown PCs print `??` per our CLI contract).
#[test]
fn addr2line_matches_go_tool() {
    let ver = match go::newest() {
        Ok(v) => v,
        Err(e) => gprof_testkit::skip!("{e:#}"),
    };
    let Some(exe) = build(&ver, "callers", "default") else {
        return;
    };
    let bin = std::fs::read(&exe).unwrap();
    let t = GoTable::parse(&bin[..]).unwrap();
    let (lo, hi) = t.text_range();
    let mut s = 0x1234_5678_9abc_def1u64;
    let pcs: Vec<u64> = (0..3000)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + s % (hi - lo)
        })
        .collect();
    let input: String = pcs.iter().map(|p| format!("{p:#x}\n")).collect();
    let mut ours = Vec::new();
    crate::addr2line::run(&bin, input.as_bytes(), &mut ours, false).unwrap();
    let mut child = go::go_command(&ver)
        .unwrap()
        .args(["tool", "addr2line"])
        .arg(&exe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    // Feed stdin from a thread: large outputs would otherwise deadlock on full pipes.
    let mut stdin = child.stdin.take().unwrap();
    let feed = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()).unwrap());
    let theirs = child.wait_with_output().unwrap().stdout;
    writer.join().unwrap();
    let ours = String::from_utf8(ours).unwrap();
    let theirs = String::from_utf8(theirs).unwrap();
    let (o, g): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    assert_eq!(o.len(), g.len());
    for (i, (a, b)) in o.iter().zip(&g).enumerate() {
        assert_eq!(a, b, "line {i} pc {:#x}", pcs[i / 2]);
    }
    // --inlines: every frame, then an empty line.
    let mut inl = Vec::new();
    crate::addr2line::run(&bin, "zz\n0x1\n".as_bytes(), &mut inl, true).unwrap();
    assert_eq!(String::from_utf8(inl).unwrap(), "?\n?:0\n\n?\n?:0\n\n");
}

/// PCs inside `main.*` functions of `bin`, every `step` bytes (skipping wrappers).
fn main_pcs(bin: &[u8], step: u64) -> Vec<u64> {
    let mut pcs = Vec::new();
    for (name, addr, size) in symtab(bin) {
        if name.starts_with("main.") && !name.contains("-fm") {
            pcs.extend((addr..addr + size).step_by(step as usize));
        }
    }
    pcs
}

/// Our expansion vs `llvm-symbolizer --inlining` on the unstripped binary (DWARF), for every
/// 4th byte of every main.* function: function (print form), file and line of every frame.
fn check_against_llvm_symbolizer(ver: &str, mode: &str) {
    let Some(exe) = build(ver, "callers", mode) else {
        return;
    };
    compare_llvm(&exe, &format!("{ver} {mode}"), 4);
}

/// Compares frames of PCs in main.* functions (every `step` bytes) with llvm-symbolizer.
fn compare_llvm(exe: &Path, label: &str, step: u64) {
    let (ver, mode) = (label, "");
    let bin = std::fs::read(exe).unwrap();
    let t = GoTable::parse(&bin[..]).unwrap();
    let pcs = main_pcs(&bin, step);
    let input: String = pcs.iter().map(|p| format!("{p:#x}\n")).collect();
    let Some(tool) = llvm_symbolizer() else {
        gprof_testkit::skip!("llvm-symbolizer not installed (scripts/setup.sh installs llvm-22)");
    };
    let mut child = Command::new(tool)
        .arg("--inlining")
        .arg(format!("--obj={}", exe.display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    // Feed stdin from a thread: large outputs would otherwise deadlock on full pipes.
    let mut stdin = child.stdin.take().unwrap();
    let feed = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()).unwrap());
    let outp = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    writer.join().unwrap();
    let blocks: Vec<&str> = outp
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    assert_eq!(blocks.len(), pcs.len());
    let mut frames = Vec::new();
    let mut compared = 0;
    for (pc, block) in pcs.iter().zip(&blocks) {
        let lines: Vec<&str> = block.lines().collect();
        // (raw DWARF name, print name, file, line)
        let dwarf: Vec<(&str, String, String, u32)> = lines
            .chunks(2)
            .map(|c| {
                let mut loc = c[1].rsplitn(3, ':');
                let _col = loc.next();
                let line = loc.next().unwrap().parse().unwrap();
                (
                    c[0],
                    oracle::name_for_print(c[0]),
                    loc.next().unwrap().to_string(),
                    line,
                )
            })
            .collect();
        let want: Vec<(String, String, u32)> = dwarf
            .iter()
            .map(|d| (d.1.clone(), d.2.clone(), d.3))
            .collect();
        if want
            .iter()
            .any(|w| w.2 == 0 || w.0.contains("-fm") || w.1.contains("autogenerated"))
        {
            continue;
        }
        frames.clear();
        t.frames(*pc, PcKind::Leaf, &mut frames).unwrap();
        // Names compared in print form on both sides (DWARF has full shapes; 1.18/1.19
        // pclntabs store "[...]").
        let got: Vec<(String, String, u32)> = frames
            .iter()
            .map(|f| {
                (
                    oracle::name_for_print(&f.function),
                    f.file.to_string(),
                    f.line,
                )
            })
            .collect();
        // A wrapper (named so by the compiler, see oracle::is_wrapper_name), with or without an
        // inlined callee: the reader elides it, as the runtime's tracebacks do; DWARF lists it.
        let elided = dwarf.last().is_some_and(|d| oracle::is_wrapper_name(d.0))
            && got[..] == want[..want.len() - 1];
        if !elided {
            assert_eq!(got, want, "{ver} {mode} pc {pc:#x}");
        }
        compared += 1;
    }
    assert!(compared > 100, "{ver} {mode}: only {compared} PCs compared");
}

#[test]
fn arm64_and_amd64_match_llvm_symbolizer() {
    for ver in oldest_and_newest() {
        for mode in ["arm64", "default"] {
            check_against_llvm_symbolizer(ver, mode);
        }
        if let Some(exe) = build(ver, "callers", "arm64") {
            let bin = std::fs::read(exe).unwrap();
            let t = GoTable::parse(&bin[..]).unwrap();
            assert_eq!(t.quantum(), 4);
            let syms = symtab(&bin);
            let mut n = 0;
            for (name, a, _) in &syms {
                if let Some(f) = t.func_at(*a).unwrap()
                    && f.entry == *a
                    && !name.starts_with("runtime.text")
                {
                    // Go 1.18/1.19 pclntabs store "[...]" for any bracketed part.
                    let want = name.strip_suffix(".abi0").unwrap_or(name);
                    assert_eq!(oracle::name_for_print(f.name), oracle::name_for_print(want));
                    n += 1;
                }
            }
            assert!(n > 500);
        }
    }
}

/// Every PC (sampled) of a binary given by `$GPROF_SCAN_BINARY` symbolizes without error.
#[test]
#[ignore]
fn scan_binary_env() {
    let Some(p) = std::env::var_os("GPROF_SCAN_BINARY") else {
        return;
    };
    let bin = std::fs::read(p).unwrap();
    let t = GoTable::parse(&bin[..]).unwrap();
    let (lo, hi) = t.text_range();
    let mut out = Vec::new();
    let mut bad = 0;
    for pc in (lo..hi).step_by(3) {
        out.clear();
        if let Err(e) = t.frames(pc, PcKind::Return, &mut out) {
            let f = t.func_at(pc).unwrap().unwrap();
            if bad < 5 {
                eprintln!(
                    "{pc:#x} in {} (entry {:#x}, funcID {}): {e}",
                    f.name, f.entry, f.func_id
                );
            }
            bad += 1;
        }
    }
    assert_eq!(bad, 0);
    compare_llvm(
        Path::new(&std::env::var_os("GPROF_SCAN_BINARY").unwrap()),
        "scan",
        2,
    );
}
