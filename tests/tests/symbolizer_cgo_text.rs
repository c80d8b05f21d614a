//! Stripped, externally linked (cgo) binaries: the Go text starts at `runtime.text`, not at the
//! start of `.text`, which the external linker begins with C code (crt1's `_start` and gcc's
//! helpers). The pclntab's function offsets count from `runtime.text`.
//!
//! The `callers` fixture (it has cgo files and an `//export`) built with `-linkmode=external
//! -s -w` keeps no `.symtab`, but cgo's exported entry points stay in `.dynsym`: `crosscall2`
//! and `_cgo_topofstack`, Go assembly functions in the Go text. Their `.dynsym` addresses
//! (read with the object crate) are the independent anchor:
//! * `gprof-bpf addr2line` (`gprof_bpf::addr2line::run`) on the stripped binary must name each
//!   address with its `.dynsym` name, and the unstripped twin's `.symtab` (same `.text`) must
//!   put the same function there;
//! * `go tool addr2line` takes the start of `.text` as the text base of a stripped binary and
//!   names the function `runtime.text − .text` bytes further on: it must not give the
//!   `.dynsym` name, and it must give exactly the twin's function at `address + (runtime.text −
//!   .text)` (the offset, measured from the twin's `.symtab` and the section headers, is
//!   printed).
//!
//! Builds: Go 1.19 and 1.27.3, cgo, `-linkmode=external` (gcc + GNU ld), `-s -w`.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use tests::symcheck::{Build, Link, func_symbols, go_addr2line, parse_addr2line, same_text};

const VERSIONS: &[&str] = &["1.19", "1.27.3"];
const EXPORTS: [&str; 2] = ["crosscall2", "_cgo_topofstack"];

/// Address of each of `names` among the defined functions of `.dynsym`.
fn dynsym(path: &Path, names: &[&str]) -> Result<Vec<u64>> {
    let data = std::fs::read(path)?;
    let obj = object::File::parse(&*data)?;
    names
        .iter()
        .map(|n| {
            obj.dynamic_symbols()
                .find(|s| s.is_definition() && s.name() == Ok(n))
                .map(|s| s.address())
                .with_context(|| format!("{n} is not defined in .dynsym of {}", path.display()))
        })
        .collect()
}

/// Start address of `.text` (section headers; stripping keeps them).
fn text_start(path: &Path) -> Result<u64> {
    let data = std::fs::read(path)?;
    let obj = object::File::parse(&*data)?;
    Ok(obj.section_by_name(".text").context("no .text")?.address())
}

/// Address of symbol `name` of any kind in `.symtab` (`runtime.text` has no type).
fn symtab_address(path: &Path, name: &str) -> Result<u64> {
    let data = std::fs::read(path)?;
    let obj = object::File::parse(&*data)?;
    obj.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
        .with_context(|| format!("no {name} in .symtab of {}", path.display()))
}

/// The twin's `.symtab` function (with a size) containing `addr`.
fn function_at(syms: &[tests::symcheck::FuncSym], addr: u64) -> Option<&str> {
    syms.iter()
        .filter(|s| s.size > 0 && s.addr <= addr && addr < s.addr + s.size)
        .map(|s| s.name.as_str())
        .next()
}

fn check(build: &Build, stripped: &Path, twin: &Path) -> Result<Vec<String>> {
    let version = build.version.as_str();
    ensure!(
        same_text(stripped, twin)?,
        "{} and its unstripped twin differ in .text",
        build.label()
    );
    let addrs = dynsym(stripped, &EXPORTS)?;
    let syms = func_symbols(twin)?;
    let delta = symtab_address(twin, "runtime.text")?
        .checked_sub(text_start(stripped)?)
        .context("runtime.text before the start of .text")?;
    let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    let mut out = Vec::new();
    gprof_bpf::addr2line::run(&std::fs::read(stripped)?, input.as_bytes(), &mut out, false)?;
    let ours = parse_addr2line(&String::from_utf8(out)?, addrs.len())?;
    let go = go_addr2line(version, stripped, &addrs)?;
    let mut bad = Vec::new();
    println!(
        "{}: runtime.text − .text = {delta:#x} bytes of C code before the Go text",
        build.label()
    );
    if delta == 0 {
        bad.push(format!(
            "{}: runtime.text is the start of .text: nothing to check",
            build.label()
        ));
    }
    for ((name, addr), (ours, go)) in EXPORTS.iter().zip(&addrs).zip(ours.iter().zip(&go)) {
        let twin_name = function_at(&syms, *addr);
        let go_expected = function_at(&syms, addr + delta);
        println!(
            "  {name} {addr:#x} (.dynsym): twin .symtab {twin_name:?}, ours {:?}, go tool addr2line {:?} \
             (the twin's function at {:#x}: {go_expected:?})",
            ours.function,
            go.function,
            addr + delta
        );
        if twin_name != Some(name) {
            bad.push(format!(
                "{}: the twin's .symtab has {twin_name:?} at {addr:#x}, .dynsym {name}",
                build.label()
            ));
        }
        if ours.function != *name {
            bad.push(format!(
                "{}: gprof-bpf addr2line names {addr:#x} {:?}, .dynsym {name}",
                build.label(),
                ours.function
            ));
        }
        if go.function == *name || Some(go.function.as_str()) != go_expected {
            bad.push(format!(
                "{}: go tool addr2line names {addr:#x} {:?}; expected the function {delta:#x} bytes on, {go_expected:?}",
                build.label(),
                go.function
            ));
        }
    }
    Ok(bad)
}

#[test]
fn stripped_cgo_binaries_count_go_text_from_runtime_text() {
    let mut failures = Vec::new();
    for v in tests::go::installed(VERSIONS) {
        let build = Build::new(v, "amd64", Link::External, true, false);
        let Some(stripped) = tests::require_ok(build.build("callers"), "the cgo build") else {
            continue;
        };
        let Some(twin) = tests::require_ok(build.unstripped().build("callers"), "the twin") else {
            continue;
        };
        match check(&build, &stripped, &twin) {
            Ok(bad) => failures.extend(bad),
            Err(e) => failures.push(format!("{}: {e:#}", build.label())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
