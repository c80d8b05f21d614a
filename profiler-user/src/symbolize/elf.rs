//! Symbols of non-Go code (libc, cgo, the vdso-less rest) from the ELF symbol tables.

use object::{Object as _, ObjectSymbol as _, SymbolKind};

/// Function symbols sorted by address.
#[derive(Default)]
pub struct ElfSymbols {
    symbols: Vec<(u64, u64, String)>,
}

impl ElfSymbols {
    /// Reads `.symtab` and `.dynsym`; an unparsable file yields an empty table.
    pub fn parse(data: &[u8]) -> Self {
        let Ok(file) = object::File::parse(data) else {
            return Self::default();
        };
        let mut symbols: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
            .filter(|(_, _, n)| !n.is_empty())
            .collect();
        symbols.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        symbols.dedup_by_key(|s| s.0);
        ElfSymbols { symbols }
    }

    /// The function containing link-time address `addr`: (name, start).
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.symbols.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &self.symbols[i];
        // Sized symbols must contain the address; unsized ones (hand-written asm) cover up to
        // the next symbol.
        if *size != 0 && addr >= start + size {
            return None;
        }
        Some((name, *start))
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}
