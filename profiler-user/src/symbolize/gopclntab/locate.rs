//! Finding the pclntab, `runtime.text`, `moduledata` and `gofunc` in an ELF file, and
//! [`GoTable::parse`] which puts them together.

use super::version::{GOFUNC_IN_PCLNTAB, MD_TEXT, facts, facts_for, go1_minor};
use super::{
    Error, Family, GoTable, Header, Result, Seg, elf, go12_legacy_tail, layout_for,
    parse_go_version, rd_u32, rd_u64,
};

// ---- locating things in the ELF file ---------------------------------------------------------

/// Where the pclntab is: file range and virtual address; `exact` when the length is the
/// table's own (from a section or symbols), not "to the end of the segment".
pub(super) struct Loc {
    pub(super) off: usize,
    pub(super) len: usize,
    pub(super) va: u64,
    pub(super) exact: bool,
}

pub(super) fn locate_pclntab(e: &elf::Elf<'_>) -> Result<Loc> {
    // A candidate from a section or symbols must carry a valid header: broken strip tools can
    // leave misnamed sections (seen with llvm-objcopy --strip-all on Go PIEs). The first
    // error of a named candidate is reported if nothing else is found.
    let mut named_err = None;
    let mut try_loc = |loc: Loc| -> Option<Loc> {
        let tab = e.data.get(loc.off..loc.off.checked_add(loc.len)?)?;
        match Header::parse(tab, false) {
            Ok(_) => Some(loc),
            Err(err) => {
                named_err.get_or_insert(err);
                None
            }
        }
    };
    for name in [&b".gopclntab"[..], b".data.rel.ro.gopclntab"] {
        if let Some(s) = e.section(name)
            && e.section_data(&s).is_some()
            && let Some(l) = try_loc(Loc {
                off: s.offset as usize,
                len: s.size as usize,
                va: s.addr,
                exact: true,
            })
        {
            return Ok(l);
        }
    }
    let [start, end] = e.symbols([b"runtime.pclntab", b"runtime.epclntab"]);
    if let (Some(start), Some(end)) = (start, end)
        && end > start
        && let Some(b) = e.va_bytes(start, end - start)
        && let Some(l) = try_loc(Loc {
            off: b.as_ptr() as usize - e.data.as_ptr() as usize,
            len: b.len(),
            va: start,
            exact: true,
        })
    {
        return Ok(l);
    }
    // Scan non-executable PT_LOAD segments for a valid header (§2.2).
    let mut first_err = None;
    for s in e.segs.iter().filter(|s| s.flags & object::elf::PF_X == 0) {
        let Some(seg) = elf::va_tail(e.data, &e.segs, s.vaddr) else {
            continue;
        };
        let seg_off = seg.as_ptr() as usize - e.data.as_ptr() as usize;
        let mut i = (8 - (s.vaddr % 8) as usize) % 8;
        while i + 8 <= seg.len() {
            let b = &seg[i..i + 8];
            if b[1] == 0xff
                && b[2] == 0xff
                && b[3] == 0xff
                && matches!(b[0], 0xfb | 0xfa | 0xf0 | 0xf1)
                && b[4] == 0
                && b[5] == 0
                && b[7] == 8
                && matches!(b[6], 1 | 4)
            {
                match Header::parse(&seg[i..], true) {
                    Ok(_) => {
                        return Ok(Loc {
                            off: seg_off + i,
                            len: seg.len() - i,
                            va: s.vaddr.wrapping_add(i as u64),
                            exact: false,
                        });
                    }
                    Err(err) => {
                        first_err.get_or_insert(err);
                    }
                }
            }
            i += 8;
        }
    }
    Err(named_err.or(first_err).unwrap_or(Error::NoPclntab))
}

/// Finds `runtime.firstmoduledata` (§2.4): `.go.module`, else a pointer-aligned word equal to
/// the pclntab address in writable segments, else a RELATIVE relocation with that addend;
/// validated by `funcnametab.ptr` (+8) and `cutab.ptr` (+32).
pub(super) fn find_moduledata(e: &elf::Elf<'_>, loc: &Loc, hd: &Header) -> Option<u64> {
    let fnt = loc.va.wrapping_add(hd.funcname_off as u64);
    let cut = loc.va.wrapping_add(hd.cu_off as u64);
    let valid = |md: u64| {
        e.word_reloc(md) == Some(loc.va)
            && e.word_reloc(md.wrapping_add(8)) == Some(fnt)
            && e.word_reloc(md.wrapping_add(32)) == Some(cut)
    };
    if let Some(s) = e.section(b".go.module")
        && valid(s.addr)
    {
        return Some(s.addr);
    }
    for s in e.segs.iter().filter(|s| s.flags & object::elf::PF_W != 0) {
        let Some(seg) = elf::va_tail(e.data, &e.segs, s.vaddr) else {
            continue;
        };
        let mut i = (8 - (s.vaddr % 8) as usize) % 8;
        while i + 8 <= seg.len() {
            if rd_u64(seg, i) == Some(loc.va) && valid(s.vaddr.wrapping_add(i as u64)) {
                return Some(s.vaddr.wrapping_add(i as u64));
            }
            i += 8;
        }
    }
    let mut found = None;
    e.for_each_relative(|off, add| {
        if add == loc.va && valid(off) {
            found = Some(off);
            true
        } else {
            false
        }
    });
    found
}

/// `moduledata.gofunc` (§2.4): for 1.26+ the word before `epclntab` (located by value),
/// else at the per-version offset ([`Facts::md_gofunc`](super::version::Facts)).
pub(super) fn gofunc_from_moduledata(
    e: &elf::Elf<'_>,
    md: u64,
    loc: &Loc,
    family: Family,
    version: Option<(u32, u32)>,
) -> Option<u64> {
    let minor = go1_minor(version);
    let f = facts_for(family, version, false, false);
    let maybe_in_pclntab = match minor {
        Some(_) => f.md_epclntab_word.is_some(),
        None => family == Family::Go120 && e.section(b".go.module").is_some(),
    };
    if maybe_in_pclntab && loc.exact {
        // `gofunc` lies inside the pclntab and is the word before `epclntab`. Other words can
        // equal epclntab too (1.27 `types` when .go.type follows the table), so the expected
        // index is tried first and the preceding word must point into the table.
        let epc = loc.va.wrapping_add(loc.len as u64);
        let expected = f
            .md_epclntab_word
            .or(facts(GOFUNC_IN_PCLNTAB).md_epclntab_word)
            .unwrap_or(0);
        let others = (30..=60u64).rev().filter(|&k| k != expected);
        for k in std::iter::once(expected).chain(others) {
            if e.word_reloc(md.wrapping_add(8 * k)) == Some(epc)
                && let Some(g) = e.word_reloc(md.wrapping_add(8 * (k - 1)))
                && g >= loc.va
                && g < epc
            {
                return Some(g);
            }
        }
    }
    e.word_reloc(md.wrapping_add(f.md_gofunc))
}

impl<D: AsRef<[u8]>> GoTable<D> {
    /// Parses an ELF file image (the whole file); see the module docs.
    pub fn parse(data: D) -> Result<Self> {
        let bytes = data.as_ref();
        let e = elf::Elf::parse(bytes)?;
        let loc = locate_pclntab(&e)?;
        let tab = &bytes[loc.off..loc.off + loc.len];
        let hd = Header::parse(tab, false)?;
        let version = crate::symbolize::buildinfo::go_version_elf(&e)
            .as_deref()
            .and_then(parse_go_version);
        if (hd.quantum == 1) != (e.machine == object::elf::EM_X86_64) {
            return Err(Error::Unsupported {
                what: "PC quantum for this machine",
                value: u64::from(hd.quantum),
            });
        }
        let legacy = hd.family == Family::Go12 && version.is_none() && go12_legacy_tail(tab, &hd);
        let layout = layout_for(hd.family, version, legacy, true);
        let exec: Vec<Seg> = e
            .segs
            .iter()
            .copied()
            .filter(|s| s.flags & object::elf::PF_X != 0)
            .collect();
        let first_entryoff = match hd.family {
            Family::Go118 | Family::Go120 => u64::from(rd_u32(tab, hd.ftab_off).unwrap_or(0)),
            _ => 0,
        };
        let valid_text = |t: u64| -> bool {
            t != 0
                && (exec.is_empty()
                    || t.checked_add(first_entryoff).is_some_and(|a| {
                        exec.iter().any(|s| a >= s.vaddr && a - s.vaddr < s.filesz)
                    }))
        };
        let mut md: Option<Option<u64>> = None;
        let mut moduledata =
            |e: &elf::Elf<'_>| *md.get_or_insert_with(|| find_moduledata(e, &loc, &hd));
        let text_start = match hd.family {
            Family::Go12 | Family::Go116 => rd_u64(tab, hd.ftab_off).unwrap_or(0),
            Family::Go118 | Family::Go120 => {
                let mut ts = Some(hd.text_start).filter(|&t| valid_text(t));
                if ts.is_none() {
                    ts = e
                        .relative_addend(loc.va.wrapping_add(8 + 16))
                        .filter(|&t| valid_text(t));
                }
                if ts.is_none() {
                    let [t] = e.symbols([b"runtime.text"]);
                    ts = t.filter(|&t| valid_text(t));
                }
                if ts.is_none() {
                    ts = moduledata(&e)
                        .and_then(|m| e.word_reloc(m.wrapping_add(MD_TEXT)))
                        .filter(|&t| valid_text(t));
                }
                ts.ok_or(Error::NoTextStart)?
            }
        };
        let gofunc = match hd.family {
            Family::Go12 | Family::Go116 => None,
            Family::Go118 | Family::Go120 => {
                let mut g = moduledata(&e)
                    .and_then(|m| gofunc_from_moduledata(&e, m, &loc, hd.family, version));
                if g.is_none() {
                    let [a, b] = e.symbols([b"go:func.*", b"go.func.*"]);
                    g = a.or(b);
                }
                g.filter(|&g| e.va_bytes(g, 1).is_some())
            }
        };
        let segs = e.segs.clone();
        Ok(Self::assemble(
            data, loc.off, loc.len, loc.va, hd, layout, text_start, gofunc, segs, version,
        ))
    }
}
