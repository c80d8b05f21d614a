//! Function and file names: the string tables, the CU file table and the runtime's
//! `funcNameForPrint` rules.

use std::borrow::Cow;

use super::version::{PrintRule, facts_for};
use super::{Error, Family, GoTable, Result, rd_u32, trunc};

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
pub(super) fn outer_brackets(name: &str) -> Option<(usize, usize)> {
    let i = name.find('[')?;
    let j = name.rfind(']')?;
    (j > i).then_some((i, j))
}

impl<D: AsRef<[u8]>> GoTable<D> {
    /// NUL-terminated string at `off` in `[region, region_end)`.
    pub(super) fn cstr(&self, region: usize, region_end: usize, off: u64) -> Result<&str> {
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
    pub(super) fn name(&self, nameoff: u32) -> Result<&str> {
        match self.family {
            Family::Go12 if nameoff == 0 => Ok(""),
            Family::Go12 => self.cstr(0, self.tab_len, u64::from(nameoff)),
            _ => self.cstr(self.funcname_off, self.cu_off, u64::from(nameoff)),
        }
    }

    /// File name for a pcfile value (CU-relative in 1.16+, global before); "?" if unknown.
    pub(super) fn file(&self, cu_offset: u32, fileno: i32) -> Result<&str> {
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

    /// A raw function name as the runtime of this binary prints it (`Frame.Function`):
    /// Go 1.18/1.19 linkers already stored `[...]`, so names are printed raw before 1.20;
    /// 1.20–1.26 and 1.27+ elide shapes differently (see [`name_for_print`]). An unknown
    /// 1.20+ version uses the 1.20–1.26 rule.
    pub fn print_name<'n>(&self, name: &'n str) -> Cow<'n, str> {
        match facts_for(self.family, self.go_version, false, false).print {
            PrintRule::Go127 => name_for_print(name),
            PrintRule::Go120 => name_for_print_go120(name),
            PrintRule::Raw => Cow::Borrowed(name),
        }
    }
}
