//! Tests of the Go-runtime layer against real builds of every installed toolchain. Oracles:
//! the DWARF of the unstripped build ([`dwarf`]), its `.symtab`, and the program's own
//! `runtime.Stack` — never this module's code.

mod binary;
mod dwarf;
mod layout;
