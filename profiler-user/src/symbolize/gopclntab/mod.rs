//! Reader for Go's `pclntab` (Go 1.2 → 1.27): function table, names, files, lines, SP deltas
//! and inline trees, over the bytes of an ELF file (or a raw table for tests).
//!
//! Format reference: `docs/gopclntab.md` (§ numbers below refer to it). Everything is read
//! lazily from the file image; [`GoTable::parse`] only decodes headers and locates the table,
//! the text base and `gofunc`. Every read is bounds-checked and bad input gives an [`Error`].
//!
//! Supported: 64-bit little-endian tables (amd64, arm64), magics 0xfffffffb (1.2–1.15),
//! 0xfffffffa (1.16–1.17), 0xfffffff0 (1.18–1.19) and 0xfffffff1 (1.20–1.27).
//!
//! Go 1.2–1.15 share one magic but two `_func` tails (≤1.11: `nfuncdata i32`; 1.12–1.15:
//! `funcID u8, pad[2], nfuncdata u8`) and three inline-tree conventions. The Go version from
//! `.go.buildinfo` (1.13+) or `runtime.buildVersion` decides; without it the heuristic is:
//! the 1.12 tail stores `nfuncdata` in the word's top byte, which is nonzero for nearly every
//! Go function, while the ≤1.11 `nfuncdata i32` never has a nonzero top byte. So if any of
//! up to 64 sampled functions has a nonzero top byte the table is 1.12–1.15, else ≤1.11
//! (inline records of 1.9–1.11). A 1.12–1.15 ELF without buildinfo is taken to be 1.12
//! (buildinfo exists from 1.13 on); a raw table without a version ([`GoTable::from_pclntab`])
//! is taken to be 1.13–1.15 unless [`GoTable::with_go_version`] says otherwise.

mod cache;
pub(crate) mod elf;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::OnceLock;

use elf::Seg;

/// Errors of the pclntab reader. Offsets are relative to the start of the pclntab unless the
/// variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an ELF file")]
    NotElf,
    #[error("no Go pclntab found")]
    NoPclntab,
    #[error("unsupported {what}: {value:#x}")]
    Unsupported { what: &'static str, value: u64 },
    #[error("truncated {what} at offset {offset:#x}")]
    Truncated { what: &'static str, offset: u64 },
    #[error("bad {what} offset {offset:#x}")]
    BadOffset { what: &'static str, offset: u64 },
    #[error("corrupt pclntab: {what} ({value:#x})")]
    Corrupt { what: &'static str, value: u64 },
    #[error("string at offset {offset:#x} is not UTF-8")]
    BadUtf8 { offset: u64 },
    #[error("cannot determine the Go text start (runtime.text)")]
    NoTextStart,
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// pclntab format family, by magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// 0xfffffffb: Go 1.2–1.15.
    Go12,
    /// 0xfffffffa: Go 1.16–1.17.
    Go116,
    /// 0xfffffff0: Go 1.18–1.19.
    Go118,
    /// 0xfffffff1: Go 1.20–1.27.
    Go120,
}

/// What kind of PC is being symbolized (§4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PcKind {
    /// The exact interrupted PC of the innermost frame: looked up as is.
    Leaf,
    /// A return address: looked up at `pc - 1` unless `pc` is the function entry.
    Return,
    /// The frame above an injected call (`sigpanic`, `asyncPreempt`): looked up as is.
    AfterInjectedCall,
}

/// `_func.flag` bits (Go 1.17+; 0 before).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FuncFlags(pub u8);

impl FuncFlags {
    pub fn top_frame(self) -> bool {
        self.0 & 1 != 0
    }
    pub fn sp_write(self) -> bool {
        self.0 & 2 != 0
    }
    pub fn asm(self) -> bool {
        self.0 & 4 != 0
    }
}

/// One physical Go function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncInfo<'a> {
    /// Index in the function table.
    pub index: usize,
    pub entry: u64,
    /// Entry of the next function (or the table end): padding belongs to this function.
    pub end: u64,
    /// Raw name as stored (generic shapes not rewritten).
    pub name: &'a str,
    /// Line of the `func` keyword; 0 before Go 1.20.
    pub start_line: u32,
    pub flags: FuncFlags,
    /// `_func.funcID` (0 for Go ≤ 1.11). Numbering changes between versions.
    pub func_id: u8,
    /// Maximum SP delta of the pcsp table (the frame size).
    pub frame_size: u32,
    /// Argument size in bytes.
    pub args: u32,
    /// True when the function has a pcsp table (false for C/external functions).
    pub has_pcsp: bool,
}

/// One logical frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Function name as the runtime prints it (generic shapes → `[...]`).
    pub function: Cow<'a, str>,
    /// Source file, `"?"` when unknown.
    pub file: &'a str,
    /// Line, 0 when unknown.
    pub line: u32,
    /// Line of the `func` keyword (Go 1.20+), else 0.
    pub start_line: u32,
    /// Entry of the physical function containing the PC.
    pub entry: u64,
    /// True for frames that were inlined into the physical function.
    pub inlined: bool,
}

/// Inline-tree record layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inl {
    /// Before Go 1.9 (or unknown): no inline trees are read.
    None,
    /// Go 1.9–1.11: `{parent, file, line, func_}` i32 each, walked through `parent`.
    Old16,
    /// Go 1.12–1.19: `{parent i16, funcID u8, pad, file, line, func_, parentPc}`.
    Rec20,
    /// Go 1.20+: `{funcID u8, pad[3], nameOff, parentPc, startLine}`.
    Rec16,
}

/// Per-version details the magic does not reveal.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// `_func` size before the pcdata array.
    func_size: usize,
    /// Go 1.2–1.11 `_func` tail (`nfuncdata i32`, no funcID).
    legacy_tail: bool,
    pcdata_inl: u32,
    funcdata_inl: u32,
    inl: Inl,
}

const MAGIC_12: u32 = 0xffff_fffb;
const MAGIC_116: u32 = 0xffff_fffa;
const MAGIC_118: u32 = 0xffff_fff0;
const MAGIC_120: u32 = 0xffff_fff1;
/// Inline depth beyond which a tree is considered cyclic/corrupt.
const MAX_INLINE_DEPTH: usize = 4096;

/// A Go pclntab over the bytes `D` of an ELF file (or of a raw table).
pub struct GoTable<D: AsRef<[u8]>> {
    data: D,
    /// The pclntab: `data[tab_off..tab_off + tab_len]`, at virtual address `tab_va`.
    tab_off: usize,
    tab_len: usize,
    tab_va: u64,
    family: Family,
    quantum: u8,
    layout: Layout,
    nfunc: usize,
    // Region offsets inside the table (1.16+; Go 1.2–1.15 uses the whole table).
    funcname_off: usize,
    cu_off: usize,
    filetab_off: usize,
    pctab_off: usize,
    /// Function table (functab) start.
    ftab_off: usize,
    /// Base of `_func` offsets in functab.
    funcoff_base: usize,
    /// Go 1.2–1.15: number of filetab entries (entry 0 is the count).
    nfiletab: u32,
    text_start: u64,
    gofunc: Option<u64>,
    /// PT_LOAD segments for virtual address → file offset (funcdata, inline trees).
    segs: Vec<Seg>,
    go_version: Option<(u32, u32)>,
    wrapper_id: OnceLock<Option<u8>>,
    /// Per-function decoded tables, filled lazily (see `cache.rs`).
    cache: cache::FuncCache,
}

// ---- little helpers -------------------------------------------------------------------------

#[inline]
fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline]
fn rd_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

#[inline]
fn trunc(what: &'static str, off: usize) -> Error {
    Error::Truncated {
        what,
        offset: off as u64,
    }
}

/// Reads a LEB128 varint of at most 5 bytes (a `uint32`, as the runtime's `readvarint`).
#[inline]
fn uvarint(b: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Parses "go1.21.13", "devel go1.22-abc", "go1.9" … into (major, minor).
pub(crate) fn parse_go_version(v: &str) -> Option<(u32, u32)> {
    let i = v.find("go1")?;
    let rest = &v[i + 2..];
    let mut it = rest.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The Go 1.27 runtime's `funcNameForPrint`: `pkg.F[go.shape.int,…].m` → `pkg.F[...].m`,
/// and for a generic method of a generic type `pkg.(*T[…]).M[…]` → `pkg.(*T[...]).M[...]`.
pub fn name_for_print(name: &str) -> Cow<'_, str> {
    let Some((i, j)) = outer_brackets(name) else {
        return Cow::Borrowed(name);
    };
    let interior = &name[i + 1..j];
    if !interior.contains('[') {
        return Cow::Owned(format!("{}[...]{}", &name[..i], &name[j + 1..]));
    }
    // Generic method of generic type: expect interior "…]___[…".
    let mut depth = 1i32;
    let (mut rbr, mut lbr) = (None, None);
    for (k, c) in interior.bytes().enumerate() {
        if c == b'[' {
            depth += 1;
            if depth != 1 {
                continue;
            }
            lbr = Some(k);
            break;
        }
        if c == b']' {
            depth -= 1;
            if depth < 0 {
                break;
            }
            if depth != 0 {
                continue;
            }
            rbr = Some(k);
        }
    }
    if depth == 1 {
        match (rbr, lbr) {
            (Some(r), Some(l)) if l > r => {
                return Cow::Owned(format!(
                    "{}[...]{}[...]{}",
                    &name[..i],
                    &interior[r + 1..l],
                    &name[j + 1..]
                ));
            }
            (None, None) => return Cow::Owned(format!("{}[...]{}", &name[..i], &name[j + 1..])),
            _ => {}
        }
    }
    Cow::Borrowed(name)
}

/// The Go 1.20–1.26 runtime's `funcNameForPrint`: first `[` to last `]` → `[...]`.
pub fn name_for_print_go120(name: &str) -> Cow<'_, str> {
    match outer_brackets(name) {
        Some((i, j)) => Cow::Owned(format!("{}[...]{}", &name[..i], &name[j + 1..])),
        None => Cow::Borrowed(name),
    }
}

/// First `[` and last `]`, if the latter follows the former.
fn outer_brackets(name: &str) -> Option<(usize, usize)> {
    let i = name.find('[')?;
    let j = name.rfind(']')?;
    (j > i).then_some((i, j))
}

fn is_panic_callee(name: &str) -> bool {
    matches!(
        name,
        "runtime.gopanic" | "runtime.sigpanic" | "runtime.panicwrap"
    )
}

/// Parsed pcHeader values.
#[derive(Clone, Copy, Debug)]
struct Header {
    family: Family,
    quantum: u8,
    nfunc: usize,
    nfiles: u64,
    text_start: u64,
    funcname_off: usize,
    cu_off: usize,
    filetab_off: usize,
    pctab_off: usize,
    ftab_off: usize,
    funcoff_base: usize,
    nfiletab: u32,
}

impl Header {
    /// Decodes and validates the header of `tab`. `strict` (for scan candidates) additionally
    /// requires strictly increasing region offsets, monotonic functab entries and a matching
    /// first `_func`.
    fn parse(tab: &[u8], strict: bool) -> Result<Header> {
        let magic_le = rd_u32(tab, 0).ok_or(trunc("pclntab header", 0))?;
        let family = match magic_le {
            MAGIC_12 => Family::Go12,
            MAGIC_116 => Family::Go116,
            MAGIC_118 => Family::Go118,
            MAGIC_120 => Family::Go120,
            _ => {
                let be = u32::from_be_bytes([tab[0], tab[1], tab[2], tab[3]]);
                if matches!(be, MAGIC_12 | MAGIC_116 | MAGIC_118 | MAGIC_120) {
                    return Err(Error::Unsupported {
                        what: "big-endian pclntab",
                        value: u64::from(be),
                    });
                }
                return Err(Error::Unsupported {
                    what: "pclntab magic",
                    value: u64::from(magic_le),
                });
            }
        };
        let h = tab.get(4..8).ok_or(trunc("pclntab header", 4))?;
        if h[0] != 0 || h[1] != 0 {
            return Err(Error::Corrupt {
                what: "pclntab header pad bytes",
                value: u64::from(h[0]) << 8 | u64::from(h[1]),
            });
        }
        let (quantum, ptr) = (h[2], h[3]);
        if ptr != 8 {
            return Err(Error::Unsupported {
                what: "pointer size",
                value: u64::from(ptr),
            });
        }
        if quantum != 1 && quantum != 4 {
            return Err(Error::Unsupported {
                what: "PC quantum",
                value: u64::from(quantum),
            });
        }
        let word = |i: usize| rd_u64(tab, 8 + 8 * i).ok_or(trunc("pclntab header", 8 + 8 * i));
        let len = tab.len() as u64;
        let off = |v: u64, what: &'static str| -> Result<usize> {
            if v >= len {
                return Err(Error::BadOffset { what, offset: v });
            }
            Ok(v as usize)
        };
        let nfunc_raw = word(0)?;
        let mut hd = Header {
            family,
            quantum,
            nfunc: 0,
            nfiles: 0,
            text_start: 0,
            funcname_off: 0,
            cu_off: 0,
            filetab_off: 0,
            pctab_off: 0,
            ftab_off: 0,
            funcoff_base: 0,
            nfiletab: 0,
        };
        let entsize: u64;
        match family {
            Family::Go12 => {
                entsize = 16;
                hd.ftab_off = 16;
                // nfunc pairs + end PC + u32 filetaboff.
                let need = nfunc_raw
                    .checked_mul(16)
                    .and_then(|v| v.checked_add(16 + 8 + 4));
                if need.is_none_or(|n| n > len) {
                    return Err(Error::Corrupt {
                        what: "function count exceeds table",
                        value: nfunc_raw,
                    });
                }
                hd.nfunc = nfunc_raw as usize;
                let fto = 16 + hd.nfunc * 16 + 8;
                let filetab = u64::from(rd_u32(tab, fto).ok_or(trunc("filetab offset", fto))?);
                hd.filetab_off = off(filetab, "filetab")?;
                let n = rd_u32(tab, hd.filetab_off).ok_or(trunc("filetab", hd.filetab_off))?;
                if u64::from(n) * 4 + filetab > len {
                    return Err(Error::Corrupt {
                        what: "file count exceeds table",
                        value: u64::from(n),
                    });
                }
                hd.nfiletab = n;
                hd.nfiles = u64::from(n.saturating_sub(1));
            }
            Family::Go116 | Family::Go118 | Family::Go120 => {
                let base = if family == Family::Go116 { 2 } else { 3 };
                if family != Family::Go116 {
                    hd.text_start = word(2)?;
                }
                hd.nfiles = word(1)?;
                hd.funcname_off = off(word(base)?, "funcnametab")?;
                hd.cu_off = off(word(base + 1)?, "cutab")?;
                hd.filetab_off = off(word(base + 2)?, "filetab")?;
                hd.pctab_off = off(word(base + 3)?, "pctab")?;
                hd.ftab_off = off(word(base + 4)?, "functab")?;
                hd.funcoff_base = hd.ftab_off;
                let hdr_end = 8 + 8 * (base + 5);
                let o = [
                    hdr_end,
                    hd.funcname_off,
                    hd.cu_off,
                    hd.filetab_off,
                    hd.pctab_off,
                    hd.ftab_off,
                ];
                let ordered = if strict {
                    o.windows(2)
                        .all(|w| w[0] < w[1] || (w[0] == hdr_end && w[1] == hdr_end))
                } else {
                    o.windows(2).all(|w| w[0] <= w[1])
                };
                if !ordered {
                    return Err(Error::Corrupt {
                        what: "pclntab region offsets out of order",
                        value: hd.funcname_off as u64,
                    });
                }
                entsize = if family == Family::Go116 { 16 } else { 8 };
                let need = nfunc_raw
                    .checked_add(1)
                    .and_then(|n| n.checked_mul(entsize))
                    .and_then(|n| n.checked_add(hd.ftab_off as u64));
                if need.is_none_or(|n| n > len) {
                    return Err(Error::Corrupt {
                        what: "function count exceeds table",
                        value: nfunc_raw,
                    });
                }
                hd.nfunc = nfunc_raw as usize;
            }
        }
        if strict {
            // functab monotonic, first _func matches.
            let ent = |i: usize| -> Option<u64> {
                let o = hd.ftab_off + i * entsize as usize;
                if entsize == 16 {
                    rd_u64(tab, o)
                } else {
                    rd_u32(tab, o).map(u64::from)
                }
            };
            if hd.nfunc == 0 {
                return Err(Error::Corrupt {
                    what: "empty function table",
                    value: 0,
                });
            }
            let mut prev = 0;
            for i in 0..=hd.nfunc {
                let e = ent(i).ok_or(trunc("functab", hd.ftab_off))?;
                if e < prev {
                    return Err(Error::Corrupt {
                        what: "functab not sorted",
                        value: i as u64,
                    });
                }
                prev = e;
            }
            let fo = hd.ftab_off + entsize as usize / 2;
            let funcoff = if entsize == 16 {
                rd_u64(tab, fo)
            } else {
                rd_u32(tab, fo).map(u64::from)
            };
            let fstart = funcoff
                .and_then(|f| f.checked_add(hd.funcoff_base as u64))
                .ok_or(trunc("functab", fo))?;
            let first = usize::try_from(fstart).ok().and_then(|f| {
                if entsize == 16 {
                    rd_u64(tab, f)
                } else {
                    rd_u32(tab, f).map(u64::from)
                }
            });
            if first != ent(0) {
                return Err(Error::Corrupt {
                    what: "first _func does not match functab",
                    value: fstart,
                });
            }
        }
        Ok(hd)
    }
}

fn layout_for(
    family: Family,
    version: Option<(u32, u32)>,
    legacy_tail: bool,
    assume_112: bool,
) -> Layout {
    match family {
        Family::Go12 => {
            let minor = version.filter(|v| v.0 == 1).map(|v| v.1);
            let legacy = match minor {
                Some(m) => m < 12,
                None => legacy_tail,
            };
            if legacy {
                let inl = if minor.is_some_and(|m| m < 9) {
                    Inl::None
                } else {
                    Inl::Old16
                };
                Layout {
                    func_size: 40,
                    legacy_tail: true,
                    pcdata_inl: 1,
                    funcdata_inl: 2,
                    inl,
                }
            } else {
                let is112 = match minor {
                    Some(m) => m == 12,
                    None => assume_112,
                };
                let (p, f) = if is112 { (1, 2) } else { (2, 4) };
                Layout {
                    func_size: 40,
                    legacy_tail: false,
                    pcdata_inl: p,
                    funcdata_inl: f,
                    inl: Inl::Rec20,
                }
            }
        }
        Family::Go116 => Layout {
            func_size: 44,
            legacy_tail: false,
            pcdata_inl: 2,
            funcdata_inl: 3,
            inl: Inl::Rec20,
        },
        Family::Go118 => Layout {
            func_size: 40,
            legacy_tail: false,
            pcdata_inl: 2,
            funcdata_inl: 3,
            inl: Inl::Rec20,
        },
        Family::Go120 => Layout {
            func_size: 44,
            legacy_tail: false,
            pcdata_inl: 2,
            funcdata_inl: 3,
            inl: Inl::Rec16,
        },
    }
}

/// Heuristic for Go 1.2–1.15 tables of unknown version: true if the `_func` tail is the
/// ≤1.11 one (see the module docs).
fn go12_legacy_tail(tab: &[u8], hd: &Header) -> bool {
    let n = hd.nfunc;
    if n == 0 {
        return false;
    }
    let samples = n.min(64);
    for k in 0..samples {
        let i = k * n / samples;
        let Some(fo) = rd_u64(tab, hd.ftab_off + i * 16 + 8) else {
            continue;
        };
        let Some(w) = usize::try_from(fo)
            .ok()
            .and_then(|f| rd_u32(tab, f.checked_add(8 + 28)?))
        else {
            continue;
        };
        if w >> 24 != 0 {
            return false;
        }
    }
    true
}

/// Raw `_func` fields.
#[derive(Clone, Copy, Debug)]
struct RawFunc {
    /// Offset of the `_func` in the table.
    off: usize,
    entry: u64,
    nameoff: u32,
    args: u32,
    pcsp: u32,
    pcfile: u32,
    pcln: u32,
    npcdata: u32,
    cu_offset: u32,
    start_line: i32,
    func_id: u8,
    flag: u8,
    nfuncdata: u32,
}

/// One inline-tree record, normalized.
#[derive(Clone, Copy, Debug)]
struct InlRec {
    func_id: u8,
    nameoff: u32,
    parent_pc: i32,
    start_line: i32,
    // Go 1.9–1.11 only:
    parent: i32,
    file: i32,
    line: i32,
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
                        .and_then(|m| e.word_reloc(m.wrapping_add(176)))
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

    /// Same as [`GoTable::parse`] but over a raw pclntab blob. The blob is treated as mapped at
    /// virtual address 0, so `gofunc` (1.18+) and the absolute funcdata pointers of ≤1.17
    /// tables are offsets into `data`. `text_start` is used for 1.18+ tables (0: take the
    /// header value). Go 1.2–1.15 version details: see the module docs and
    /// [`GoTable::with_go_version`].
    pub fn from_pclntab(data: D, text_start: u64, gofunc: Option<u64>) -> Result<Self> {
        let bytes = data.as_ref();
        let hd = Header::parse(bytes, false)?;
        let legacy = hd.family == Family::Go12 && go12_legacy_tail(bytes, &hd);
        let layout = layout_for(hd.family, None, legacy, false);
        let ts = match hd.family {
            Family::Go12 | Family::Go116 => rd_u64(bytes, hd.ftab_off).unwrap_or(0),
            _ if text_start != 0 => text_start,
            _ => hd.text_start,
        };
        let segs = vec![Seg {
            vaddr: 0,
            offset: 0,
            filesz: bytes.len() as u64,
            flags: 0,
        }];
        let len = bytes.len();
        let gofunc = if matches!(hd.family, Family::Go118 | Family::Go120) {
            gofunc
        } else {
            None
        };
        Ok(Self::assemble(
            data, 0, len, 0, hd, layout, ts, gofunc, segs, None,
        ))
    }

    /// Sets the Go version (e.g. "go1.14"), which selects the Go 1.2–1.15 `_func` tail, the
    /// inline-tree indices and the wrapper funcID.
    pub fn with_go_version(mut self, version: &str) -> Self {
        self.go_version = parse_go_version(version);
        if self.go_version.is_some() {
            self.layout = layout_for(self.family, self.go_version, self.layout.legacy_tail, false);
        }
        self.wrapper_id = OnceLock::new();
        self.cache = cache::FuncCache::new(self.nfunc);
        self
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        data: D,
        tab_off: usize,
        tab_len: usize,
        tab_va: u64,
        hd: Header,
        layout: Layout,
        text_start: u64,
        gofunc: Option<u64>,
        segs: Vec<Seg>,
        go_version: Option<(u32, u32)>,
    ) -> Self {
        GoTable {
            data,
            tab_off,
            tab_len,
            tab_va,
            family: hd.family,
            quantum: hd.quantum,
            layout,
            nfunc: hd.nfunc,
            funcname_off: hd.funcname_off,
            cu_off: hd.cu_off,
            filetab_off: hd.filetab_off,
            pctab_off: hd.pctab_off,
            ftab_off: hd.ftab_off,
            funcoff_base: hd.funcoff_base,
            nfiletab: hd.nfiletab,
            text_start,
            gofunc,
            segs,
            go_version,
            wrapper_id: OnceLock::new(),
            cache: cache::FuncCache::new(hd.nfunc),
        }
    }

    // ---- accessors ----------------------------------------------------------------------

    pub fn version_family(&self) -> Family {
        self.family
    }
    pub fn ptr_size(&self) -> u8 {
        8
    }
    pub fn quantum(&self) -> u8 {
        self.quantum
    }
    /// Link-time address of `runtime.text` (1.18+), or the first function entry (≤1.17).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }
    pub fn func_count(&self) -> usize {
        self.nfunc
    }
    /// `moduledata.gofunc` (1.18+), if found: base of funcdata (inline trees).
    pub fn gofunc(&self) -> Option<u64> {
        self.gofunc
    }
    /// The Go version (major, minor) from buildinfo / `runtime.buildVersion`, if known.
    pub fn go_version(&self) -> Option<(u32, u32)> {
        self.go_version
    }
    /// Whether inline trees can be read (false before Go 1.9, or 1.18+ without `gofunc`).
    pub fn inline_available(&self) -> bool {
        self.layout.inl != Inl::None
            && (self.gofunc.is_some() || matches!(self.family, Family::Go12 | Family::Go116))
    }
    /// `[first function entry, end of the last function)`.
    pub fn text_range(&self) -> (u64, u64) {
        match (self.ftab_entry(0), self.ftab_entry(self.nfunc)) {
            (Ok(a), Ok(b)) if self.nfunc > 0 => (a, b),
            _ => (0, 0),
        }
    }
    /// Entry PC of function `index` (`index == func_count()` gives the table end).
    pub fn func_entry(&self, index: usize) -> Result<u64> {
        if index > self.nfunc {
            return Err(Error::BadOffset {
                what: "function index",
                offset: index as u64,
            });
        }
        self.ftab_entry(index)
    }

    #[inline]
    fn tab(&self) -> &[u8] {
        self.data
            .as_ref()
            .get(self.tab_off..self.tab_off.saturating_add(self.tab_len))
            .unwrap_or(&[])
    }

    #[inline]
    fn wide_ftab(&self) -> bool {
        matches!(self.family, Family::Go12 | Family::Go116)
    }

    #[inline]
    fn ftab_entry(&self, i: usize) -> Result<u64> {
        let tab = self.tab();
        if self.wide_ftab() {
            let o = self.ftab_off + i * 16;
            rd_u64(tab, o).ok_or(trunc("functab", o))
        } else {
            let o = self.ftab_off + i * 8;
            let v = rd_u32(tab, o).ok_or(trunc("functab", o))?;
            self.text_start
                .checked_add(u64::from(v))
                .ok_or(Error::Corrupt {
                    what: "entry address overflow",
                    value: u64::from(v),
                })
        }
    }

    /// Index of the function containing `pc` (padding belongs to the preceding function).
    fn find(&self, pc: u64) -> Result<Option<usize>> {
        if self.nfunc == 0 {
            return Ok(None);
        }
        if pc < self.ftab_entry(0)? || pc >= self.ftab_entry(self.nfunc)? {
            return Ok(None);
        }
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.ftab_entry(mid)? <= pc {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some(lo))
    }

    fn raw_func(&self, index: usize) -> Result<RawFunc> {
        let tab = self.tab();
        let l = &self.layout;
        let (entry, funcoff, fentry) = if self.wide_ftab() {
            let o = self.ftab_off + index * 16;
            let fo = rd_u64(tab, o + 8).ok_or(trunc("functab", o))?;
            let off = fo
                .checked_add(self.funcoff_base as u64)
                .ok_or(Error::BadOffset {
                    what: "_func",
                    offset: fo,
                })?;
            let off = usize::try_from(off).map_err(|_| Error::BadOffset {
                what: "_func",
                offset: fo,
            })?;
            let e = rd_u64(tab, o).ok_or(trunc("functab", o))?;
            (
                e,
                off,
                rd_u64(tab, off).ok_or(Error::BadOffset {
                    what: "_func",
                    offset: off as u64,
                })?,
            )
        } else {
            let o = self.ftab_off + index * 8;
            let eo = rd_u32(tab, o).ok_or(trunc("functab", o))?;
            let fo = rd_u32(tab, o + 4).ok_or(trunc("functab", o))?;
            let off = self.funcoff_base + fo as usize;
            let fe = rd_u32(tab, off).ok_or(Error::BadOffset {
                what: "_func",
                offset: off as u64,
            })?;
            (u64::from(eo), off, u64::from(fe))
        };
        if fentry != entry {
            return Err(Error::Corrupt {
                what: "_func entry does not match functab",
                value: funcoff as u64,
            });
        }
        let entry = if self.wide_ftab() {
            entry
        } else {
            self.ftab_entry(index)?
        };
        let body = tab
            .get(
                funcoff
                    ..funcoff
                        .checked_add(l.func_size)
                        .ok_or(trunc("_func", funcoff))?,
            )
            .ok_or(trunc("_func", funcoff))?;
        let b = if self.wide_ftab() { 8 } else { 4 };
        let f32 = |k: usize| {
            u32::from_le_bytes([
                body[b + 4 * k],
                body[b + 4 * k + 1],
                body[b + 4 * k + 2],
                body[b + 4 * k + 3],
            ])
        };
        let mut r = RawFunc {
            off: funcoff,
            entry,
            nameoff: f32(0),
            args: f32(1),
            pcsp: f32(3),
            pcfile: f32(4),
            pcln: f32(5),
            npcdata: f32(6),
            cu_offset: 0,
            start_line: 0,
            func_id: 0,
            flag: 0,
            nfuncdata: 0,
        };
        match self.family {
            Family::Go12 => {
                if l.legacy_tail {
                    r.nfuncdata = f32(7);
                } else {
                    r.func_id = body[b + 28];
                    r.nfuncdata = u32::from(body[b + 31]);
                }
            }
            Family::Go116 | Family::Go118 => {
                r.cu_offset = f32(7);
                r.func_id = body[b + 32];
                r.flag = body[b + 33];
                r.nfuncdata = u32::from(body[b + 35]);
            }
            Family::Go120 => {
                r.cu_offset = f32(7);
                r.start_line = f32(8) as i32;
                r.func_id = body[b + 36];
                r.flag = body[b + 37];
                r.nfuncdata = u32::from(body[b + 39]);
            }
        }
        Ok(r)
    }

    /// pcdata[i] table offset (0 = none).
    fn pcdata(&self, f: &RawFunc, i: u32) -> Result<u32> {
        if i >= f.npcdata {
            return Ok(0);
        }
        let o = f.off + self.layout.func_size + 4 * i as usize;
        rd_u32(self.tab(), o).ok_or(trunc("pcdata", o))
    }

    /// funcdata[i] as a virtual address (None when absent).
    fn funcdata(&self, f: &RawFunc, i: u32) -> Result<Option<u64>> {
        if i >= f.nfuncdata {
            return Ok(None);
        }
        let base = (f.npcdata as usize)
            .checked_mul(4)
            .and_then(|n| n.checked_add(f.off + self.layout.func_size));
        let base = base.ok_or(trunc("funcdata", f.off))?;
        match self.family {
            Family::Go12 | Family::Go116 => {
                let mut p = base;
                if (self.tab_va.wrapping_add(p as u64)) & 4 != 0 {
                    p += 4;
                }
                let o = p + 8 * i as usize;
                let v = rd_u64(self.tab(), o).ok_or(trunc("funcdata", o))?;
                Ok((v != 0).then_some(v))
            }
            Family::Go118 | Family::Go120 => {
                let o = base + 4 * i as usize;
                let v = rd_u32(self.tab(), o).ok_or(trunc("funcdata", o))?;
                if v == u32::MAX {
                    return Ok(None);
                }
                Ok(self.gofunc.and_then(|g| g.checked_add(u64::from(v))))
            }
        }
    }

    /// Start offset and end (exclusive) of the pc-value table at `off`.
    #[inline]
    fn pctab_bounds(&self) -> (usize, usize) {
        match self.family {
            Family::Go12 => (0, self.tab_len),
            _ => (self.pctab_off, self.ftab_off),
        }
    }

    /// The runtime's `pcvalue`: value at `target`, None for "no table" or "not covered" (-1).
    fn pcvalue(&self, off: u32, entry: u64, target: u64) -> Result<Option<i32>> {
        if off == 0 {
            return Ok(None);
        }
        let (base, end) = self.pctab_bounds();
        let start =
            base.checked_add(off as usize)
                .filter(|&s| s < end)
                .ok_or(Error::BadOffset {
                    what: "pc-value table",
                    offset: u64::from(off),
                })?;
        let p = &self.tab()[start.min(self.tab().len())..end.min(self.tab().len())];
        let q = u64::from(self.quantum);
        let mut pos = 0usize;
        let mut val: i32 = -1;
        let mut pc = entry;
        let mut first = true;
        loop {
            let uv = uvarint(p, &mut pos).ok_or(trunc("pc-value table", start + pos))?;
            if uv == 0 && !first {
                return Ok(None);
            }
            let d = if uv & 1 != 0 { !(uv >> 1) } else { uv >> 1 };
            val = val.wrapping_add(d as i32);
            let pcd = uvarint(p, &mut pos).ok_or(trunc("pc-value table", start + pos))?;
            pc = match pc.checked_add(u64::from(pcd) * q) {
                Some(v) => v,
                None => return Ok(None),
            };
            if target < pc {
                return Ok(Some(val));
            }
            first = false;
        }
    }

    /// The runtime's `funcMaxSPDelta`.
    fn max_sp_delta(&self, f: &RawFunc) -> Result<i32> {
        if f.pcsp == 0 {
            return Ok(0);
        }
        let (base, end) = self.pctab_bounds();
        let start = base
            .checked_add(f.pcsp as usize)
            .filter(|&s| s < end)
            .ok_or(Error::BadOffset {
                what: "pcsp table",
                offset: u64::from(f.pcsp),
            })?;
        let tab = self.tab();
        let p = &tab[start.min(tab.len())..end.min(tab.len())];
        let q = u64::from(self.quantum);
        let (mut pos, mut val, mut most, mut pc) = (0usize, -1i32, 0i32, f.entry);
        loop {
            let first = pc == f.entry;
            let uv = uvarint(p, &mut pos).ok_or(trunc("pcsp table", start + pos))?;
            if uv == 0 && !first {
                return Ok(most);
            }
            let d = if uv & 1 != 0 { !(uv >> 1) } else { uv >> 1 };
            val = val.wrapping_add(d as i32);
            let pcd = uvarint(p, &mut pos).ok_or(trunc("pcsp table", start + pos))?;
            pc = pc.wrapping_add(u64::from(pcd) * q);
            most = most.max(val);
        }
    }

    /// NUL-terminated string at `off` in `[region, region_end)`.
    fn cstr(&self, region: usize, region_end: usize, off: u64) -> Result<&str> {
        let tab = self.tab();
        let start = usize::try_from(off)
            .ok()
            .and_then(|o| o.checked_add(region))
            .filter(|&s| s < region_end.min(tab.len()));
        let start = start.ok_or(Error::BadOffset {
            what: "string",
            offset: off,
        })?;
        let s = &tab[start..region_end.min(tab.len())];
        let n = s
            .iter()
            .position(|&b| b == 0)
            .ok_or(trunc("string", start))?;
        std::str::from_utf8(&s[..n]).map_err(|_| Error::BadUtf8 {
            offset: start as u64,
        })
    }

    /// Function name at a name offset (funcnametab in 1.16+, table start before).
    ///
    /// Deliberate deviation: the runtime's `funcName` returns "" for offset 0, but in 1.16+
    /// the linker stores the first function's name (e.g. `internal/abi.BoundsDecode` at
    /// `runtime.text`) at offset 0, and `go tool addr2line`/`debug/gosym` print it; so do we.
    /// Before 1.16 offset 0 is the table magic and gives "".
    fn name(&self, nameoff: u32) -> Result<&str> {
        match self.family {
            Family::Go12 if nameoff == 0 => Ok(""),
            Family::Go12 => self.cstr(0, self.tab_len, u64::from(nameoff)),
            _ => self.cstr(self.funcname_off, self.cu_off, u64::from(nameoff)),
        }
    }

    /// File name for a pcfile value (CU-relative in 1.16+, global before); "?" if unknown.
    fn file(&self, cu_offset: u32, fileno: i32) -> Result<&str> {
        if fileno < 0 {
            return Ok("?");
        }
        match self.family {
            Family::Go12 => {
                if fileno == 0 || fileno as u32 >= self.nfiletab {
                    return Ok("?");
                }
                let o = self.filetab_off + 4 * fileno as usize;
                let off = rd_u32(self.tab(), o).ok_or(trunc("filetab", o))?;
                self.cstr(0, self.tab_len, u64::from(off))
            }
            _ => {
                let idx = u64::from(cu_offset) + fileno as u64;
                let o = (self.cu_off as u64)
                    .checked_add(idx * 4)
                    .filter(|&o| o + 4 <= self.filetab_off as u64);
                let o = o.ok_or(Error::BadOffset {
                    what: "cutab index",
                    offset: idx,
                })? as usize;
                let off = rd_u32(self.tab(), o).ok_or(trunc("cutab", o))?;
                if off == u32::MAX {
                    return Ok("?");
                }
                self.cstr(self.filetab_off, self.pctab_off, u64::from(off))
            }
        }
    }

    /// The runtime's `funcline1`: ("?", 0) when file or line is unknown.
    fn file_line(&self, f: &RawFunc, pc: u64) -> Result<(&str, u32)> {
        let fileno = self.pcvalue(f.pcfile, f.entry, pc)?.unwrap_or(-1);
        let line = self.pcvalue(f.pcln, f.entry, pc)?.unwrap_or(-1);
        if fileno == -1 || line < 0 {
            return Ok(("?", 0));
        }
        Ok((self.file(f.cu_offset, fileno)?, line as u32))
    }

    fn inl_record(&self, tree: u64, ix: i32) -> Result<InlRec> {
        let size: u64 = match self.layout.inl {
            Inl::Rec20 => 20,
            _ => 16,
        };
        let va = tree.checked_add(ix as u64 * size).ok_or(Error::BadOffset {
            what: "inline tree",
            offset: tree,
        })?;
        let b =
            elf::va_bytes(self.data.as_ref(), &self.segs, va, size).ok_or(Error::BadOffset {
                what: "inline record (virtual address)",
                offset: va,
            })?;
        let i32_at = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut r = InlRec {
            func_id: 0,
            nameoff: 0,
            parent_pc: 0,
            start_line: 0,
            parent: -1,
            file: -1,
            line: -1,
        };
        match self.layout.inl {
            Inl::Rec16 => {
                r.func_id = b[0];
                r.nameoff = i32_at(4) as u32;
                r.parent_pc = i32_at(8);
                r.start_line = i32_at(12);
            }
            Inl::Rec20 => {
                r.parent = i32::from(i16::from_le_bytes([b[0], b[1]]));
                r.func_id = b[2];
                r.file = i32_at(4);
                r.line = i32_at(8);
                r.nameoff = i32_at(12) as u32;
                r.parent_pc = i32_at(16);
            }
            Inl::Old16 | Inl::None => {
                r.parent = i32_at(0);
                r.file = i32_at(4);
                r.line = i32_at(8);
                r.nameoff = i32_at(12) as u32;
            }
        }
        Ok(r)
    }

    /// FuncID of wrappers: by version for 1.19+, else the maximum funcID in the table
    /// (verified heuristic, §4.3). None when the table has no funcIDs (≤1.11).
    pub fn wrapper_func_id(&self) -> Option<u8> {
        *self.wrapper_id.get_or_init(|| {
            if self.layout.legacy_tail {
                return None;
            }
            if let Some((1, m)) = self.go_version {
                match m {
                    19..=21 => return Some(21),
                    22..=24 => return Some(22),
                    25..=27 => return Some(23),
                    _ => {}
                }
            }
            let mut max = 0u8;
            for i in 0..self.nfunc {
                if let Ok(f) = self.raw_func(i) {
                    max = max.max(f.func_id);
                }
            }
            (max > 0).then_some(max)
        })
    }

    /// What `go tool addr2line` (`debug/gosym` `PCToLine`) reports for `pc`, looked up as
    /// given: the raw name of the physical function, the innermost file (`""` when unknown)
    /// and line (-1 when unknown).
    pub fn pc_to_line(&self, pc: u64) -> Result<Option<(&str, &str, i32)>> {
        let Some(i) = self.find(pc)? else {
            return Ok(None);
        };
        if let Some(d) = self.decoded(i)
            && let Some(r) = self.pc_to_line_cached(d, pc)
        {
            return Ok(Some(r));
        }
        self.pc_to_line_uncached(i, pc)
    }

    /// The uncached `pc_to_line` for function `i` (also the fallback of the cache).
    fn pc_to_line_uncached(&self, i: usize, pc: u64) -> Result<Option<(&str, &str, i32)>> {
        let f = self.raw_func(i)?;
        let fileno = self.pcvalue(f.pcfile, f.entry, pc)?.unwrap_or(-1);
        let line = self.pcvalue(f.pcln, f.entry, pc)?.unwrap_or(-1);
        let file = match self.file(f.cu_offset, fileno)? {
            "?" => "",
            name => name,
        };
        Ok(Some((self.name(f.nameoff)?, file, line)))
    }

    /// A raw function name as the runtime of this binary prints it (`Frame.Function`):
    /// Go 1.18/1.19 linkers already stored `[...]`, so names are printed raw before 1.20;
    /// 1.20–1.26 and 1.27+ elide shapes differently (see [`name_for_print`]). An unknown
    /// 1.20+ version uses the 1.20–1.26 rule.
    pub fn print_name<'n>(&self, name: &'n str) -> Cow<'n, str> {
        match (self.family, self.go_version) {
            (Family::Go120, Some((1, m))) if m >= 27 => name_for_print(name),
            (Family::Go120, _) => name_for_print_go120(name),
            _ => Cow::Borrowed(name),
        }
    }

    /// The physical function containing `pc`.
    pub fn func_at(&self, pc: u64) -> Result<Option<FuncInfo<'_>>> {
        let Some(i) = self.find(pc)? else {
            return Ok(None);
        };
        if let Some(d) = self.decoded(i)
            && let Some(info) = self.func_at_cached(i, d)
        {
            return Ok(Some(info));
        }
        self.func_at_uncached(i)
    }

    /// The uncached `func_at` for function `i` (also the fallback of the cache).
    fn func_at_uncached(&self, i: usize) -> Result<Option<FuncInfo<'_>>> {
        let f = self.raw_func(i)?;
        Ok(Some(FuncInfo {
            index: i,
            entry: f.entry,
            end: self.ftab_entry(i + 1)?,
            name: self.name(f.nameoff)?,
            start_line: f.start_line.max(0) as u32,
            flags: FuncFlags(f.flag),
            func_id: f.func_id,
            frame_size: self.max_sp_delta(&f)?.max(0) as u32,
            args: f.args,
            has_pcsp: f.pcsp != 0,
        }))
    }

    /// SP delta from the pcsp table at exactly `pc`; None if `pc` is not Go code, the function
    /// has no pcsp table, or the table does not cover `pc`.
    pub fn sp_delta(&self, pc: u64) -> Result<Option<i32>> {
        let Some(i) = self.find(pc)? else {
            return Ok(None);
        };
        let f = self.raw_func(i)?;
        self.pcvalue(f.pcsp, f.entry, pc)
    }

    /// Symbolizes `pc`, pushing frames innermost first (see the module docs). Wrapper frames
    /// are elided as `runtime.tracebackPCs` does, assuming the callee of the innermost frame is
    /// an ordinary function; use [`GoTable::frames_with_callee`] to pass the real callee.
    pub fn frames<'a>(&'a self, pc: u64, kind: PcKind, out: &mut Vec<Frame<'a>>) -> Result<()> {
        self.frames_with_callee(pc, kind, None, out)
    }

    /// Like [`GoTable::frames`]; `callee` is the raw name of the physical function of the next
    /// inner frame of the same stack (None for the innermost frame). A wrapper frame is kept
    /// when its callee is `runtime.gopanic`, `runtime.sigpanic` or `runtime.panicwrap`.
    pub fn frames_with_callee<'a>(
        &'a self,
        pc: u64,
        kind: PcKind,
        callee: Option<&str>,
        out: &mut Vec<Frame<'a>>,
    ) -> Result<()> {
        let Some(i) = self.find(pc)? else {
            return Ok(());
        };
        if let Some(d) = self.decoded(i) {
            let start = out.len();
            if self.frames_cached(d, pc, kind, callee, out).is_some() {
                return Ok(());
            }
            out.truncate(start);
        }
        self.frames_uncached(i, pc, kind, callee, out)
    }

    /// The uncached `frames_with_callee` for function `i` (also the fallback of the cache).
    fn frames_uncached<'a>(
        &'a self,
        i: usize,
        pc: u64,
        kind: PcKind,
        callee: Option<&str>,
        out: &mut Vec<Frame<'a>>,
    ) -> Result<()> {
        let f = self.raw_func(i)?;
        let mut cur = pc;
        if kind == PcKind::Return && pc > f.entry {
            cur = pc - 1;
        }
        let mut elide = !callee.is_some_and(is_panic_callee);
        let wrapper = if self.layout.legacy_tail {
            None
        } else {
            self.wrapper_func_id()
        };
        let tree = if self.layout.inl != Inl::None {
            self.funcdata(&f, self.layout.funcdata_inl)?
        } else {
            None
        };
        let start = out.len();
        if let Some(tree) = tree {
            let ixtab = self.pcdata(&f, self.layout.pcdata_inl)?;
            if self.layout.inl == Inl::Old16 {
                // Go 1.9–1.11: walk `parent`; caller positions come from the records.
                let (mut file, mut line) = self.file_line(&f, cur)?;
                let mut ix = self.pcvalue(ixtab, f.entry, cur)?.unwrap_or(-1);
                while ix >= 0 {
                    if out.len() - start >= MAX_INLINE_DEPTH {
                        return Err(Error::Corrupt {
                            what: "inline tree too deep or cyclic",
                            value: ix as u64,
                        });
                    }
                    let r = self.inl_record(tree, ix)?;
                    let name = self.name(r.nameoff)?;
                    out.push(Frame {
                        function: self.print_name(name),
                        file,
                        line,
                        start_line: 0,
                        entry: f.entry,
                        inlined: true,
                    });
                    file = self.file(0, r.file)?;
                    line = if r.line < 0 || file == "?" {
                        0
                    } else {
                        r.line as u32
                    };
                    if r.line < 0 {
                        file = "?";
                    }
                    ix = r.parent;
                }
                let name = self.name(f.nameoff)?;
                out.push(Frame {
                    function: self.print_name(name),
                    file,
                    line,
                    start_line: 0,
                    entry: f.entry,
                    inlined: false,
                });
                return Ok(());
            }
            let mut depth = 0usize;
            loop {
                let ix = self.pcvalue(ixtab, f.entry, cur)?.unwrap_or(-1);
                if ix < 0 {
                    break;
                }
                depth += 1;
                if depth > MAX_INLINE_DEPTH {
                    return Err(Error::Corrupt {
                        what: "inline tree too deep or cyclic",
                        value: ix as u64,
                    });
                }
                let r = self.inl_record(tree, ix)?;
                let name = self.name(r.nameoff)?;
                if !(wrapper == Some(r.func_id) && elide) {
                    let (file, line) = self.file_line(&f, cur)?;
                    out.push(Frame {
                        function: self.print_name(name),
                        file,
                        line,
                        start_line: r.start_line.max(0) as u32,
                        entry: f.entry,
                        inlined: true,
                    });
                }
                elide = !is_panic_callee(name);
                if r.parent_pc < 0 {
                    return Err(Error::Corrupt {
                        what: "negative inline parentPc",
                        value: r.parent_pc as u64,
                    });
                }
                cur = f
                    .entry
                    .checked_add(r.parent_pc as u64)
                    .ok_or(Error::Corrupt {
                        what: "inline parentPc overflows",
                        value: r.parent_pc as u64,
                    })?;
            }
        }
        if !(wrapper.is_some() && wrapper == Some(f.func_id) && elide) {
            let (file, line) = self.file_line(&f, cur)?;
            let name = self.name(f.nameoff)?;
            out.push(Frame {
                function: self.print_name(name),
                file,
                line,
                start_line: f.start_line.max(0) as u32,
                entry: f.entry,
                inlined: false,
            });
        }
        Ok(())
    }
}

// ---- locating things in the ELF file ---------------------------------------------------------

/// Where the pclntab is: file range and virtual address; `exact` when the length is the
/// table's own (from a section or symbols), not "to the end of the segment".
struct Loc {
    off: usize,
    len: usize,
    va: u64,
    exact: bool,
}

fn locate_pclntab(e: &elf::Elf<'_>) -> Result<Loc> {
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
fn find_moduledata(e: &elf::Elf<'_>, loc: &Loc, hd: &Header) -> Option<u64> {
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
/// else the per-version offset (304 for 1.18–1.19, 320 for 1.20–1.26, 344 for 1.27+).
fn gofunc_from_moduledata(
    e: &elf::Elf<'_>,
    md: u64,
    loc: &Loc,
    family: Family,
    version: Option<(u32, u32)>,
) -> Option<u64> {
    if family == Family::Go118 {
        return e.word_reloc(md.wrapping_add(304));
    }
    let minor = version.filter(|v| v.0 == 1).map(|v| v.1);
    let maybe_126 = match minor {
        Some(m) => m >= 26,
        None => e.section(b".go.module").is_some(),
    };
    if maybe_126 && loc.exact {
        // `epclntab` is word 41 (1.26) or 44 (1.27), and 1.26+ puts gofunc inside the
        // pclntab. Other words can equal epclntab too (1.27 `types` when .go.type follows
        // the table), so the expected index is tried first and the preceding word must point
        // into the table.
        let epc = loc.va.wrapping_add(loc.len as u64);
        let expected: u64 = if minor.is_some_and(|m| m >= 27) {
            44
        } else {
            41
        };
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
    match minor {
        Some(m) if m >= 27 => e.word_reloc(md.wrapping_add(344)),
        _ => e.word_reloc(md.wrapping_add(320)),
    }
}
