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
mod frames;
mod functab;
mod header;
mod index;
mod inline;
mod locate;
mod names;
mod pcvalue;
#[cfg(test)]
mod tests;
mod version;

use std::borrow::Cow;
use std::sync::OnceLock;

use elf::Seg;
use frames::is_panic_callee;
use functab::RawFunc;
use header::Header;
use inline::MAX_INLINE_DEPTH;
pub use names::{name_for_print, name_for_print_go120};
use pcvalue::uvarint;
pub(crate) use version::parse_go_version;
use version::{Inl, Layout, go12_legacy_tail, layout_for};

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
    /// Bucket index over the function table, built on the first lookup.
    func_index: OnceLock<Option<index::FuncIndex>>,
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

impl<D: AsRef<[u8]>> GoTable<D> {
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
            func_index: OnceLock::new(),
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
}
