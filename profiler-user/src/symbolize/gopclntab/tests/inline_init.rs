//! Regression: inline records whose parentPc the linker never set (0, the function entry).
//! Package `init` functions built from statically evaluated inlined calls
//! (`tests/fixtures/bigprogs/staticinit`) have no inline marks, so every record points at the
//! entry, which is itself inside an inlined body: following parentPc cycles. Oracles:
//! `llvm-symbolizer-22 --inlining` (DWARF) and `go tool addr2line`, never this reader.

use super::super::*;
use gprof_testkit::go;
use std::path::Path;
use std::process::{Command, Stdio};

/// (function, file, line) per frame, innermost first, for every PC, from llvm-symbolizer.
fn llvm_frames(exe: &Path, pcs: &[u64]) -> Option<Vec<Vec<(String, String, u32)>>> {
    let input: String = pcs.iter().map(|p| format!("{p:#x}\n")).collect();
    let out = run_with_stdin(
        Command::new("llvm-symbolizer-22")
            .arg("--inlining")
            .arg(format!("--obj={}", exe.display())),
        &input,
    )?;
    let blocks = out.split("\n\n").filter(|b| !b.trim().is_empty());
    let parse = |block: &str| {
        let lines: Vec<&str> = block.lines().collect();
        lines
            .chunks(2)
            .map(|c| {
                let mut loc = c[1].rsplitn(3, ':');
                let _col = loc.next();
                let line = loc.next().unwrap().parse().unwrap();
                (c[0].to_string(), loc.next().unwrap().to_string(), line)
            })
            .collect()
    };
    Some(blocks.map(parse).collect())
}

/// `go tool addr2line`: (physical function, innermost file:line) per PC.
fn go_addr2line(ver: &str, exe: &Path, pcs: &[u64]) -> Vec<(String, String)> {
    let input: String = pcs.iter().map(|p| format!("{p:#x}\n")).collect();
    let out = run_with_stdin(
        go::go_command(ver)
            .expect("toolchain found above")
            .args(["tool", "addr2line"])
            .arg(exe),
        &input,
    )
    .expect("go tool addr2line");
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .map(|c| (c[0].to_string(), c[1].to_string()))
        .collect()
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> Option<String> {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let feed = input.to_string();
    // Fed from a thread: large outputs would otherwise deadlock on full pipes.
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()).unwrap());
    let out = child.wait_with_output().ok()?;
    writer.join().unwrap();
    String::from_utf8(out.stdout).ok()
}

/// Every byte of `main.init` (from the ELF symbol table).
fn init_pcs(bin: &[u8]) -> Vec<u64> {
    use object::{Object, ObjectSymbol};
    let f = object::File::parse(bin).unwrap();
    let s = f
        .symbols()
        .find(|s| s.name() == Ok("main.init"))
        .expect("main.init in the symbol table");
    (s.address()..s.address() + s.size()).collect()
}

#[test]
fn static_init_records_without_parent_pc() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/bigprogs/staticinit");
    let mut checked = 0;
    for ver in go::installed(&["1.21.13", "1.24.11", "1.27.3"]) {
        let Some(exe) = gprof_testkit::require_ok(
            go::build_dir(&src, "staticinit", ver, &[], &[]),
            &format!("building staticinit with Go {ver}"),
        ) else {
            continue;
        };
        let bin = std::fs::read(&exe).unwrap();
        let t = GoTable::parse(&bin[..]).unwrap();
        let pcs = init_pcs(&bin);
        let Some(want) = llvm_frames(&exe, &pcs) else {
            gprof_testkit::skip("llvm-symbolizer-22 is not installed");
            return;
        };
        let go = go_addr2line(ver, &exe, &pcs);
        assert_eq!((want.len(), go.len()), (pcs.len(), pcs.len()));
        // The fixture reproduces the case: the entry is inside a 3-deep inlined body.
        assert!(want[0].len() >= 4, "{ver}: {:?}", want[0]);
        let (mut whole, mut cut) = (0, 0);
        let mut frames = Vec::new();
        for ((pc, want), (go_fn, go_loc)) in pcs.iter().zip(&want).zip(&go) {
            frames.clear();
            t.frames_with_callee(*pc, PcKind::Leaf, Some("runtime.gopanic"), &mut frames)
                .unwrap_or_else(|e| panic!("{ver} pc {pc:#x}: {e}"));
            let got: Vec<(String, String, u32)> = frames
                .iter()
                .map(|f| (f.function.to_string(), f.file.to_string(), f.line))
                .collect();
            let ctx = format!("{ver} pc {pc:#x}: got {got:?}, llvm {want:?}");
            let (inner, outer) = (&got[0], got.last().unwrap());
            // Innermost frame and physical function: exactly what the oracles say.
            assert_eq!(inner, &want[0], "{ctx}");
            assert_eq!(&outer.0, go_fn, "{ctx}");
            assert_eq!(&want.last().unwrap().0, go_fn, "{ctx}");
            assert_eq!(format!("{}:{}", inner.1, inner.2), *go_loc, "{ctx}");
            if outer.1 == "?" {
                // The caller chain is not in the pclntab: shorter, the caller's line unknown.
                assert!(got.len() < want.len() && outer.2 == 0, "{ctx}");
                cut += 1;
            } else {
                assert_eq!(got, *want, "{ctx}");
                whole += 1;
            }
        }
        eprintln!("{ver}: {whole} PCs with the whole chain, {cut} with the caller unknown");
        checked += 1;
    }
    assert!(checked > 0 || std::env::var_os("GPROF_REQUIRE_GO").is_none());
}
