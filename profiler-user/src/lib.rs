//! gprof-bpf: profile unmodified, running Go programs with eBPF.
//!
//! The pipeline, one module per stage:
//! [`sampler`] (kernel program, maps, drain) → [`process`] (which file and offset an address
//! belongs to) → [`unwind`] (repair the top of Go stacks) → [`symbolize`] (gopclntab, ELF,
//! kallsyms) → [`profile`] (the one model every output reads) → [`report`] (listing, top,
//! pprof, flamegraph, collapsed stacks).

pub mod addr2line;
pub mod process;
pub mod profile;
pub mod record;
pub mod report;
pub mod sampler;
pub mod symbolize;
pub mod unwind;
