//! gprof-bpf: profile unmodified, running Go programs with eBPF.
//!
//! The streaming pipeline, one module per stage (see `docs/architecture.md`):
//! [`sampler`] (kernel program, maps, drain; its own thread) → [`process`] (registry of
//! processes and images, which file and offset an address belongs to) → [`unwind`] (repair
//! the top of Go stacks) → [`pipeline`] (ingest into windows of symbol-independent stacks) →
//! [`symbolize`] (gopclntab, DWARF, ELF, kallsyms behind one cached seam) → [`profile`] (the
//! one model every output reads) → [`sink`] (finished windows) and [`report`] (listing, top,
//! pprof, flamegraph, collapsed stacks). [`record`] is the pipeline with one window.

pub mod addr2line;
pub mod agent;
pub mod capture;
pub mod goruntime;
pub mod pipeline;
pub mod process;
pub mod profile;
pub mod record;
pub mod report;
pub mod reporter;
pub mod sampler;
pub mod sink;
pub mod symbolize;
pub mod top;
pub mod unwind;
