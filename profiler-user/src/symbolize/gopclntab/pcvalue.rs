//! Pc-value tables: the varint encoding, the runtime's `pcvalue` and `funcMaxSPDelta`.

use super::{Error, Family, GoTable, RawFunc, Result, trunc};

/// Reads a LEB128 varint of at most 5 bytes (a `uint32`, as the runtime's `readvarint`).
#[inline]
pub(super) fn uvarint(b: &[u8], pos: &mut usize) -> Option<u32> {
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

impl<D: AsRef<[u8]>> GoTable<D> {
    /// Start offset and end (exclusive) of the pc-value table at `off`.
    #[inline]
    pub(super) fn pctab_bounds(&self) -> (usize, usize) {
        match self.family {
            Family::Go12 => (0, self.tab_len),
            _ => (self.pctab_off, self.ftab_off),
        }
    }

    /// The runtime's `pcvalue`: value at `target`, None for "no table" or "not covered" (-1).
    pub(super) fn pcvalue(&self, off: u32, entry: u64, target: u64) -> Result<Option<i32>> {
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
    pub(super) fn max_sp_delta(&self, f: &RawFunc) -> Result<i32> {
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
}
