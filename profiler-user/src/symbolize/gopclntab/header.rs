//! The pcHeader: magic, quantum, pointer size and the region offsets, validated.

use super::version::{MAGIC_12, MAGIC_116, MAGIC_118, MAGIC_120};
use super::{Error, Family, Result, rd_u32, rd_u64, trunc};

/// Parsed pcHeader values.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub(super) family: Family,
    pub(super) quantum: u8,
    pub(super) nfunc: usize,
    pub(super) nfiles: u64,
    pub(super) text_start: u64,
    pub(super) funcname_off: usize,
    pub(super) cu_off: usize,
    pub(super) filetab_off: usize,
    pub(super) pctab_off: usize,
    pub(super) ftab_off: usize,
    pub(super) funcoff_base: usize,
    pub(super) nfiletab: u32,
}

impl Header {
    /// Decodes and validates the header of `tab`. `strict` (for scan candidates) additionally
    /// requires strictly increasing region offsets, monotonic functab entries and a matching
    /// first `_func`.
    pub(super) fn parse(tab: &[u8], strict: bool) -> Result<Header> {
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
