//! Lazily filled per-function cache of decoded pc-value tables, names, files and inline
//! records, so repeated lookups in one function binary-search small arrays instead of
//! re-decoding varints from the function entry.
//!
//! Exactness: every cached answer is the one the uncached path would give. Anything the cache
//! cannot answer exactly (an error on the uncached path, a PC outside what was decoded, the
//! Go 1.9–1.11 inline layout) makes the fast path give up, and the caller falls back to the
//! uncached code, which then produces the same result or error as before.
//!
//! Memory: slots are allocated in chunks of [`CHUNK`] functions on first use, and a function's
//! entry is decoded on its first lookup; decoded tables stop at the function end, so their size
//! is bounded by the function's size and its tables' size.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::inline::{InlRec, caller_found};
use super::{Frame, GoTable, Inl, MAX_INLINE_DEPTH, RawFunc, is_panic_callee, uvarint};

/// Functions per lazily allocated slot chunk.
const CHUNK: usize = 256;
/// Bytes of code per run-index entry of `Decoded::words`, and the run count from which it is built.
const RUN_CHUNK: u64 = 128;
const INDEXED_RUNS: usize = 8;
/// Above this many functions (corrupt tables) nothing is cached.
const MAX_CACHED_FUNCS: usize = 1 << 24;

type Slot = OnceLock<Option<Decoded>>;

/// The per-table cache: one lazily allocated chunk of slots per [`CHUNK`] functions.
pub(super) struct FuncCache {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
}

impl FuncCache {
    pub(super) fn new(nfunc: usize) -> Self {
        let n = if nfunc > MAX_CACHED_FUNCS {
            0
        } else {
            nfunc.div_ceil(CHUNK)
        };
        FuncCache {
            chunks: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }
}

/// A string in `Decoded::strs` (one buffer per function, fewer cache misses).
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

fn push_str(buf: &mut String, s: &str) -> Span {
    let sp = Span {
        start: buf.len() as u32,
        len: s.len() as u32,
    };
    buf.push_str(s);
    sp
}

/// A raw name and the name as the runtime prints it.
#[derive(Clone, Copy)]
struct CachedName {
    raw: Span,
    print: Span,
}

/// One inline-tree record with its name resolved (`name` None: reading the name fails).
struct CachedInl {
    rec: InlRec,
    name: Option<CachedName>,
}

/// Values of pcfile, pcln and the inline-tree index up to `end` (an offset from the entry),
/// from the previous run's end (-1: not covered).
#[derive(Clone, Copy)]
struct Run {
    end: u32,
    row: Row,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Row {
    file: i32,
    line: i32,
    ix: i32,
}

const NO_ROW: Row = Row {
    file: -1,
    line: -1,
    ix: -1,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tree {
    /// No inline tree for this function (or none can be read for this version).
    Absent,
    /// Inline tree present; the index column is decoded.
    Present,
    /// Reading the tree fails, or the layout is Go 1.9–1.11: use the uncached path.
    Uncached,
}

pub(super) struct Decoded {
    raw: RawFunc,
    end: u64,
    name: Option<CachedName>,
    tree: Tree,
    /// The run index, the runs and the files in one allocation, so a lookup misses the cache
    /// once for them, not once per array (random PCs over a large binary are bound by memory
    /// latency): `[run index: n_index words][runs: 4 words each][files: 4 words each]`.
    ///
    /// * run index, for functions with many runs: per [`RUN_CHUNK`] bytes from the entry, the
    ///   first run ending after the chunk's start, so a lookup searches only its chunk's runs;
    /// * runs `[end, file, line, ix]`, sorted by strictly increasing `end` (see [`Run`]);
    /// * resolved file names `[fileno, start, len, 0]` sorted by file number, `len`
    ///   [`NO_SPAN`] when resolving fails.
    words: Box<[u32]>,
    n_index: u32,
    n_runs: u32,
    /// Offsets at or beyond this were not decoded exactly: use the uncached path.
    cover: u64,
    /// All cached strings of this function.
    strs: Box<str>,
    /// Inline records by index, sorted (None: reading the record fails).
    inl: Box<[(i32, Option<CachedInl>)]>,
    /// `max_sp_delta` (None: it fails), computed on first use.
    max_sp: OnceLock<Option<i32>>,
}

/// One decoded pc-value table: strictly increasing run ends (offsets from the entry, capped
/// at the function size), values, and the offset from which answers are not exact.
struct Col {
    ends: Vec<u32>,
    vals: Vec<i32>,
    cover: u64,
}

impl Col {
    fn empty(cover: u64) -> Self {
        Col {
            ends: Vec::new(),
            vals: Vec::new(),
            cover,
        }
    }
}

/// `len` of a file whose name cannot be resolved, in `Decoded::words`.
const NO_SPAN: u32 = u32::MAX;

/// The run index of `Decoded::words` for `runs` of a function of `size` bytes (empty for few
/// runs).
fn run_index(runs: &[Run], size: u64) -> Vec<u32> {
    if runs.len() < INDEXED_RUNS {
        return Vec::new();
    }
    let mut i = 0;
    (0..size.div_ceil(RUN_CHUNK))
        .map(|k| {
            while runs
                .get(i)
                .is_some_and(|r| u64::from(r.end) <= k * RUN_CHUNK)
            {
                i += 1;
            }
            i as u32
        })
        .collect()
}

impl Decoded {
    #[inline]
    fn s(&self, sp: Span) -> Option<&str> {
        let start = sp.start as usize;
        let end = start.checked_add(sp.len as usize)?;
        if end > self.strs.len() {
            return None;
        }
        // SAFETY: every span of a `Decoded` was made by `push_str` on its `strs` (before it
        // was boxed, unchanged since): it starts at the buffer's length before a `&str` was
        // appended and spans that string, so both ends are char boundaries, and `end` is in
        // bounds (checked above). Unchecked so that a lookup does not read the bytes (a cache
        // miss) just to check the boundaries: the caller reads them if it prints them.
        Some(unsafe { self.strs.get_unchecked(start..end) })
    }

    /// The runs, as `[end, file, line, ix]`.
    #[inline]
    fn runs(&self) -> &[[u32; 4]] {
        let n = self.n_index as usize;
        let runs = self
            .words
            .get(n..n + 4 * self.n_runs as usize)
            .unwrap_or(&[]);
        runs.as_chunks::<4>().0
    }

    /// The resolved files, as `[fileno, start, len, 0]`.
    #[inline]
    fn files(&self) -> &[[u32; 4]] {
        let n = self.n_index as usize + 4 * self.n_runs as usize;
        self.words.get(n..).unwrap_or(&[]).as_chunks::<4>().0
    }

    #[inline]
    fn row(&self, pc: u64) -> Option<Row> {
        let rel = pc.checked_sub(self.raw.entry)?;
        if rel >= self.cover {
            return None;
        }
        let runs = self.runs();
        let index = self.words.get(..self.n_index as usize).unwrap_or(&[]);
        // The run containing rel lies between the first runs of its chunk and of the next.
        let (a, b) = match index.get((rel / RUN_CHUNK) as usize) {
            Some(&a) => {
                let b = index.get((rel / RUN_CHUNK) as usize + 1);
                (a as usize, b.map_or(runs.len(), |&b| b as usize))
            }
            None => (0, runs.len()),
        };
        let i = a + runs.get(a..b)?.partition_point(|r| u64::from(r[0]) <= rel);
        Some(runs.get(i).map_or(NO_ROW, |r| Row {
            file: r[1] as i32,
            line: r[2] as i32,
            ix: r[3] as i32,
        }))
    }

    /// `GoTable::file` for this function's CU.
    #[inline]
    fn file(&self, fileno: i32) -> Option<&str> {
        if fileno < 0 {
            return Some("?");
        }
        let files = self.files();
        let i = files.binary_search_by_key(&fileno, |f| f[0] as i32).ok()?;
        let f = files[i];
        if f[2] == NO_SPAN {
            return None;
        }
        self.s(Span {
            start: f[1],
            len: f[2],
        })
    }

    /// `GoTable::file_line` for a row.
    #[inline]
    fn file_line(&self, row: Row) -> Option<(&str, u32)> {
        if row.file == -1 || row.line < 0 {
            return Some(("?", 0));
        }
        Some((self.file(row.file)?, row.line as u32))
    }

    #[inline]
    fn inl(&self, ix: i32) -> Option<&CachedInl> {
        let i = self.inl.binary_search_by_key(&ix, |r| r.0).ok()?;
        self.inl[i].1.as_ref()
    }
}

impl<D: AsRef<[u8]>> GoTable<D> {
    /// The decoded entry of function `i`, filling it on first use; None when the function
    /// cannot be cached (the uncached path then reports whatever is wrong).
    #[inline]
    pub(super) fn decoded(&self, i: usize) -> Option<&Decoded> {
        let chunk = self
            .cache
            .chunks
            .get(i / CHUNK)?
            .get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect());
        chunk[i % CHUNK].get_or_init(|| self.decode(i)).as_ref()
    }

    fn cached_name(&self, nameoff: u32, buf: &mut String) -> Option<CachedName> {
        let name = self.name(nameoff).ok()?;
        let raw = push_str(buf, name);
        let print = match self.print_name(name) {
            Cow::Owned(s) => push_str(buf, &s),
            Cow::Borrowed(_) => raw,
        };
        Some(CachedName { raw, print })
    }

    fn decode(&self, i: usize) -> Option<Decoded> {
        let raw = self.raw_func(i).ok()?;
        let end = self.ftab_entry(i + 1).ok()?;
        let size = end.checked_sub(raw.entry).filter(|&s| s > 0)?;
        if size > u64::from(u32::MAX) {
            return None;
        }
        let mut tree = match self.layout.inl {
            Inl::None => Tree::Absent,
            Inl::Old16 => Tree::Uncached,
            Inl::Rec16 | Inl::Rec20 => match self.funcdata(&raw, self.layout.funcdata_inl) {
                Ok(None) => Tree::Absent,
                Ok(Some(_)) => Tree::Present,
                Err(_) => Tree::Uncached,
            },
        };
        let mut tree_va = None;
        let ix = if tree == Tree::Present {
            tree_va = self.funcdata(&raw, self.layout.funcdata_inl).ok().flatten();
            match self.pcdata(&raw, self.layout.pcdata_inl) {
                Ok(off) => self.decode_col(off, raw.entry, size),
                Err(_) => {
                    tree = Tree::Uncached;
                    Col::empty(u64::MAX)
                }
            }
        } else {
            Col::empty(u64::MAX)
        };
        let file = self.decode_col(raw.pcfile, raw.entry, size);
        let line = self.decode_col(raw.pcln, raw.entry, size);
        let cover = file.cover.min(line.cover).min(ix.cover);
        let cols = [&file, &line, &ix];
        let cap = file.ends.len().max(line.ends.len()).max(ix.ends.len());
        let mut runs: Vec<Run> = Vec::with_capacity(cap);
        let mut at = [0usize; 3];
        while let Some(e) = (0..3)
            .filter_map(|c| cols[c].ends.get(at[c]).copied())
            .min()
        {
            let v = |c: usize| cols[c].vals.get(at[c]).copied().unwrap_or(-1);
            let row = Row {
                file: v(0),
                line: v(1),
                ix: v(2),
            };
            match runs.last_mut() {
                Some(last) if last.row == row => last.end = e,
                _ => runs.push(Run { end: e, row }),
            }
            for c in 0..3 {
                if cols[c].ends.get(at[c]) == Some(&e) {
                    at[c] += 1;
                }
            }
        }
        let mut filenos: Vec<i32> = runs
            .iter()
            .map(|r| r.row.file)
            .filter(|&f| f >= 0)
            .collect();
        filenos.sort_unstable();
        filenos.dedup();
        let mut buf = String::new();
        let name = self.cached_name(raw.nameoff, &mut buf);
        let index = run_index(&runs, size);
        let mut words = Vec::with_capacity(index.len() + 4 * runs.len() + 4 * filenos.len());
        words.extend_from_slice(&index);
        for r in &runs {
            let row = r.row;
            words.extend_from_slice(&[r.end, row.file as u32, row.line as u32, row.ix as u32]);
        }
        for &n in &filenos {
            let sp = self
                .file(raw.cu_offset, n)
                .ok()
                .map(|s| push_str(&mut buf, s));
            let (start, len) = sp.map_or((0, NO_SPAN), |sp| (sp.start, sp.len));
            words.extend_from_slice(&[n as u32, start, len, 0]);
        }
        let mut ixs: Vec<i32> = runs.iter().map(|r| r.row.ix).filter(|&x| x >= 0).collect();
        ixs.sort_unstable();
        ixs.dedup();
        let inl = match tree_va {
            Some(t) => ixs
                .into_iter()
                .map(|x| {
                    let r = self.inl_record(t, x).ok().map(|r| CachedInl {
                        rec: r,
                        name: self.cached_name(r.nameoff, &mut buf),
                    });
                    (x, r)
                })
                .collect(),
            None => Box::default(),
        };
        // Spans are u32 (and a length of NO_SPAN means none).
        if buf.len() >= NO_SPAN as usize {
            return None;
        }
        Some(Decoded {
            name,
            strs: buf.into_boxed_str(),
            raw,
            end,
            tree,
            n_index: u32::try_from(index.len()).ok()?,
            n_runs: u32::try_from(runs.len()).ok()?,
            words: words.into_boxed_slice(),
            cover,
            inl,
            max_sp: OnceLock::new(),
        })
    }

    /// Decodes the pc-value table at `off` exactly as `pcvalue` reads it, up to the function
    /// size.
    fn decode_col(&self, off: u32, entry: u64, size: u64) -> Col {
        if off == 0 {
            // No table: every lookup gives None.
            return Col::empty(u64::MAX);
        }
        let (base, end) = self.pctab_bounds();
        let Some(start) = base.checked_add(off as usize).filter(|&s| s < end) else {
            return Col::empty(0);
        };
        let tab = self.tab();
        let p = &tab[start.min(tab.len())..end.min(tab.len())];
        let q = u64::from(self.quantum);
        let mut col = Col::empty(0);
        let (mut pos, mut val, mut pc, mut first, mut rel) = (0usize, -1i32, entry, true, 0u64);
        loop {
            let Some(uv) = uvarint(p, &mut pos) else {
                col.cover = rel;
                return col;
            };
            if uv == 0 && !first {
                col.cover = u64::MAX;
                return col;
            }
            let d = if uv & 1 != 0 { !(uv >> 1) } else { uv >> 1 };
            val = val.wrapping_add(d as i32);
            let Some(pcd) = uvarint(p, &mut pos) else {
                col.cover = rel;
                return col;
            };
            pc = match pc.checked_add(u64::from(pcd) * q) {
                Some(v) => v,
                None => {
                    col.cover = u64::MAX;
                    return col;
                }
            };
            let r = pc - entry;
            if r > rel {
                rel = r.min(size);
                col.ends.push(rel as u32);
                col.vals.push(val);
                if r >= size {
                    col.cover = size;
                    return col;
                }
            }
            first = false;
        }
    }

    /// `frames_with_callee` from the cache; None when the uncached path must run.
    pub(super) fn frames_cached<'a>(
        &'a self,
        d: &'a Decoded,
        pc: u64,
        kind: super::PcKind,
        callee: Option<&str>,
        out: &mut Vec<Frame<'a>>,
    ) -> Option<()> {
        let f = &d.raw;
        let mut cur = pc;
        if kind == super::PcKind::Return && pc > f.entry {
            cur = pc - 1;
        }
        let mut elide = !callee.is_some_and(is_panic_callee);
        let wrapper = if self.layout.legacy_tail {
            None
        } else {
            self.wrapper_func_id()
        };
        let mut caller_unknown = false;
        match d.tree {
            Tree::Uncached => return None,
            Tree::Absent => {}
            Tree::Present => {
                let mut depth = 0usize;
                let mut row = d.row(cur)?;
                while row.ix >= 0 {
                    depth += 1;
                    if depth > MAX_INLINE_DEPTH {
                        return None;
                    }
                    let r = d.inl(row.ix)?;
                    let name = r.name.as_ref()?;
                    if !(wrapper == Some(r.rec.func_id) && elide) {
                        let (file, line) = d.file_line(row)?;
                        out.push(Frame {
                            function: Cow::Borrowed(d.s(name.print)?),
                            file,
                            line,
                            start_line: r.rec.start_line.max(0) as u32,
                            entry: f.entry,
                            inlined: true,
                        });
                    }
                    elide = !is_panic_callee(d.s(name.raw)?);
                    if r.rec.parent_pc < 0 {
                        return None;
                    }
                    let parent = f.entry.checked_add(r.rec.parent_pc as u64)?;
                    let parent_row = d.row(parent)?;
                    let has_frame = r.rec.parent_pc == 0
                        && (*d.max_sp.get_or_init(|| self.max_sp_delta(f).ok()))? > 0;
                    if !caller_found(
                        &r.rec,
                        row.ix,
                        parent_row.ix,
                        has_frame,
                        self.entry_is_outermost(),
                    ) {
                        caller_unknown = true;
                        break;
                    }
                    (cur, row) = (parent, parent_row);
                }
            }
        }
        if !(wrapper.is_some() && wrapper == Some(f.func_id) && elide) {
            let (file, line) = if caller_unknown {
                ("?", 0)
            } else {
                d.file_line(d.row(cur)?)?
            };
            let name = d.name.as_ref()?;
            out.push(Frame {
                function: Cow::Borrowed(d.s(name.print)?),
                file,
                line,
                start_line: f.start_line.max(0) as u32,
                entry: f.entry,
                inlined: false,
            });
        }
        Some(())
    }

    /// `pc_to_line` from the cache; None when the uncached path must run.
    pub(super) fn pc_to_line_cached<'a>(
        &self,
        d: &'a Decoded,
        pc: u64,
    ) -> Option<(&'a str, &'a str, i32)> {
        let row = d.row(pc)?;
        let file = match d.file(row.file)? {
            "?" => "",
            name => name,
        };
        Some((d.s(d.name.as_ref()?.raw)?, file, row.line))
    }

    /// `func_at` from the cache; None when the uncached path must run.
    pub(super) fn func_at_cached<'a>(
        &self,
        index: usize,
        d: &'a Decoded,
    ) -> Option<super::FuncInfo<'a>> {
        let f = &d.raw;
        let name = d.s(d.name.as_ref()?.raw)?;
        let max_sp = (*d.max_sp.get_or_init(|| self.max_sp_delta(f).ok()))?;
        Some(super::FuncInfo {
            index,
            entry: f.entry,
            end: d.end,
            name,
            start_line: f.start_line.max(0) as u32,
            flags: super::FuncFlags(f.flag),
            func_id: f.func_id,
            frame_size: max_sp.max(0) as u32,
            args: f.args,
            has_pcsp: f.pcsp != 0,
        })
    }
}
