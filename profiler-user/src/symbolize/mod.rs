//! Symbolization sources: Go's own pclntab (stripped binaries included, inlined frames
//! expanded), ELF symbols for non-Go code, kallsyms for the kernel. The readers are pure over
//! byte slices; opening files is the `process` module's job.

pub mod buildinfo;
pub mod dwarf;
pub mod elf;
pub mod gopclntab;
pub mod kallsyms;
pub mod symbolizer;
