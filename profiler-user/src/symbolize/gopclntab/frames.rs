//! Turning a PC into frames: the physical function, its inline tree walked outwards, wrapper
//! elision as `runtime.tracebackPCs` does it, and the single-answer lookups (`pc_to_line`,
//! `func_at`, `sp_delta`).

use super::inline::caller_found;
use super::version::{facts, facts_for, go1_minor};
use super::{
    Error, Frame, FuncFlags, FuncInfo, GoTable, Inl, MAX_INLINE_DEPTH, PcKind, RawFunc, Result,
};

pub(super) fn is_panic_callee(name: &str) -> bool {
    matches!(
        name,
        "runtime.gopanic" | "runtime.sigpanic" | "runtime.panicwrap"
    )
}

impl<D: AsRef<[u8]>> GoTable<D> {
    /// The runtime's `funcline1`: ("?", 0) when file or line is unknown.
    pub(super) fn file_line(&self, f: &RawFunc, pc: u64) -> Result<(&str, u32)> {
        let fileno = self.pcvalue(f.pcfile, f.entry, pc)?.unwrap_or(-1);
        let line = self.pcvalue(f.pcln, f.entry, pc)?.unwrap_or(-1);
        if fileno == -1 || line < 0 {
            return Ok(("?", 0));
        }
        Ok((self.file(f.cu_offset, fileno)?, line as u32))
    }

    /// See [`caller_found`].
    pub(super) fn entry_is_outermost(&self) -> bool {
        facts_for(self.family, self.go_version, false, false).entry_is_outermost
    }

    /// FuncID of wrappers: by version for 1.19+, else the maximum funcID in the table
    /// (verified heuristic, §4.3). None when the table has no funcIDs (≤1.11).
    pub fn wrapper_func_id(&self) -> Option<u8> {
        *self.wrapper_id.get_or_init(|| {
            if self.layout.legacy_tail {
                return None;
            }
            if let Some(id) = go1_minor(self.go_version).and_then(|m| facts(m).wrapper_func_id) {
                return Some(id);
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
    pub(super) fn pc_to_line_uncached(
        &self,
        i: usize,
        pc: u64,
    ) -> Result<Option<(&str, &str, i32)>> {
        let f = self.raw_func(i)?;
        let fileno = self.pcvalue(f.pcfile, f.entry, pc)?.unwrap_or(-1);
        let line = self.pcvalue(f.pcln, f.entry, pc)?.unwrap_or(-1);
        let file = match self.file(f.cu_offset, fileno)? {
            "?" => "",
            name => name,
        };
        Ok(Some((self.name(f.nameoff)?, file, line)))
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
    pub(super) fn func_at_uncached(&self, i: usize) -> Result<Option<FuncInfo<'_>>> {
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
    pub(super) fn frames_uncached<'a>(
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
        let mut caller_unknown = false;
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
            let mut ix = self.pcvalue(ixtab, f.entry, cur)?.unwrap_or(-1);
            while ix >= 0 {
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
                let parent = f
                    .entry
                    .checked_add(r.parent_pc as u64)
                    .ok_or(Error::Corrupt {
                        what: "inline parentPc overflows",
                        value: r.parent_pc as u64,
                    })?;
                let parent_ix = self.pcvalue(ixtab, f.entry, parent)?.unwrap_or(-1);
                let has_frame = r.parent_pc == 0 && self.max_sp_delta(&f)? > 0;
                if !caller_found(&r, ix, parent_ix, has_frame, self.entry_is_outermost()) {
                    caller_unknown = true;
                    break;
                }
                (cur, ix) = (parent, parent_ix);
            }
        }
        if !(wrapper.is_some() && wrapper == Some(f.func_id) && elide) {
            let (file, line) = if caller_unknown {
                ("?", 0)
            } else {
                self.file_line(&f, cur)?
            };
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
