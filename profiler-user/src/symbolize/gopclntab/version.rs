//! Per-Go-version facts the magic does not reveal, in one table ([`FACTS`]), and the
//! heuristic for Go 1.2–1.15 tables without a version.

use super::{Family, Header, rd_u32, rd_u64};

/// Inline-tree record layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Inl {
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
pub(super) struct Layout {
    /// `_func` size before the pcdata array.
    pub(super) func_size: usize,
    /// Go 1.2–1.11 `_func` tail (`nfuncdata i32`, no funcID).
    pub(super) legacy_tail: bool,
    pub(super) pcdata_inl: u32,
    pub(super) funcdata_inl: u32,
    pub(super) inl: Inl,
}

pub(super) const MAGIC_12: u32 = 0xffff_fffb;
pub(super) const MAGIC_116: u32 = 0xffff_fffa;
pub(super) const MAGIC_118: u32 = 0xffff_fff0;
pub(super) const MAGIC_120: u32 = 0xffff_fff1;

/// Parses "go1.21.13", "devel go1.22-abc", "go1.9" … into (major, minor).
pub(crate) fn parse_go_version(v: &str) -> Option<(u32, u32)> {
    let i = v.find("go1")?;
    let rest = &v[i + 2..];
    let mut it = rest.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// How function names are printed (`runtime.funcNameForPrint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PrintRule {
    /// Before Go 1.20 the linker already stored `[...]`: printed as stored.
    Raw,
    /// Go 1.20–1.26: first `[` to last `]` becomes `[...]` ([`super::name_for_print_go120`]).
    Go120,
    /// Go 1.27+: shapes elided per bracket group ([`super::name_for_print`]).
    Go127,
}

/// What a range of Go releases needs beyond the magic. A release uses the last row of
/// [`FACTS`] whose `since` is at most its minor version.
#[derive(Clone, Copy, Debug)]
pub(super) struct Facts {
    /// First Go 1.x minor version of the row.
    pub(super) since: u32,
    pub(super) layout: Layout,
    /// `funcID` of wrapper functions; None: not known, the largest funcID in the table is used.
    pub(super) wrapper_func_id: Option<u8>,
    /// Byte offset of `moduledata.gofunc` (1.18+; 0 before).
    pub(super) md_gofunc: u64,
    /// Word index of `moduledata.epclntab` when `gofunc` lies inside the pclntab (1.26+).
    pub(super) md_epclntab_word: Option<u64>,
    pub(super) print: PrintRule,
    /// The first instruction of a function is its own, never an inlined callee's (Go 1.21+,
    /// issue 58300; frames start with the prologue anyway).
    pub(super) entry_is_outermost: bool,
}

const fn layout(
    func_size: usize,
    legacy_tail: bool,
    pcdata_inl: u32,
    funcdata_inl: u32,
    inl: Inl,
) -> Layout {
    Layout {
        func_size,
        legacy_tail,
        pcdata_inl,
        funcdata_inl,
        inl,
    }
}

const GO12_LEGACY: Layout = layout(40, true, 1, 2, Inl::None);
const GO19: Layout = layout(40, true, 1, 2, Inl::Old16);
const GO112: Layout = layout(40, false, 1, 2, Inl::Rec20);
const GO113: Layout = layout(40, false, 2, 4, Inl::Rec20);
const GO116: Layout = layout(44, false, 2, 3, Inl::Rec20);
const GO118: Layout = layout(40, false, 2, 3, Inl::Rec20);
const GO120: Layout = layout(44, false, 2, 3, Inl::Rec16);

const fn row(
    since: u32,
    layout: Layout,
    wrapper: Option<u8>,
    md_gofunc: u64,
    epc: Option<u64>,
    print: PrintRule,
) -> Facts {
    Facts {
        since,
        layout,
        wrapper_func_id: wrapper,
        md_gofunc,
        md_epclntab_word: epc,
        print,
        entry_is_outermost: since >= 21,
    }
}

/// Every per-version fact, by first minor version (sources: the runtime's `_func`,
/// `inlinedCall`, `moduledata` and `abi.FuncID` of each release).
pub(super) const FACTS: &[Facts] = &[
    row(2, GO12_LEGACY, None, 0, None, PrintRule::Raw),
    row(9, GO19, None, 0, None, PrintRule::Raw),
    row(12, GO112, None, 0, None, PrintRule::Raw),
    row(13, GO113, None, 0, None, PrintRule::Raw),
    row(16, GO116, None, 0, None, PrintRule::Raw),
    row(18, GO118, None, 304, None, PrintRule::Raw),
    row(19, GO118, Some(21), 304, None, PrintRule::Raw),
    row(20, GO120, Some(21), 320, None, PrintRule::Go120),
    row(21, GO120, Some(21), 320, None, PrintRule::Go120),
    row(22, GO120, Some(22), 320, None, PrintRule::Go120),
    row(25, GO120, Some(23), 320, None, PrintRule::Go120),
    row(26, GO120, Some(23), 320, Some(41), PrintRule::Go120),
    row(27, GO120, Some(23), 344, Some(44), PrintRule::Go127),
    // Newer than this reader knows: funcIDs may have moved, so they are inferred.
    row(28, GO120, None, 344, Some(44), PrintRule::Go127),
];

/// Byte offset of `moduledata.text`, the same in every release with a 1.18+ magic.
pub(super) const MD_TEXT: u64 = 176;

/// The first minor version that places `gofunc` inside the pclntab.
pub(super) const GOFUNC_IN_PCLNTAB: u32 = 26;

impl Family {
    /// The Go 1.x minor versions that write this magic.
    pub(super) fn minors(self) -> (u32, u32) {
        match self {
            Family::Go12 => (2, 15),
            Family::Go116 => (16, 17),
            Family::Go118 => (18, 19),
            Family::Go120 => (20, u32::MAX),
        }
    }
}

/// The facts of Go 1.`minor`.
pub(super) fn facts(minor: u32) -> &'static Facts {
    let i = FACTS.partition_point(|f| f.since <= minor);
    &FACTS[i.saturating_sub(1)]
}

/// The minor version of a `(major, minor)` pair, if it is Go 1.
pub(super) fn go1_minor(version: Option<(u32, u32)>) -> Option<u32> {
    version.filter(|v| v.0 == 1).map(|v| v.1)
}

/// The facts for a table of `family`, written by `version` when known, clamped to the
/// family's releases (the magic wins over a contradicting version). Without a version:
/// the family's first release, except Go 1.2–1.15, where the `_func` tail heuristic
/// (`legacy_tail`) picks 1.9–1.11 and otherwise `assume_112` picks 1.12 over 1.13–1.15.
pub(super) fn facts_for(
    family: Family,
    version: Option<(u32, u32)>,
    legacy_tail: bool,
    assume_112: bool,
) -> &'static Facts {
    let (lo, hi) = family.minors();
    let minor = match go1_minor(version) {
        Some(m) => m.clamp(lo, hi),
        None if family != Family::Go12 => lo,
        None if legacy_tail => 9,
        None if assume_112 => 12,
        None => 13,
    };
    facts(minor)
}

/// The `_func`/inline layout; see [`facts_for`].
pub(super) fn layout_for(
    family: Family,
    version: Option<(u32, u32)>,
    legacy_tail: bool,
    assume_112: bool,
) -> Layout {
    facts_for(family, version, legacy_tail, assume_112).layout
}

/// Heuristic for Go 1.2–1.15 tables of unknown version: true if the `_func` tail is the
/// ≤1.11 one (see the module docs).
pub(super) fn go12_legacy_tail(tab: &[u8], hd: &Header) -> bool {
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
