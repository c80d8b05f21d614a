//! Tests: synthetic tables for every layout, bad input, and real binaries built with the
//! installed Go toolchains (oracles: the ELF symbol table and the program's own
//! `runtime.CallersFrames` output — never this reader).

use super::*;

mod inline_init;
mod real;
mod synth;

/// Truncations and random corruption of a table must give errors, never panics.
pub(super) fn exercise<D: AsRef<[u8]>>(t: &GoTable<D>, pcs: &[u64]) {
    let mut out = Vec::new();
    for &pc in pcs {
        for kind in [PcKind::Leaf, PcKind::Return, PcKind::AfterInjectedCall] {
            out.clear();
            let _ = t.frames(pc, kind, &mut out);
        }
        let _ = t.func_at(pc);
        let _ = t.sp_delta(pc);
    }
    let _ = t.text_range();
    for i in 0..t.func_count().min(8) {
        let _ = t.func_entry(i);
    }
    check_cache_exact(t, pcs);
}

/// Inputs that once crashed the fuzzer (`fuzz/regressions/`).
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in rd.flatten() {
        let data = std::fs::read(e.path()).unwrap();
        if let Ok(t) = GoTable::parse(&data[..]) {
            exercise(&t, &[0, 0x401000, 0x401010, u64::MAX]);
        }
        let _ = crate::symbolize::buildinfo::read(&data);
        if let Ok(t) = GoTable::from_pclntab(&data[..], 0x401000, Some(data.len() as u64 / 2)) {
            exercise(&t, &[0, 0x401000, 0x401010, u64::MAX]);
        }
    }
}

/// The per-function cache must give exactly what the uncached path gives (values and errors),
/// on fresh and on warm tables.
pub(super) fn check_cache_exact<D: AsRef<[u8]>>(t: &GoTable<D>, pcs: &[u64]) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &pc in pcs {
        assert_eq!(
            format!("{:?}", t.find(pc)),
            format!("{:?}", t.find_by_search(pc)),
            "find {pc:#x}"
        );
        for kind in [PcKind::Leaf, PcKind::Return, PcKind::AfterInjectedCall] {
            for callee in [None, Some("runtime.gopanic"), Some("main.f")] {
                a.clear();
                b.clear();
                let ra = t.frames_with_callee(pc, kind, callee, &mut a);
                let rb = match t.find(pc) {
                    Ok(Some(i)) => t.frames_uncached(i, pc, kind, callee, &mut b),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                assert_eq!(format!("{ra:?}"), format!("{rb:?}"), "pc {pc:#x}");
                assert_eq!(a, b, "pc {pc:#x} {kind:?} {callee:?}");
            }
        }
        let un = |f: &dyn Fn(usize) -> String| match t.find(pc) {
            Ok(Some(i)) => f(i),
            Ok(None) => "Ok(None)".to_string(),
            Err(e) => format!("{:?}", Err::<(), _>(e)),
        };
        assert_eq!(
            format!("{:?}", t.pc_to_line(pc)),
            un(&|i| format!("{:?}", t.pc_to_line_uncached(i, pc))),
            "pc_to_line {pc:#x}"
        );
        assert_eq!(
            format!("{:?}", t.func_at(pc)),
            un(&|i| format!("{:?}", t.func_at_uncached(i))),
            "func_at {pc:#x}"
        );
    }
}

#[test]
fn cache_matches_uncached_on_fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in rd.flatten() {
        let data = std::fs::read(e.path()).unwrap();
        let pcs = [0, 0x401000, 0x401001, 0x401010, 0x401100, u64::MAX];
        if let Ok(t) = GoTable::parse(&data[..]) {
            let (lo, hi) = t.text_range();
            let mut p: Vec<u64> = pcs.to_vec();
            p.extend((lo..hi).step_by(((hi - lo) / 512).max(1) as usize));
            check_cache_exact(&t, &p);
            check_cache_exact(&t, &p);
        }
        if let Ok(t) = GoTable::from_pclntab(&data[..], 0x401000, Some(data.len() as u64 / 2)) {
            check_cache_exact(&t, &pcs);
            check_cache_exact(&t, &pcs);
        }
    }
}
