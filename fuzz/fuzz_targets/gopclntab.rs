//! Feeds arbitrary bytes to the pclntab reader (as an ELF file and as a raw table) and to
//! buildinfo::read, then looks up a few PCs derived from the input. Build with
//! `AYA_BUILD_SKIP=1 cargo +nightly fuzz run gopclntab`.
#![no_main]

use gprof_bpf::symbolize::buildinfo;
use gprof_bpf::symbolize::gopclntab::{GoTable, PcKind};
use libfuzzer_sys::fuzz_target;

fn exercise<D: AsRef<[u8]>>(t: &GoTable<D>, data: &[u8]) {
    let (lo, hi) = t.text_range();
    let span = hi.saturating_sub(lo).max(1);
    let mut pcs = vec![lo, hi, hi.wrapping_sub(1), t.text_start()];
    for c in data.chunks_exact(8).take(8) {
        let v = u64::from_le_bytes(c.try_into().unwrap());
        pcs.push(v);
        pcs.push(lo.wrapping_add(v % span));
    }
    let mut out = Vec::new();
    for pc in pcs {
        for kind in [PcKind::Leaf, PcKind::Return, PcKind::AfterInjectedCall] {
            out.clear();
            let _ = t.frames(pc, kind, &mut out);
        }
        let _ = t.frames_with_callee(pc, PcKind::Return, Some("runtime.sigpanic"), &mut out);
        let _ = t.func_at(pc);
        let _ = t.sp_delta(pc);
    }
    for i in 0..t.func_count().min(4) {
        let _ = t.func_entry(i);
    }
    let _ = t.func_entry(t.func_count());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = GoTable::parse(data) {
        exercise(&t, data);
    }
    let _ = buildinfo::read(data);
    if let Ok(t) = GoTable::from_pclntab(data, 0x401000, Some(data.len() as u64 / 2)) {
        exercise(&t, data);
        let _ = t.wrapper_func_id();
    }
});
