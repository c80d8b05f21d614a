//! Oracles for the gopclntab symbolizer tests (`tests/tests/symbolizer_*.rs`): the fixture's own
//! `runtime.CallersFrames` output, ELF symbol look-ups
//! (only ever on *unstripped* builds: never on the reader under test), `llvm-symbolizer
//! --inlining` and `go tool addr2line`.
//!
//! Nothing here uses the reader under test, so the oracles can be checked on their own.

use crate::go;
use anyhow::{Context as _, Result, ensure};
use object::{Object as _, ObjectSymbol as _};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use gprof_testkit::callers::{FixtureRun, GoFrame, RealPc, Stack, parse_callers, run_callers};
/// The build matrix lives in the test kit (profiler-user's unit tests use it too).
pub use gprof_testkit::matrix::{Build, Link, lld_dir, llvm_symbolizer, which};
pub use gprof_testkit::oracle::{is_wrapper_name, name_for_print};

/// The installed matrix versions; every missing one is a skip (a failure under strict mode).
pub fn installed_versions() -> Vec<&'static str> {
    go::installed(go::MATRIX_VERSIONS)
}

/// Runs `f` over `items` on `threads` worker threads; results keep the input order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    *results[i].lock().unwrap() = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap().unwrap())
        .collect()
}

/// Worker threads for builds: the CPU count (at least 2; `go build` is itself parallel, but a
/// large part of a small build is sequential linking).
pub fn build_threads() -> usize {
    std::env::var("GPROF_TEST_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2)
        })
}

// ---------------------------------------------------------------------------------------------
// ELF symbols (unstripped builds only)
// ---------------------------------------------------------------------------------------------

/// A function symbol of an unstripped binary's `.symtab`.
#[derive(Clone, Debug)]
pub struct FuncSym {
    pub name: String,
    pub addr: u64,
    pub size: u64,
}

/// All defined function symbols (STT_FUNC, or Go text symbols) of `path`'s `.symtab`.
pub fn func_symbols(path: &Path) -> Result<Vec<FuncSym>> {
    let data = std::fs::read(path)?;
    let obj = object::File::parse(&*data)?;
    let mut out = Vec::new();
    for sym in obj.symbols() {
        if sym.kind() != object::SymbolKind::Text || !sym.is_definition() {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        out.push(FuncSym {
            name: name.to_string(),
            addr: sym.address(),
            size: sym.size(),
        });
    }
    ensure!(
        !out.is_empty(),
        "{} has no function symbols (stripped?)",
        path.display()
    );
    out.sort_by_key(|s| s.addr);
    Ok(out)
}

/// Link-time address of the program headers of the 64-bit little-endian ELF `path` (what
/// AT_PHDR points at after loading): PT_PHDR's vaddr, else the PT_LOAD holding `e_phoff`.
/// Works on stripped binaries and does not involve the reader under test.
pub fn phdr_link_address(path: &Path) -> Result<u64> {
    let d = std::fs::read(path)?;
    let u16_at = |o: usize| u16::from_le_bytes(d[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
    ensure!(
        d.len() > 64 && &d[..4] == b"\x7fELF" && d[4] == 2 && d[5] == 1,
        "not a 64-bit LE ELF"
    );
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36) as u64, u16_at(0x38) as u64);
    let mut load = None;
    for i in 0..phnum {
        let o = (phoff + i * phentsize) as usize;
        let (ty, off, vaddr, filesz) = (u32_at(o), u64_at(o + 8), u64_at(o + 16), u64_at(o + 32));
        if ty == 6 {
            return Ok(vaddr);
        }
        if ty == 1 && load.is_none() && off <= phoff && phoff < off + filesz {
            load = Some(vaddr + (phoff - off));
        }
    }
    load.context("program headers are not in a PT_LOAD")
}

/// Link-time address of symbol `name` in `path` (which must be unstripped).
pub fn symbol_address(path: &Path, name: &str) -> Result<u64> {
    func_symbols(path)?
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.addr)
        .with_context(|| format!("no symbol {name} in {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// llvm-symbolizer --inlining
// ---------------------------------------------------------------------------------------------

/// (function, file, line) as an oracle prints it, normalized.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub function: String,
    pub file: String,
    pub line: u32,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}:{}", self.function, self.file, self.line)
    }
}

/// Symbolizes `addrs` (link-time) against the DWARF of `obj` with `llvm-symbolizer
/// --inlining`; one inline chain (innermost first) per address. Paths lose DWARF's `./`
/// prefix (added to `-trimpath` names) and the `:col` column.
pub fn llvm_symbolize(tool: &Path, obj: &Path, addrs: &[u64]) -> Result<Vec<Vec<Loc>>> {
    let mut child = Command::new(tool)
        .arg("--inlining")
        .arg("--functions=linkage")
        .arg("--no-demangle")
        .arg(format!("--obj={}", obj.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", tool.display()))?;
    let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output()?;
    writer.join().unwrap()?;
    ensure!(
        output.status.success(),
        "llvm-symbolizer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    // One block per address, separated by an empty line: pairs of (function, file:line:col).
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        ensure!(
            lines.len().is_multiple_of(2),
            "odd llvm-symbolizer block {block:?}"
        );
        let mut chain = Vec::new();
        for pair in lines.chunks(2) {
            let (file, line) = split_file_line(pair[1]);
            chain.push(Loc {
                function: pair[0].to_string(),
                file,
                line,
            });
        }
        out.push(chain);
    }
    ensure!(
        out.len() == addrs.len(),
        "llvm-symbolizer answered {} of {} addresses",
        out.len(),
        addrs.len()
    );
    Ok(out)
}

/// `file:line[:col]` → (file without a leading `./`, line); `??:0` → ("??", 0).
pub fn split_file_line(s: &str) -> (String, u32) {
    let mut parts: Vec<&str> = s.rsplitn(3, ':').collect();
    parts.reverse();
    // parts = [file, line, col] or [file, line]
    let (file, line) = match parts.len() {
        3 if parts[1].parse::<u32>().is_ok() && parts[2].parse::<u32>().is_ok() => {
            (parts[0].to_string(), parts[1].parse().unwrap())
        }
        _ => match s.rsplit_once(':') {
            Some((f, l)) => (f.to_string(), l.parse().unwrap_or(0)),
            None => (s.to_string(), 0),
        },
    };
    (
        file.strip_prefix("./").map(str::to_string).unwrap_or(file),
        line,
    )
}

// ---------------------------------------------------------------------------------------------
// go tool addr2line
// ---------------------------------------------------------------------------------------------

/// `go tool addr2line` of Go `version` on `bin` for `addrs`: (physical function, innermost
/// file:line) per address.
pub fn go_addr2line(version: &str, bin: &Path, addrs: &[u64]) -> Result<Vec<Loc>> {
    let mut child = go::go_command(version)?
        .arg("tool")
        .arg("addr2line")
        .arg(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output()?;
    writer.join().unwrap()?;
    ensure!(
        output.status.success(),
        "go tool addr2line failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_addr2line(&String::from_utf8(output.stdout)?, addrs.len())
}

/// Parses `addr2line`-style output (`function\nfile:line\n` per address).
pub fn parse_addr2line(text: &str, n: usize) -> Result<Vec<Loc>> {
    let lines: Vec<&str> = text.lines().collect();
    ensure!(
        lines.len() == 2 * n,
        "addr2line printed {} lines for {n} addresses",
        lines.len()
    );
    Ok(lines
        .chunks(2)
        .map(|p| {
            let (file, line) = match p[1].rsplit_once(':') {
                Some((f, l)) => (f.to_string(), l.parse().unwrap_or(0)),
                None => (p[1].to_string(), 0),
            };
            Loc {
                function: p[0].to_string(),
                file,
                line,
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

/// Per-build counters for the summary table.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub compared: usize,
    pub mismatches: usize,
    /// Build/run error, when the build could not be checked at all.
    pub error: Option<String>,
}

impl Tally {
    /// The cell of a build that could not be checked at all; its error also goes to `failures`.
    pub fn failed(b: &Build, e: &dyn std::fmt::Display, failures: &mut Vec<String>) -> Tally {
        failures.push(format!("{}: {e:#}", b.label()));
        Tally {
            error: Some(format!("{e:#}")),
            ..Tally::default()
        }
    }
}

/// Prints a table with one row per mode and one column per Go version; a cell is
/// `<compared> ok`, `<mismatches>/<compared> BAD`, `ERROR` or `-` (not built).
pub fn print_table(
    title: &str,
    cells: &BTreeMap<(String, String), Tally>,
    versions: &[&str],
    modes: &[String],
) {
    let mw = modes.iter().map(|m| m.len()).max().unwrap_or(8).max(6);
    let w = 13;
    let mut s = format!("\n{title}\n{:<mw$}", "mode");
    for v in versions {
        s.push_str(&format!(" {:>w$}", format!("go{v}")));
    }
    s.push('\n');
    for m in modes {
        s.push_str(&format!("{m:<mw$}"));
        for v in versions {
            let cell = match cells.get(&(v.to_string(), m.clone())) {
                None => "-".to_string(),
                Some(t) if t.error.is_some() => "ERROR".to_string(),
                Some(t) if t.mismatches == 0 => format!("{} ok", t.compared),
                Some(t) => format!("{}/{} BAD", t.mismatches, t.compared),
            };
            s.push_str(&format!(" {cell:>w$}"));
        }
        s.push('\n');
    }
    println!("{s}");
}

/// True when `a` and `b` have a `.text` section at the same address with the same size, i.e.
/// code addresses (and DWARF/symbols of one) are valid for the other. (The bytes may differ:
/// PC-relative references into data that moved, e.g. arm64 ADRP to the pclntab, whose address
/// depends on the size of .rodata, which holds the build settings string with `-s -w`.)
pub fn same_text(a: &Path, b: &Path) -> Result<bool> {
    use object::ObjectSection as _;
    let (da, db) = (std::fs::read(a)?, std::fs::read(b)?);
    let (oa, ob) = (object::File::parse(&*da)?, object::File::parse(&*db)?);
    let (Some(ta), Some(tb)) = (oa.section_by_name(".text"), ob.section_by_name(".text")) else {
        return Ok(false);
    };
    Ok(ta.address() == tb.address() && ta.size() == tb.size())
}

/// Writes every failure of `test` to `<target>/symbolizer-reports/<test>.txt` (CI logs show
/// only the first few) and returns the path.
/// Fails `test` when there are failures: all of them go to its report file, the first `show`
/// into the panic message.
pub fn fail_on(test: &str, failures: &[String], show: usize) {
    if failures.is_empty() {
        return;
    }
    let report = write_report(test, failures);
    let mut msg = format!(
        "{} failures (all in {}; first {show}):\n",
        failures.len(),
        report.display()
    );
    for f in failures.iter().take(show) {
        msg.push_str(&format!("  {f}\n"));
    }
    panic!("{msg}");
}

pub fn write_report(test: &str, lines: &[String]) -> PathBuf {
    let dir = go::target_dir().join("symbolizer-reports");
    let path = dir.join(format!("{test}.txt"));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(&path, lines.join("\n") + "\n");
    path
}
