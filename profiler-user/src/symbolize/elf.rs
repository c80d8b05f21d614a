//! Symbols of non-Go code (libc, cgo, other native code) from the ELF symbol tables.
//!
//! Names are not copied: each symbol keeps the offset of its name in the file image, so a
//! 100 MB library's table costs 24 bytes per function and no allocation per symbol.

use object::{Object as _, ObjectSymbol as _, SymbolKind};

/// Function symbols sorted by address, over the file image `D`.
pub struct ElfSymbols<D: AsRef<[u8]>> {
    data: D,
    /// (address, size, name offset in `data`, name length)
    symbols: Vec<(u64, u64, u32, u32)>,
}

impl<D: AsRef<[u8]>> ElfSymbols<D> {
    /// Reads `.symtab` and `.dynsym`; an unparsable file yields an empty table.
    pub fn parse(data: D) -> Self {
        let mut symbols = Vec::new();
        if let Ok(file) = object::File::parse(data.as_ref()) {
            let base = data.as_ref().as_ptr() as usize;
            let len = data.as_ref().len();
            for s in file.symbols().chain(file.dynamic_symbols()) {
                if s.kind() != SymbolKind::Text || s.address() == 0 {
                    continue;
                }
                let Ok(name) = s.name_bytes() else { continue };
                let off = (name.as_ptr() as usize).wrapping_sub(base);
                // Names always live in the file's string tables; anything else is skipped.
                if name.is_empty() || off >= len || std::str::from_utf8(name).is_err() {
                    continue;
                }
                let (Ok(off), Ok(n)) = (u32::try_from(off), u32::try_from(name.len())) else {
                    continue;
                };
                symbols.push((s.address(), s.size(), off, n));
            }
        }
        symbols.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        symbols.dedup_by_key(|s| s.0);
        symbols.shrink_to_fit();
        ElfSymbols { data, symbols }
    }

    /// The function containing link-time address `addr`: (name, start).
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self
            .symbols
            .partition_point(|s| s.0 <= addr)
            .checked_sub(1)?;
        let (start, size, off, n) = self.symbols[i];
        // Sized symbols must contain the address; unsized ones (hand-written asm) cover up to
        // the next symbol.
        if size != 0 && addr >= start + size {
            return None;
        }
        let bytes = self
            .data
            .as_ref()
            .get(off as usize..off as usize + n as usize)?;
        Some((std::str::from_utf8(bytes).ok()?, start))
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}
