//! Offsets of the Go runtime's structures, per Go version (linux/amd64).
//!
//! The test suite derives every row from the DWARF of that toolchain's own build, so the
//! table cannot drift from the runtime it describes.

/// How a goroutine's pprof labels are stored behind `g.labels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelsRepr {
    /// Go ≤ 1.23: `*labelMap`, a `map[string]string` (runtime `hmap`).
    Map,
    /// Go ≥ 1.24: `*labelMap{ list []label }`, a key-sorted slice of `{key, value string}`.
    Slice,
}

/// Byte offsets of the runtime fields we read, for one Go release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Go release, `(major, minor)`, e.g. `(1, 23)`.
    pub version: (u32, u32),
    pub g_stack_lo: u32,
    pub g_stack_hi: u32,
    pub g_m: u32,
    pub g_sched_sp: u32,
    pub g_sched_pc: u32,
    pub g_sched_bp: u32,
    pub g_syscallsp: u32,
    pub g_syscallpc: u32,
    pub g_atomicstatus: u32,
    pub g_goid: u32,
    pub g_waitsince: u32,
    pub g_waitreason: u32,
    /// `None` before Go 1.21 (no `parentGoid` field).
    pub g_parent_goid: Option<u32>,
    pub g_gopc: u32,
    pub g_startpc: u32,
    pub g_labels: u32,
    pub labels: LabelsRepr,
    pub m_procid: u32,
    pub m_curg: u32,
}

/// The layout of Go `major.minor`, or `None` when the table does not know that release.
pub fn layout_for(version: (u32, u32)) -> Option<&'static Layout> {
    TABLE.iter().find(|l| l.version == version)
}

/// One row per Go release. Filled in and checked against DWARF by the goroutine work.
static TABLE: &[Layout] = &[];
