//! Symbolization sources: Go's own pclntab, ELF symbols/DWARF for non-Go code, kallsyms for
//! the kernel.

pub mod buildinfo;
pub mod gopclntab;
