//! The Go runtime seen from outside: where a running Go program keeps its goroutines.
//!
//! Everything version-specific lives in [`layout`]: one row per Go release of the offsets of
//! the runtime structures we read (`g`, `m`, the label set). The kernel program reads a
//! goroutine's id and labels at each sample with these offsets; `dump` reads every goroutine.
//! A Go version newer than the table gets `None`: CPU samples without goroutine data, never
//! wrong labels.

pub mod binary;
pub mod dump;
pub mod layout;

pub use layout::{LabelsRepr, Layout, layout_for};

#[cfg(test)]
mod tests;
