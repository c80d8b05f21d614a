//! Tests: synthetic tables for every layout, bad input, and real binaries built with the
//! installed Go toolchains (oracles: the ELF symbol table and the program's own
//! `runtime.CallersFrames` output — never this reader).

use super::*;

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
