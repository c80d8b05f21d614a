//! Synthetic tables assembled from the documented layouts (docs/gopclntab.md §1.2, §3, §4)
//! for every family, checked for name/file/line/inline/sp, plus bad-input tests.

use super::super::*;
use super::exercise;

const T: u64 = 0x40_1000;
const FILES: [&str; 3] = ["/src/a.go", "/src/b.go", "/src/c.go"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V {
    /// Go 1.2–1.11 `_func`, 1.9–1.11 inline records.
    V111,
    /// Go 1.12 (indices 1/2), 20-byte records.
    V112,
    /// Go 1.13–1.15 (indices 2/4).
    V115,
    V117,
    V119,
    V121,
}

struct SInl {
    name: &'static str,
    parent: i32,
    parent_pc: i32,
    file: usize,
    line: i32,
    start_line: i32,
}

struct SFunc {
    name: &'static str,
    off: u64,
    func_id: u8,
    start_line: i32,
    pcsp: Vec<(i32, u64)>,
    pcfile: Vec<(i32, u64)>,
    pcln: Vec<(i32, u64)>,
    inl: Vec<(i32, u64)>,
    tree: Vec<SInl>,
}

fn funcs() -> Vec<SFunc> {
    vec![
        SFunc {
            name: "main.a",
            off: 0,
            func_id: 0,
            start_line: 9,
            pcsp: vec![(0, 4), (0x18, 0x1c), (0, 0x20)],
            pcfile: vec![(0, 0x20)],
            pcln: vec![(10, 0x10), (11, 0x20)],
            inl: vec![],
            tree: vec![],
        },
        SFunc {
            name: "main.b",
            off: 0x20,
            func_id: 0,
            start_line: 19,
            pcsp: vec![(0, 0x40)],
            pcfile: vec![(1, 0x10), (2, 0x20), (1, 0x40)],
            pcln: vec![(20, 0x10), (30, 0x18), (40, 0x20), (21, 0x30), (22, 0x40)],
            inl: vec![(-1, 0x10), (1, 0x18), (0, 0x20), (-1, 0x40)],
            tree: vec![
                SInl {
                    name: "main.mid",
                    parent: -1,
                    parent_pc: 2,
                    file: 1,
                    line: 20,
                    start_line: 39,
                },
                SInl {
                    name: "main.inner",
                    parent: 0,
                    parent_pc: 0x18,
                    file: 2,
                    line: 40,
                    start_line: 29,
                },
            ],
        },
        // 0x60..0x70 is padding after main.b.
        SFunc {
            name: "main.G[go.shape.int_0]",
            off: 0x70,
            func_id: 0,
            start_line: 49,
            pcsp: vec![(0, 0x10)],
            pcfile: vec![(0, 0x10)],
            pcln: vec![(50, 0x10)],
            inl: vec![],
            tree: vec![],
        },
        SFunc {
            name: "main.(*T).M",
            off: 0x80,
            func_id: 21,
            start_line: 0,
            pcsp: vec![(0, 0x10)],
            pcfile: vec![(0, 0x10)],
            pcln: vec![(1, 0x10)],
            inl: vec![],
            tree: vec![],
        },
    ]
}
const END: u64 = 0x90;

fn zigzag(d: i32) -> u32 {
    if d >= 0 {
        (d as u32) << 1
    } else {
        ((!d as u32) << 1) | 1
    }
}

fn uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes `(value, end_pc_offset)` pairs as a pc-value program.
fn pcprog(pairs: &[(i32, u64)], q: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut val, mut pc) = (-1i32, 0u64);
    for &(v, end) in pairs {
        uvarint(&mut out, zigzag(v - val));
        uvarint(&mut out, ((end - pc) / q) as u32);
        val = v;
        pc = end;
    }
    out.push(0);
    out
}

struct W(Vec<u8>);
impl W {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn put32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(&mut self, at: usize, v: u64) {
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn align(&mut self, a: usize) {
        while !self.0.len().is_multiple_of(a) {
            self.0.push(0);
        }
    }
    fn cstr(&mut self, s: &str) -> usize {
        let o = self.0.len();
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        o
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Builds a table; returns (blob, gofunc offset for 1.18+).
fn build(v: V, q: u8) -> (Vec<u8>, Option<u64>) {
    let fs = funcs();
    let n = fs.len();
    let qq = u64::from(q);
    let (pcdata_inl, funcdata_inl) = match v {
        V::V111 | V::V112 => (1usize, 2usize),
        V::V115 => (2, 4),
        _ => (2, 3),
    };
    let go12 = matches!(v, V::V111 | V::V112 | V::V115);
    let magic = match v {
        V::V111 | V::V112 | V::V115 => 0xffff_fffb,
        V::V117 => 0xffff_fffa,
        V::V119 => 0xffff_fff0,
        V::V121 => 0xffff_fff1,
    };
    let mut w = W(Vec::new());
    w.u32(magic);
    w.0.extend_from_slice(&[0, 0, q, 8]);
    w.u64(n as u64);
    let mut hdr_slots = 0;
    if !go12 {
        w.u64(FILES.len() as u64);
        if matches!(v, V::V119 | V::V121) {
            w.u64(T);
        }
        hdr_slots = w.len();
        for _ in 0..5 {
            w.u64(0);
        }
    }
    // Go 1.2–1.15: functab right after the count; 1.16+: its own region (later).
    let mut ftab_go12 = 0;
    let mut filetaboff_slot = 0;
    if go12 {
        ftab_go12 = w.len();
        w.0.resize(w.len() + n * 16 + 8, 0);
        filetaboff_slot = w.len();
        w.u32(0);
        w.align(8);
    }
    // Names.
    let funcname_off = w.len();
    let base_names = if go12 { 0 } else { funcname_off };
    if !go12 {
        w.0.push(0); // nameOff 0 = no name
    }
    let mut name_off = std::collections::HashMap::new();
    for f in &fs {
        name_off.insert(f.name, w.cstr(f.name) - base_names);
        for r in &f.tree {
            name_off.entry(r.name).or_insert_with(|| 0);
            let o = w.cstr(r.name) - base_names;
            name_off.insert(r.name, o);
        }
    }
    // Files.
    let (cu_off, filetab_off);
    if go12 {
        w.align(4);
        filetab_off = w.len();
        cu_off = 0;
        w.u32(FILES.len() as u32 + 1);
        let slots = w.len();
        w.0.resize(w.len() + 4 * FILES.len(), 0);
        for (i, f) in FILES.iter().enumerate() {
            let o = w.cstr(f);
            w.put32(slots + 4 * i, o as u32);
        }
        w.put32(filetaboff_slot, filetab_off as u32);
    } else {
        w.align(4);
        cu_off = w.len();
        w.0.resize(w.len() + 4 * FILES.len(), 0);
        filetab_off = w.len();
        for (i, f) in FILES.iter().enumerate() {
            let o = w.cstr(f) - filetab_off;
            w.put32(cu_off + 4 * i, o as u32);
        }
    }
    let fileval = |i: usize| if go12 { i as i32 + 1 } else { i as i32 };
    // pc tables.
    let pctab_off = w.len();
    let pc_base = if go12 { 0 } else { pctab_off };
    w.0.push(0); // offset 0 = no table
    let mut progs = Vec::new();
    for f in &fs {
        let mut put = |pairs: &[(i32, u64)]| -> u32 {
            if pairs.is_empty() {
                return 0;
            }
            let o = w.len() - pc_base;
            w.0.extend(pcprog(pairs, qq));
            o as u32
        };
        let file_pairs: Vec<(i32, u64)> = f
            .pcfile
            .iter()
            .map(|&(i, e)| (fileval(i as usize), e))
            .collect();
        progs.push((put(&f.pcsp), put(&file_pairs), put(&f.pcln), put(&f.inl)));
    }
    // functab + _func records.
    w.align(8);
    let ftab_off = if go12 { ftab_go12 } else { w.len() };
    let funcoff_base = if go12 { 0 } else { ftab_off };
    if !go12 {
        let ent = if v == V::V117 { 16 } else { 8 };
        w.0.resize(w.len() + (n + 1) * ent, 0);
    }
    let mut fixups = Vec::new(); // (slot, func index) for funcdata tree pointers
    let mut func_offs = Vec::new();
    for (i, f) in fs.iter().enumerate() {
        w.align(if go12 || v == V::V117 { 8 } else { 4 });
        let fo = w.len();
        func_offs.push(fo);
        let (pcsp, pcfile, pcln, inl) = progs[i];
        let has_tree = !f.tree.is_empty();
        let npcdata = if has_tree { pcdata_inl as u32 + 1 } else { 0 };
        let nfuncdata = if has_tree { funcdata_inl as u32 + 1 } else { 2 };
        if go12 || v == V::V117 {
            w.u64(T + f.off)
        } else {
            w.u32(f.off as u32)
        }
        w.u32(name_off[f.name] as u32);
        w.u32(0); // args
        w.u32(0); // frame / deferreturn
        w.u32(pcsp);
        w.u32(pcfile);
        w.u32(pcln);
        w.u32(npcdata);
        match v {
            V::V111 => w.u32(nfuncdata),
            V::V112 | V::V115 => w.0.extend_from_slice(&[f.func_id, 0, 0, nfuncdata as u8]),
            V::V117 | V::V119 => {
                w.u32(0); // cuOffset
                w.0.extend_from_slice(&[f.func_id, 0, 0, nfuncdata as u8]);
            }
            V::V121 => {
                w.u32(0);
                w.u32(f.start_line as u32);
                w.0.extend_from_slice(&[f.func_id, 0, 0, nfuncdata as u8]);
            }
        }
        for k in 0..npcdata as usize {
            w.u32(if k == pcdata_inl { inl } else { 0 });
        }
        if go12 || v == V::V117 {
            if !w.len().is_multiple_of(8) {
                w.u32(0);
            }
            for k in 0..nfuncdata as usize {
                if k == funcdata_inl && has_tree {
                    fixups.push((w.len(), i));
                }
                w.u64(0);
            }
        } else {
            for k in 0..nfuncdata as usize {
                if k == funcdata_inl && has_tree {
                    fixups.push((w.len(), i));
                }
                w.u32(u32::MAX);
            }
        }
    }
    // functab entries.
    for (i, f) in fs.iter().enumerate() {
        let rel = (func_offs[i] - funcoff_base) as u64;
        if go12 || v == V::V117 {
            w.put64(ftab_off + 16 * i, T + f.off);
            w.put64(ftab_off + 16 * i + 8, rel);
        } else {
            w.put32(ftab_off + 8 * i, f.off as u32);
            w.put32(ftab_off + 8 * i + 4, rel as u32);
        }
    }
    if go12 || v == V::V117 {
        w.put64(ftab_off + 16 * n, T + END);
    } else {
        w.put32(ftab_off + 8 * n, END as u32);
    }
    // Inline trees (1.18+: in a gofunc region after the table).
    w.align(8);
    let gofunc = w.len() as u64;
    w.u64(0xdead); // something before the first tree
    for (slot, i) in fixups {
        w.align(4);
        let tree_at = w.len();
        for r in &fs[i].tree {
            let nameoff = name_off[r.name] as u32;
            match v {
                V::V111 => {
                    w.u32(r.parent as u32);
                    w.u32(fileval(r.file) as u32);
                    w.u32(r.line as u32);
                    w.u32(nameoff);
                }
                V::V112 | V::V115 | V::V117 | V::V119 => {
                    w.0.extend_from_slice(&(r.parent as i16).to_le_bytes());
                    w.0.extend_from_slice(&[0, 0]);
                    w.u32(fileval(r.file) as u32);
                    w.u32(r.line as u32);
                    w.u32(nameoff);
                    w.u32(r.parent_pc as u32);
                }
                V::V121 => {
                    w.0.extend_from_slice(&[0, 0, 0, 0]);
                    w.u32(nameoff);
                    w.u32(r.parent_pc as u32);
                    w.u32(r.start_line as u32);
                }
            }
        }
        if go12 || v == V::V117 {
            w.put64(slot, tree_at as u64);
        } else {
            w.put32(slot, (tree_at as u64 - gofunc) as u32);
        }
    }
    if !go12 {
        let offs = [funcname_off, cu_off, filetab_off, pctab_off, ftab_off];
        for (k, o) in offs.iter().enumerate() {
            w.put64(hdr_slots + 8 * k, *o as u64);
        }
    }
    (w.0, (!go12 && v != V::V117).then_some(gofunc))
}

fn table(v: V, q: u8) -> GoTable<Vec<u8>> {
    let (blob, gofunc) = build(v, q);
    let t = GoTable::from_pclntab(blob, 0, gofunc).unwrap();
    match v {
        V::V112 => t.with_go_version("go1.12.17"),
        V::V121 => t.with_go_version("go1.21.0"),
        _ => t,
    }
}

fn names<'a>(fr: &'a [Frame<'a>]) -> Vec<(&'a str, &'a str, u32, bool)> {
    fr.iter()
        .map(|f| (f.function.as_ref(), f.file, f.line, f.inlined))
        .collect()
}

fn check(v: V, q: u8) {
    let t = table(v, q);
    let fam = match v {
        V::V111 | V::V112 | V::V115 => Family::Go12,
        V::V117 => Family::Go116,
        V::V119 => Family::Go118,
        V::V121 => Family::Go120,
    };
    assert_eq!(t.version_family(), fam);
    assert_eq!(t.quantum(), q);
    assert_eq!(t.func_count(), 4);
    assert_eq!(t.text_range(), (T, T + END));
    assert_eq!(t.func_entry(1).unwrap(), T + 0x20);
    assert!(t.inline_available(), "{v:?}");
    let sl = |n: u32| if v == V::V121 { n } else { 0 };

    let f = t.func_at(T + 5).unwrap().unwrap();
    assert_eq!(
        (f.name, f.entry, f.end, f.frame_size, f.start_line),
        ("main.a", T, T + 0x20, 0x18, sl(9))
    );
    assert_eq!(t.sp_delta(T).unwrap(), Some(0));
    assert_eq!(t.sp_delta(T + 4).unwrap(), Some(0x18));
    assert_eq!(t.sp_delta(T + 0x1c).unwrap(), Some(0));
    let mut out = Vec::new();
    t.frames(T + 5, PcKind::Leaf, &mut out).unwrap();
    assert_eq!(names(&out), [("main.a", "/src/a.go", 10, false)]);
    out.clear();
    t.frames(T + 0x10, PcKind::Leaf, &mut out).unwrap();
    assert_eq!(out[0].line, 11);
    out.clear();
    t.frames(T + 0x10, PcKind::Return, &mut out).unwrap();
    assert_eq!(out[0].line, 10);
    out.clear();
    t.frames(T, PcKind::Return, &mut out).unwrap(); // pc == entry: no -1
    assert_eq!(names(&out), [("main.a", "/src/a.go", 10, false)]);

    // Inlining: inner inside mid inside main.b.
    out.clear();
    t.frames(T + 0x32, PcKind::Leaf, &mut out).unwrap();
    assert_eq!(
        names(&out),
        [
            ("main.inner", "/src/c.go", 30, true),
            ("main.mid", "/src/c.go", 40, true),
            ("main.b", "/src/b.go", 20, false)
        ],
        "{v:?} q={q}"
    );
    assert_eq!(
        out.iter().map(|f| f.entry).collect::<Vec<_>>(),
        [T + 0x20; 3]
    );
    assert_eq!(
        out.iter().map(|f| f.start_line).collect::<Vec<_>>(),
        [sl(29), sl(39), sl(19)]
    );
    out.clear();
    t.frames(T + 0x39, PcKind::AfterInjectedCall, &mut out)
        .unwrap();
    assert_eq!(
        names(&out),
        [
            ("main.mid", "/src/c.go", 40, true),
            ("main.b", "/src/b.go", 20, false)
        ]
    );
    out.clear();
    t.frames(T + 0x45, PcKind::Leaf, &mut out).unwrap();
    assert_eq!(names(&out), [("main.b", "/src/b.go", 21, false)]);
    // Padding after main.b resolves to it; its tables do not cover it.
    let f = t.func_at(T + 0x65).unwrap().unwrap();
    assert_eq!((f.name, f.end), ("main.b", T + 0x70));
    out.clear();
    t.frames(T + 0x65, PcKind::Leaf, &mut out).unwrap();
    assert_eq!(names(&out), [("main.b", "?", 0, false)]);
    assert_eq!(t.sp_delta(T + 0x65).unwrap(), None);
    // Generic shape names print as [...].
    out.clear();
    t.frames(T + 0x72, PcKind::Leaf, &mut out).unwrap();
    // Printed with shapes elided from 1.20 on; earlier linkers stored "[...]" themselves.
    let g = if v == V::V121 {
        "main.G[...]"
    } else {
        "main.G[go.shape.int_0]"
    };
    assert_eq!(names(&out), [(g, "/src/a.go", 50, false)]);
    assert_eq!(
        t.func_at(T + 0x72).unwrap().unwrap().name,
        "main.G[go.shape.int_0]"
    );
    // Wrapper elision (no funcIDs before 1.12).
    out.clear();
    t.frames(T + 0x84, PcKind::Leaf, &mut out).unwrap();
    if v == V::V111 {
        assert_eq!(out.len(), 1);
    } else {
        assert!(out.is_empty(), "{v:?}: wrapper not elided: {out:?}");
        t.frames_with_callee(T + 0x84, PcKind::Return, Some("runtime.gopanic"), &mut out)
            .unwrap();
        assert_eq!(names(&out), [("main.(*T).M", "/src/a.go", 1, false)]);
    }
    // Outside the text.
    for pc in [0, T - 1, T + END, u64::MAX] {
        out.clear();
        t.frames(pc, PcKind::Return, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(t.func_at(pc).unwrap().is_none());
        assert_eq!(t.sp_delta(pc).unwrap(), None);
    }
}

#[test]
fn synthetic_all_layouts() {
    for v in [V::V111, V::V112, V::V115, V::V117, V::V119, V::V121] {
        for q in [1, 4] {
            check(v, q);
        }
    }
}

#[test]
fn go12_tail_heuristic() {
    // Without a version: 1.12-style tails are detected from the nfuncdata byte.
    let (b, _) = build(V::V111, 1);
    assert!(
        GoTable::from_pclntab(b, 0, None)
            .unwrap()
            .layout
            .legacy_tail
    );
    let (b, _) = build(V::V115, 1);
    assert!(
        !GoTable::from_pclntab(b, 0, None)
            .unwrap()
            .layout
            .legacy_tail
    );
}

#[test]
fn bad_magic_and_unsupported() {
    let (mut b, g) = build(V::V121, 1);
    b[0] = 0xfe;
    assert!(matches!(
        GoTable::from_pclntab(&b[..], 0, g),
        Err(Error::Unsupported { .. })
    ));
    let (mut b, g) = build(V::V121, 1);
    b[..4].copy_from_slice(&0xffff_fff1u32.to_be_bytes());
    assert!(matches!(
        GoTable::from_pclntab(&b[..], 0, g),
        Err(Error::Unsupported {
            what: "big-endian pclntab",
            ..
        })
    ));
    let (mut b, g) = build(V::V121, 1);
    b[7] = 4;
    assert!(matches!(
        GoTable::from_pclntab(&b[..], 0, g),
        Err(Error::Unsupported {
            what: "pointer size",
            ..
        })
    ));
    let (mut b, g) = build(V::V121, 1);
    b[6] = 2;
    assert!(matches!(
        GoTable::from_pclntab(&b[..], 0, g),
        Err(Error::Unsupported { .. })
    ));
    // Huge counts.
    for v in [V::V111, V::V117, V::V121] {
        let (mut b, g) = build(v, 1);
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(GoTable::from_pclntab(&b[..], 0, g).is_err());
        b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(GoTable::from_pclntab(&b[..], 0, g).is_err());
    }
    // Offsets past the end.
    let (mut b, g) = build(V::V121, 1);
    let past = b.len() as u64 + 10;
    b[32..40].copy_from_slice(&past.to_le_bytes());
    assert!(matches!(
        GoTable::from_pclntab(&b[..], 0, g),
        Err(Error::BadOffset { .. })
    ));
    assert!(matches!(GoTable::parse(&b[..]), Err(Error::NotElf)));
    assert!(matches!(
        GoTable::from_pclntab(&b[..3], 0, g),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn truncated_at_every_length() {
    for v in [V::V111, V::V112, V::V115, V::V117, V::V119, V::V121] {
        let (b, g) = build(v, 4);
        let pcs: Vec<u64> = (0..END + 8).step_by(3).map(|o| T + o).collect();
        for len in 0..b.len() {
            if let Ok(t) = GoTable::from_pclntab(&b[..len], 0, g) {
                exercise(&t, &pcs);
            }
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    // Deterministic xorshift; flip bytes of every layout and look things up.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for v in [V::V111, V::V112, V::V115, V::V117, V::V119, V::V121] {
        let (b, g) = build(v, 1);
        let pcs: Vec<u64> = (0..END + 8).step_by(5).map(|o| T + o).collect();
        for _ in 0..3000 {
            let mut c = b.clone();
            for _ in 0..1 + rnd() % 4 {
                let i = (rnd() % c.len() as u64) as usize;
                c[i] = rnd() as u8;
            }
            if let Ok(t) = GoTable::from_pclntab(&c[..], 0, g) {
                exercise(&t, &pcs);
                let _ = t.wrapper_func_id();
            }
        }
    }
    // Pure random bytes, with and without a valid magic prefix.
    for k in 0..2000 {
        let mut c: Vec<u8> = (0..(rnd() % 512) as usize).map(|_| rnd() as u8).collect();
        if k % 2 == 0 && c.len() >= 8 {
            c[..8].copy_from_slice(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8]);
        }
        if let Ok(t) = GoTable::from_pclntab(&c[..], 0, Some(rnd() % 1024)) {
            exercise(&t, &[0, rnd(), rnd() % 4096]);
        }
        let _ = GoTable::parse(&c[..]);
        let _ = crate::symbolize::buildinfo::read(&c);
    }
}

#[test]
fn pcvalue_edge_cases() {
    // First value delta may be 0 (value stays -1), multi-byte varints, negative deltas.
    let (b, g) = build(V::V121, 1);
    let t = GoTable::from_pclntab(b, 0, g).unwrap();
    let prog = pcprog(&[(-1, 0x10), (300, 0x200), (-5, 0x210)], 1);
    assert_eq!(prog[0], 0, "first value delta 0");
    // Decode the program directly through a table that holds it in its pctab.
    let mut blob = t.data.clone();
    let at = t.pctab_off + 1;
    blob.splice(at..at, prog.iter().copied());
    // Shift offsets after pctab by prog.len(): rebuild header offsets.
    let shift = prog.len() as u64;
    let ft = u64::from_le_bytes(blob[64..72].try_into().unwrap()) + shift;
    blob[64..72].copy_from_slice(&ft.to_le_bytes());
    let t2 = GoTable::from_pclntab(&blob[..], 0, None).unwrap();
    assert_eq!(t2.pcvalue(1, 0x1000, 0x1000).unwrap(), Some(-1));
    assert_eq!(t2.pcvalue(1, 0x1000, 0x100f).unwrap(), Some(-1));
    assert_eq!(t2.pcvalue(1, 0x1000, 0x1010).unwrap(), Some(300));
    assert_eq!(t2.pcvalue(1, 0x1000, 0x11ff).unwrap(), Some(300));
    assert_eq!(t2.pcvalue(1, 0x1000, 0x1205).unwrap(), Some(-5));
    assert_eq!(t2.pcvalue(1, 0x1000, 0x1210).unwrap(), None, "past the end");
    assert_eq!(
        t2.pcvalue(0, 0x1000, 0x1000).unwrap(),
        None,
        "offset 0 = no table"
    );
}

#[test]
fn name_for_print_matches_runtime() {
    assert_eq!(name_for_print("main.f"), "main.f");
    assert_eq!(name_for_print("main.G[go.shape.int_0]"), "main.G[...]");
    assert_eq!(
        name_for_print("main.(*Box[go.shape.string]).Get"),
        "main.(*Box[...]).Get"
    );
    assert_eq!(
        name_for_print("main.F[go.shape.int].func1"),
        "main.F[...].func1"
    );
    assert_eq!(name_for_print("a]b[c"), "a]b[c");
    // 1.27: generic method of a generic type keeps the text between the groups.
    assert_eq!(
        name_for_print("main.(*Box[go.shape.int]).Get[go.shape.string]"),
        "main.(*Box[...]).Get[...]"
    );
    assert_eq!(name_for_print("main.F[go.shape.[]int]"), "main.F[...]");
    assert_eq!(
        name_for_print("type:.eq.[9]internal/cpu.option"),
        "type:.eq.[...]internal/cpu.option"
    );
    assert_eq!(name_for_print("a[b]]c"), "a[...]c");
    // 1.20–1.26: first '[' to last ']'.
    assert_eq!(
        name_for_print_go120("main.(*Box[go.shape.int]).Get[go.shape.string]"),
        "main.(*Box[...]"
    );
}

/// Writes the synthetic tables to `$GPROF_DUMP_SEEDS/` (fuzz seeds); no-op without the env var.
#[test]
fn dump_fuzz_seeds() {
    let Some(dir) = std::env::var_os("GPROF_DUMP_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    for v in [V::V111, V::V112, V::V115, V::V117, V::V119, V::V121] {
        for q in [1, 4] {
            let (b, _) = build(v, q);
            std::fs::write(dir.join(format!("synth-{v:?}-{q}.tab")), b).unwrap();
        }
    }
}

/// Wraps a synthetic table in a minimal x86-64/aarch64 ELF: the table in a read-only PT_LOAD
/// at `tab_va` with a `.gopclntab` section, and optionally a writable moduledata (`md`: words
/// to place at byte offsets) in a `.go.module` section (or unnamed).
fn wrap_elf(
    blob: &[u8],
    q: u8,
    tab_va: u64,
    md: &[(usize, u64)],
    go_module_section: bool,
) -> Vec<u8> {
    let machine: u16 = if q == 4 { 183 } else { 62 };
    let blob_off = 64 + 2 * 56;
    let md_off = (blob_off + blob.len() + 7) & !7;
    let md_va = 0x10_0000_0000u64;
    let shstr = b"\0.gopclntab\0.go.module\0.shstrtab\0";
    let shstr_off = md_off + 400;
    let sh_off = (shstr_off + shstr.len() + 7) & !7;
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    let p16 = |f: &mut Vec<u8>, v: u16| f.extend_from_slice(&v.to_le_bytes());
    let p32 = |f: &mut Vec<u8>, v: u32| f.extend_from_slice(&v.to_le_bytes());
    let p64 = |f: &mut Vec<u8>, v: u64| f.extend_from_slice(&v.to_le_bytes());
    p16(&mut f, 2);
    p16(&mut f, machine);
    p32(&mut f, 1);
    p64(&mut f, 0);
    p64(&mut f, 64);
    p64(&mut f, sh_off as u64);
    p32(&mut f, 0);
    for v in [64u16, 56, 2, 64, 4, 3] {
        p16(&mut f, v);
    }
    // PT_LOAD R (table), PT_LOAD RW (moduledata).
    for (off, va, sz, flags) in [
        (blob_off, tab_va, blob.len(), 4u32),
        (md_off, md_va, 400, 6),
    ] {
        p32(&mut f, 1);
        p32(&mut f, flags);
        p64(&mut f, off as u64);
        p64(&mut f, va);
        p64(&mut f, va);
        p64(&mut f, sz as u64);
        p64(&mut f, sz as u64);
        p64(&mut f, 0x1000);
    }
    f.extend_from_slice(blob);
    f.resize(md_off, 0);
    let mut mdb = vec![0u8; 400];
    for &(o, v) in md {
        mdb[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&mdb);
    f.extend_from_slice(shstr);
    f.resize(sh_off, 0);
    let sh =
        |f: &mut Vec<u8>, name: u32, ty: u32, flags: u64, addr: u64, off: usize, size: usize| {
            p32(f, name);
            p32(f, ty);
            p64(f, flags);
            p64(f, addr);
            p64(f, off as u64);
            p64(f, size as u64);
            p32(f, 0);
            p32(f, 0);
            p64(f, 8);
            p64(f, 0);
        };
    sh(&mut f, 0, 0, 0, 0, 0, 0);
    sh(&mut f, 1, 1, 2, tab_va, blob_off, blob.len());
    if go_module_section {
        sh(&mut f, 12, 1, 3, md_va, md_off, 400);
    } else {
        sh(&mut f, 0, 1, 3, md_va, md_off, 400);
    }
    sh(&mut f, 23, 3, 0, 0, shstr_off, shstr.len());
    f
}

fn check_elf_frames<D: AsRef<[u8]>>(t: &GoTable<D>, want_inline: bool, ctx: &str) {
    let mut out = Vec::new();
    t.frames(T + 0x32, PcKind::Leaf, &mut out).unwrap();
    let got = names(&out);
    if want_inline {
        assert_eq!(
            got,
            [
                ("main.inner", "/src/c.go", 30, true),
                ("main.mid", "/src/c.go", 40, true),
                ("main.b", "/src/b.go", 20, false)
            ],
            "{ctx}"
        );
    } else {
        assert_eq!(got, [("main.b", "/src/c.go", 30, false)], "{ctx}");
    }
    assert_eq!(t.func_at(T + 5).unwrap().unwrap().name, "main.a", "{ctx}");
}

#[test]
fn synthetic_elf_files() {
    for q in [1u8, 4] {
        // ≤1.17: absolute funcdata pointers; the table is mapped at VA 0 like the raw blob.
        for v in [V::V111, V::V115, V::V117] {
            let (b, _) = build(v, q);
            let f = wrap_elf(&b, q, 0, &[], false);
            let t = GoTable::parse(&f[..]).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            // A 1.12-style tail in an ELF without buildinfo is taken as Go 1.12 (buildinfo
            // exists from 1.13), whose inline indices differ from this 1.13–1.15 table's:
            // no inline frames, but nothing wrong either.
            check_elf_frames(&t, v != V::V115, &format!("{v:?} q={q}"));
            if v == V::V115 {
                let t = t.with_go_version("go1.15.15");
                check_elf_frames(&t, true, &format!("{v:?} q={q} with version"));
            }
        }
        // 1.18+: table elsewhere; gofunc from moduledata found by pointer scan.
        let tab_va = 0x50_0000u64;
        for v in [V::V119, V::V121] {
            let (mut b, gofunc) = build(v, q);
            let gofunc_va = tab_va + gofunc.unwrap();
            let fnt = u64::from_le_bytes(b[32..40].try_into().unwrap());
            let cut = u64::from_le_bytes(b[40..48].try_into().unwrap());
            let gofunc_at = if v == V::V119 { 304 } else { 320 };
            let md = [
                (0, tab_va),
                (8, tab_va + fnt),
                (32, tab_va + cut),
                (176, T),
                (gofunc_at, gofunc_va),
            ];
            let f = wrap_elf(&b, q, tab_va, &md, false);
            let t = GoTable::parse(&f[..]).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!(t.text_start(), T);
            assert_eq!(t.gofunc(), Some(gofunc_va), "{v:?}");
            check_elf_frames(&t, true, &format!("{v:?} q={q}"));
            // Without moduledata: no gofunc, physical frames only (degraded, not wrong).
            let f = wrap_elf(&b, q, tab_va, &[], false);
            let t = GoTable::parse(&f[..]).unwrap();
            assert!(!t.inline_available());
            check_elf_frames(&t, false, &format!("{v:?} q={q} no moduledata"));
            if v == V::V121 {
                // 1.26 / 1.27 style: header textStart 0, `.go.module`, gofunc before epclntab.
                b[24..32].copy_from_slice(&0u64.to_le_bytes());
                let epc = tab_va + b.len() as u64;
                for (gofunc_at, label) in [(320, "1.26"), (344, "1.27")] {
                    let md = [
                        (0, tab_va),
                        (8, tab_va + fnt),
                        (32, tab_va + cut),
                        (176, T),
                        (gofunc_at, gofunc_va),
                        (gofunc_at + 8, epc),
                    ];
                    let f = wrap_elf(&b, q, tab_va, &md, true);
                    let t = GoTable::parse(&f[..]).unwrap_or_else(|e| panic!("{label}: {e}"));
                    assert_eq!(t.text_start(), T, "{label}");
                    assert_eq!(t.gofunc(), Some(gofunc_va), "{label}");
                    check_elf_frames(&t, true, label);
                }
                // textStart 0 and nothing to recover it from: a clear error.
                let f = wrap_elf(&b, q, tab_va, &[], false);
                assert!(matches!(GoTable::parse(&f[..]), Err(Error::NoTextStart)));
            }
        }
    }
    // Wrong machine / quantum pairing and 32-bit / big-endian ELF are rejected.
    let (b, _) = build(V::V117, 4);
    let mut f = wrap_elf(&b, 4, 0, &[], false);
    f[18] = 62; // x86-64 with quantum 4
    assert!(matches!(
        GoTable::parse(&f[..]),
        Err(Error::Unsupported { .. })
    ));
    f[4] = 1;
    assert!(matches!(
        GoTable::parse(&f[..]),
        Err(Error::Unsupported { .. })
    ));
    f[4] = 2;
    f[5] = 2;
    assert!(matches!(
        GoTable::parse(&f[..]),
        Err(Error::Unsupported { .. })
    ));
    // Truncations of an ELF image: errors only.
    let (b, gofunc) = build(V::V121, 1);
    let tab_va = 0x50_0000u64;
    let fnt = u64::from_le_bytes(b[32..40].try_into().unwrap());
    let cut = u64::from_le_bytes(b[40..48].try_into().unwrap());
    let md = [
        (0, tab_va),
        (8, tab_va + fnt),
        (32, tab_va + cut),
        (176, T),
        (320, tab_va + gofunc.unwrap()),
    ];
    let f = wrap_elf(&b, 1, tab_va, &md, false);
    let pcs: Vec<u64> = (0..END + 8).step_by(7).map(|o| T + o).collect();
    for len in 0..f.len() {
        if let Ok(t) = GoTable::parse(&f[..len]) {
            exercise(&t, &pcs);
        }
        let _ = crate::symbolize::buildinfo::read(&f[..len]);
    }
}
