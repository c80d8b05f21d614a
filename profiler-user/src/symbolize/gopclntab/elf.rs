//! The few ELF facts the Go readers need, extracted once with `object` into owned values:
//! `PT_LOAD` segments (virtual address → file offset), named sections, symbols on demand,
//! `RELATIVE` relocation addends and notes. 64-bit little-endian only.

use super::Error;
use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, Rela as _, SectionHeader, Sym as _};

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub flags: u32,
}

/// One section header, reduced to what we use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sect<'d> {
    pub name: &'d [u8],
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub sh_type: u32,
    pub link: u32,
}

pub(crate) struct Elf<'d> {
    pub data: &'d [u8],
    pub machine: u16,
    pub segs: Vec<Seg>,
    /// File ranges of `PT_NOTE` segments.
    pub note_segs: Vec<(u64, u64)>,
    pub sections: Vec<Sect<'d>>,
}

/// Maps a virtual address range to the file bytes backing it, through `segs`.
pub(crate) fn va_bytes<'a>(data: &'a [u8], segs: &[Seg], va: u64, len: u64) -> Option<&'a [u8]> {
    for s in segs {
        if va >= s.vaddr && va - s.vaddr < s.filesz {
            let rel = va - s.vaddr;
            if len > s.filesz - rel {
                return None;
            }
            let start = s.offset.checked_add(rel)?;
            let end = start.checked_add(len)?;
            return data.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?);
        }
    }
    None
}

/// Bytes from `va` to the end of its segment's file image.
pub(crate) fn va_tail<'a>(data: &'a [u8], segs: &[Seg], va: u64) -> Option<&'a [u8]> {
    for s in segs {
        if va >= s.vaddr && va - s.vaddr < s.filesz {
            return va_bytes(data, segs, va, s.filesz - (va - s.vaddr));
        }
    }
    None
}

const MAX_SEGMENTS: usize = 256;
const MAX_SECTIONS: usize = 1 << 16;

impl<'d> Elf<'d> {
    pub fn parse(data: &'d [u8]) -> Result<Self, Error> {
        if data.len() < 16 || &data[..4] != b"\x7fELF" {
            return Err(Error::NotElf);
        }
        if data[4] != elf::ELFCLASS64 {
            return Err(Error::Unsupported {
                what: "ELF class (only 64-bit)",
                value: u64::from(data[4]),
            });
        }
        if data[5] != elf::ELFDATA2LSB {
            return Err(Error::Unsupported {
                what: "ELF byte order (only little-endian)",
                value: u64::from(data[5]),
            });
        }
        let hdr = elf::FileHeader64::<LE>::parse(data).map_err(|_| Error::Truncated {
            what: "ELF header",
            offset: 0,
        })?;
        let endian = LE;
        let machine = hdr.e_machine(endian);
        if machine != elf::EM_X86_64 && machine != elf::EM_AARCH64 {
            return Err(Error::Unsupported {
                what: "ELF machine (only x86-64 and aarch64)",
                value: u64::from(machine),
            });
        }
        let mut segs = Vec::new();
        let mut note_segs = Vec::new();
        // A broken program header table is treated as absent (sections may still work).
        if let Ok(phdrs) = hdr.program_headers(endian, data) {
            for ph in phdrs.iter().take(MAX_SEGMENTS) {
                let (off, filesz) = (ph.p_offset(endian), ph.p_filesz(endian));
                if off
                    .checked_add(filesz)
                    .is_none_or(|end| end > data.len() as u64)
                {
                    continue;
                }
                match ph.p_type(endian) {
                    elf::PT_LOAD => segs.push(Seg {
                        vaddr: ph.p_vaddr(endian),
                        offset: off,
                        filesz,
                        flags: ph.p_flags(endian),
                    }),
                    elf::PT_NOTE => note_segs.push((off, filesz)),
                    _ => {}
                }
            }
        }
        let mut sections = Vec::new();
        if let Ok(table) = hdr.sections(endian, data) {
            for sh in table.iter().take(MAX_SECTIONS) {
                let name = table.section_name(endian, sh).unwrap_or(b"");
                sections.push(Sect {
                    name,
                    addr: sh.sh_addr(endian),
                    offset: sh.sh_offset(endian),
                    size: sh.sh_size(endian),
                    sh_type: sh.sh_type(endian),
                    link: sh.sh_link(endian),
                });
            }
        }
        Ok(Elf {
            data,
            machine,
            segs,
            note_segs,
            sections,
        })
    }

    /// A section with file contents.
    pub fn section(&self, name: &[u8]) -> Option<Sect<'d>> {
        self.sections
            .iter()
            .copied()
            .find(|s| s.name == name && s.sh_type != elf::SHT_NOBITS && s.size > 0)
    }

    pub fn section_data(&self, s: &Sect<'_>) -> Option<&'d [u8]> {
        let start = usize::try_from(s.offset).ok()?;
        let end = start.checked_add(usize::try_from(s.size).ok()?)?;
        self.data.get(start..end)
    }

    pub fn va_bytes(&self, va: u64, len: u64) -> Option<&'d [u8]> {
        va_bytes(self.data, &self.segs, va, len)
    }

    /// The on-disk 64-bit word at `va`.
    pub fn word(&self, va: u64) -> Option<u64> {
        let b = self.va_bytes(va, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    fn relative_type(&self) -> u32 {
        if self.machine == elf::EM_AARCH64 {
            elf::R_AARCH64_RELATIVE
        } else {
            elf::R_X86_64_RELATIVE
        }
    }

    /// Calls `f(r_offset, addend)` for every `RELATIVE` relocation in `SHT_RELA` sections;
    /// stops when `f` returns true.
    pub fn for_each_relative(&self, mut f: impl FnMut(u64, u64) -> bool) {
        let rtype = self.relative_type();
        for s in &self.sections {
            if s.sh_type != elf::SHT_RELA {
                continue;
            }
            let Some(bytes) = self.section_data(s) else {
                continue;
            };
            let Ok((relas, _)) =
                object::slice_from_bytes::<elf::Rela64<LE>>(bytes, bytes.len() / 24)
            else {
                continue;
            };
            for r in relas {
                if r.r_type(LE, false) == rtype && f(r.r_offset(LE), r.r_addend(LE) as u64) {
                    return;
                }
            }
        }
    }

    /// The addend of the `RELATIVE` relocation that targets `va`.
    pub fn relative_addend(&self, va: u64) -> Option<u64> {
        let mut out = None;
        self.for_each_relative(|off, add| {
            if off == va {
                out = Some(add);
                true
            } else {
                false
            }
        });
        out
    }

    /// The link-time value of the pointer-sized word at `va`: the on-disk value, or, when that
    /// is 0 (lld writes nothing in place), the addend of a RELATIVE relocation for it.
    pub fn word_reloc(&self, va: u64) -> Option<u64> {
        match self.word(va)? {
            0 => Some(self.relative_addend(va).unwrap_or(0)),
            v => Some(v),
        }
    }

    /// Values of the named symbols from `.symtab` (then `.dynsym`), in one pass.
    pub fn symbols<const N: usize>(&self, names: [&[u8]; N]) -> [Option<u64>; N] {
        let mut out = [None; N];
        for ty in [elf::SHT_SYMTAB, elf::SHT_DYNSYM] {
            let Some(symtab) = self.sections.iter().find(|s| s.sh_type == ty) else {
                continue;
            };
            let Some(strtab) = self.sections.get(symtab.link as usize) else {
                continue;
            };
            let (Some(syms), Some(strs)) = (self.section_data(symtab), self.section_data(strtab))
            else {
                continue;
            };
            let Ok((syms, _)) = object::slice_from_bytes::<elf::Sym64<LE>>(syms, syms.len() / 24)
            else {
                continue;
            };
            for s in syms {
                let Some(name) = strs.get(s.st_name(LE) as usize..) else {
                    continue;
                };
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                if let Some(i) = names.iter().position(|n| *n == name)
                    && out[i].is_none()
                {
                    out[i] = Some(s.st_value(LE));
                }
            }
            if out.iter().all(Option::is_some) {
                break;
            }
        }
        out
    }

    /// Calls `f(name, type, desc)` for every note in SHT_NOTE sections, else in PT_NOTE segments.
    pub fn for_each_note(&self, mut f: impl FnMut(&'d [u8], u32, &'d [u8])) {
        let mut ranges: Vec<&'d [u8]> = self
            .sections
            .iter()
            .filter(|s| s.sh_type == elf::SHT_NOTE)
            .filter_map(|s| self.section_data(s))
            .collect();
        if ranges.is_empty() {
            ranges = self
                .note_segs
                .iter()
                .filter_map(|&(o, n)| {
                    self.data
                        .get(usize::try_from(o).ok()?..usize::try_from(o.checked_add(n)?).ok()?)
                })
                .collect();
        }
        for mut b in ranges {
            while b.len() >= 12 {
                let namesz = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let descsz = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
                let ty = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
                let name_end = 12usize.saturating_add(namesz);
                let desc_start = name_end.saturating_add(3) & !3;
                let desc_end = desc_start.saturating_add(descsz);
                let (Some(name), Some(desc)) = (b.get(12..name_end), b.get(desc_start..desc_end))
                else {
                    break;
                };
                let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
                f(name, ty, desc);
                let next = desc_end.saturating_add(3) & !3;
                b = b.get(next..).unwrap_or(&[]);
            }
        }
    }
}
