//! The function table: functab entries, finding the function containing a PC, and the raw
//! `_func` fields with their pcdata/funcdata arrays.

use super::index::FuncIndex;
use super::{Error, Family, GoTable, Result, rd_u32, rd_u64, trunc};

/// Raw `_func` fields.
#[derive(Clone, Copy, Debug)]
pub(super) struct RawFunc {
    /// Offset of the `_func` in the table.
    pub(super) off: usize,
    pub(super) entry: u64,
    pub(super) nameoff: u32,
    pub(super) args: u32,
    pub(super) pcsp: u32,
    pub(super) pcfile: u32,
    pub(super) pcln: u32,
    pub(super) npcdata: u32,
    pub(super) cu_offset: u32,
    pub(super) start_line: i32,
    pub(super) func_id: u8,
    pub(super) flag: u8,
    pub(super) nfuncdata: u32,
}

impl<D: AsRef<[u8]>> GoTable<D> {
    #[inline]
    pub(super) fn wide_ftab(&self) -> bool {
        matches!(self.family, Family::Go12 | Family::Go116)
    }

    #[inline]
    pub(super) fn ftab_entry(&self, i: usize) -> Result<u64> {
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
    pub(super) fn find(&self, pc: u64) -> Result<Option<usize>> {
        if self.nfunc == 0 {
            return Ok(None);
        }
        if pc < self.ftab_entry(0)? || pc >= self.ftab_entry(self.nfunc)? {
            return Ok(None);
        }
        if let Some(ix) = self
            .func_index
            .get_or_init(|| FuncIndex::build(self.nfunc, |i| self.ftab_entry(i).ok()))
            && let Some(mut i) = ix.start(pc)
        {
            // Every entry was readable when the index was built, and they do not decrease.
            while i + 1 < self.nfunc && self.ftab_entry(i + 1)? <= pc {
                i += 1;
            }
            return Ok(Some(i));
        }
        self.find_by_search(pc)
    }

    /// `find` by binary search over the function table (no index: an unreadable or unsorted
    /// table, whose errors this reports).
    pub(super) fn find_by_search(&self, pc: u64) -> Result<Option<usize>> {
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

    pub(super) fn raw_func(&self, index: usize) -> Result<RawFunc> {
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
    pub(super) fn pcdata(&self, f: &RawFunc, i: u32) -> Result<u32> {
        if i >= f.npcdata {
            return Ok(0);
        }
        let o = f.off + self.layout.func_size + 4 * i as usize;
        rd_u32(self.tab(), o).ok_or(trunc("pcdata", o))
    }

    /// funcdata[i] as a virtual address (None when absent).
    pub(super) fn funcdata(&self, f: &RawFunc, i: u32) -> Result<Option<u64>> {
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
}
