//! Symbols of non-Go code (libc, cgo, other native code) from the ELF symbol tables.
//!
//! Names are not copied: each symbol keeps the offset of its name in the file image, so a
//! 100 MB library's table costs 20 bytes per function and no allocation per symbol.

/// Function symbols sorted by address, over the file image `D`.
pub struct ElfSymbols<D: AsRef<[u8]>> {
    data: D,
    /// (address, size, offset of the NUL-terminated name in `data`)
    symbols: Vec<(u64, u64, u32)>,
}

impl<D: AsRef<[u8]>> ElfSymbols<D> {
    /// Reads `.symtab` and `.dynsym`; an unparsable file yields an empty table.
    ///
    /// Only the symbol entries are read; names are located by their string-table offset and
    /// read at lookup time, so the (often much larger) string tables of big libraries are
    /// never paged in for symbols nobody samples.
    pub fn parse(data: D) -> Self {
        let symbols = Self::index(data.as_ref()).unwrap_or_default();
        ElfSymbols { data, symbols }
    }

    fn index(bytes: &[u8]) -> Option<Vec<(u64, u64, u32)>> {
        use object::elf::{STT_FUNC, STT_GNU_IFUNC};
        use object::read::elf::{ElfFile64, SectionHeader as _, Sym as _};
        let file = ElfFile64::<object::Endianness>::parse(bytes).ok()?;
        let endian = file.endian();
        let sections = file.elf_section_table();
        let mut symbols = Vec::new();
        for table in [file.elf_symbol_table(), file.elf_dynamic_symbol_table()] {
            if table.is_empty() {
                continue;
            }
            let Ok(strtab) = sections.section(table.string_section()) else {
                continue;
            };
            let str_off = strtab.sh_offset(endian);
            let str_size = strtab.sh_size(endian);
            for sym in table.symbols() {
                let kind = sym.st_type();
                if (kind != STT_FUNC && kind != STT_GNU_IFUNC) || sym.st_value(endian) == 0 {
                    continue;
                }
                let name = u64::from(sym.st_name(endian));
                if name == 0 || name >= str_size {
                    continue;
                }
                let Ok(off) = u32::try_from(str_off + name) else {
                    continue;
                };
                symbols.push((sym.st_value(endian), sym.st_size(endian), off));
            }
        }
        symbols.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        symbols.dedup_by_key(|s| s.0);
        symbols.shrink_to_fit();
        Some(symbols)
    }

    /// The function containing link-time address `addr`: (name, start).
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self
            .symbols
            .partition_point(|s| s.0 <= addr)
            .checked_sub(1)?;
        let (start, size, off) = self.symbols[i];
        // Sized symbols must contain the address; unsized ones (hand-written asm) cover up to
        // the next symbol.
        if size != 0 && addr >= start + size {
            return None;
        }
        // Names are NUL-terminated in the string table (bounded, in case it is corrupt).
        let tail = self.data.as_ref().get(off as usize..)?;
        let len = tail.iter().take(64 * 1024).position(|&b| b == 0)?;
        Some((std::str::from_utf8(&tail[..len]).ok()?, start))
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}
