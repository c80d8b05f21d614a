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
    /// `None` before Go 1.23 (no `syscallbp` field).
    pub g_syscallbp: Option<u32>,
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

/// Every row of the table, oldest release first.
pub fn rows() -> &'static [Layout] {
    TABLE
}

/// Goroutine statuses (`runtime._G*`; values unchanged since Go 1.0, 10 and 11 new in 1.26).
pub mod status {
    pub const IDLE: u32 = 0;
    pub const RUNNABLE: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const SYSCALL: u32 = 3;
    pub const WAITING: u32 = 4;
    pub const DEAD: u32 = 6;
    pub const COPYSTACK: u32 = 8;
    pub const PREEMPTED: u32 = 9;
    /// Go 1.26+: a goroutine the GC found leaked.
    pub const LEAKED: u32 = 10;
    /// Go 1.26+: a dead g attached to an extra M for cgo callbacks.
    pub const DEADEXTRA: u32 = 11;
    /// OR'ed into the status while the GC scans the stack.
    pub const SCAN: u32 = 0x1000;
}

/// `runtime.hmap` (Go ≤ 1.23): offset of `count` (int).
pub const HMAP_COUNT: u32 = 0;
/// `runtime.hmap`: offset of `B` (u8, log2 of the bucket count).
pub const HMAP_B: u32 = 9;
/// `runtime.hmap`: offset of `buckets` (pointer).
pub const HMAP_BUCKETS: u32 = 16;
/// Size of one `map[string]string` bucket: `tophash [8]u8`, `keys [8]string`,
/// `elems [8]string`, `overflow *bucket`.
pub const MAP_BUCKET_STRING_STRING: u32 = 8 + 8 * 16 + 8 * 16 + 8;
/// Size of one Go ≥ 1.24 label (`{key, value string}`).
pub const LABEL_SIZE: u32 = 32;

/// One row per Go release (linux/amd64). Go 1.20 has no row: its toolchain is not in the test
/// matrix, so no row for it could be checked against DWARF.
static TABLE: &[Layout] = &[
    row(
        (1, 19),
        Gobuf::WithRet,
        None,
        152,
        None,
        296,
        312,
        360,
        LabelsRepr::Map,
    ),
    row(
        (1, 21),
        Gobuf::WithRet,
        None,
        152,
        Some(272),
        280,
        296,
        344,
        LabelsRepr::Map,
    ),
    row(
        (1, 22),
        Gobuf::WithRet,
        None,
        152,
        Some(272),
        280,
        296,
        344,
        LabelsRepr::Map,
    ),
    row(
        (1, 23),
        Gobuf::WithRet,
        Some(128),
        160,
        Some(280),
        288,
        304,
        352,
        LabelsRepr::Map,
    ),
    row(
        (1, 24),
        Gobuf::WithRet,
        Some(128),
        160,
        Some(280),
        288,
        304,
        352,
        LabelsRepr::Slice,
    ),
    row(
        (1, 25),
        Gobuf::NoRet,
        Some(120),
        152,
        Some(272),
        280,
        296,
        344,
        LabelsRepr::Slice,
    ),
    row(
        (1, 26),
        Gobuf::NoRet,
        Some(120),
        152,
        Some(280),
        288,
        304,
        352,
        LabelsRepr::Slice,
    ),
    row(
        (1, 27),
        Gobuf::NoRet,
        Some(120),
        152,
        Some(280),
        288,
        304,
        352,
        LabelsRepr::Slice,
    ),
];

/// `runtime.gobuf` lost its `ret` field in Go 1.25, moving everything after `g.sched` (and
/// `m.morebuf`) by −8.
#[derive(Clone, Copy)]
enum Gobuf {
    WithRet,
    NoRet,
}

/// A row from the fields that move independently; the rest follows from the field order of
/// `runtime.g` (`stack`, `stackguard0/1`, `_panic`, `_defer`, `m`, `sched`, `syscallsp`,
/// `syscallpc`, [`syscallbp`], `stktopsp`, `param`, `atomicstatus`, `stackLock`, `goid`,
/// `schedlink`, `waitsince`, `waitreason`) and of `runtime.m` (`g0`, `morebuf`, `divmod`,
/// `_`, `procid`, …, `curg`).
#[allow(clippy::too_many_arguments)]
const fn row(
    version: (u32, u32),
    gobuf: Gobuf,
    g_syscallbp: Option<u32>,
    g_goid: u32,
    g_parent_goid: Option<u32>,
    g_gopc: u32,
    g_startpc: u32,
    g_labels: u32,
    labels: LabelsRepr,
) -> Layout {
    // gobuf: sp, pc, g, ctxt, [ret], lr, bp.
    let (gobuf_bp, gobuf_size) = match gobuf {
        Gobuf::WithRet => (48, 56),
        Gobuf::NoRet => (40, 48),
    };
    let sched = 56;
    let syscallsp = sched + gobuf_size;
    Layout {
        version,
        g_stack_lo: 0,
        g_stack_hi: 8,
        g_m: 48,
        g_sched_sp: sched,
        g_sched_pc: sched + 8,
        g_sched_bp: sched + gobuf_bp,
        g_syscallsp: syscallsp,
        g_syscallpc: syscallsp + 8,
        g_syscallbp,
        g_atomicstatus: g_goid - 8,
        g_goid,
        g_waitsince: g_goid + 16,
        g_waitreason: g_goid + 24,
        g_parent_goid,
        g_gopc,
        g_startpc,
        g_labels,
        labels,
        // m: g0 (8), morebuf (gobuf), divmod (4) + pad (4), procid.
        m_procid: 8 + gobuf_size + 8,
        m_curg: match gobuf {
            Gobuf::WithRet => 192,
            Gobuf::NoRet => 184,
        },
    }
}

/// The text Go prints for wait reason `reason` (`g.waitreason`) of release `version`, as
/// `runtime.waitReason.String` does; `None` for an index out of the table (or a release the
/// table does not know).
pub fn wait_reason(version: (u32, u32), reason: u8) -> Option<&'static str> {
    let table = match version {
        (1, 19) => WAIT_REASONS_1_19,
        (1, 21) => WAIT_REASONS_1_21,
        (1, 22) => WAIT_REASONS_1_22,
        (1, 23) => WAIT_REASONS_1_23,
        (1, 24) => WAIT_REASONS_1_24,
        (1, 25) => WAIT_REASONS_1_25,
        (1, 26) | (1, 27) => WAIT_REASONS_1_26,
        _ => return None,
    };
    table.get(usize::from(reason)).copied()
}

/// The status word Go prints (`runtime.gStatusStrings`) for `status` (scan bit removed).
pub fn status_string(version: (u32, u32), status: u32) -> &'static str {
    match status {
        status::IDLE => "idle",
        status::RUNNABLE => "runnable",
        status::RUNNING => "running",
        status::SYSCALL => "syscall",
        status::WAITING => "waiting",
        status::DEAD => "dead",
        status::COPYSTACK => "copystack",
        status::PREEMPTED => "preempted",
        status::LEAKED if version >= (1, 26) => "leaked",
        status::DEADEXTRA if version >= (1, 26) => "waiting for cgo callback",
        _ => "???",
    }
}

// The tables below are `runtime.waitReasonStrings` of each release, in `waitReason` order
// (the order changed in 1.26); the tests compare them with the array in each toolchain's
// build.

/// `runtime.waitReasonStrings` of Go 1.19, by `waitReason` value.
static WAIT_REASONS_1_19: &[&str] = &[
    "",
    "GC assist marking",
    "IO wait",
    "chan receive (nil chan)",
    "chan send (nil chan)",
    "dumping heap",
    "garbage collection",
    "garbage collection scan",
    "panicwait",
    "select",
    "select (no cases)",
    "GC assist wait",
    "GC sweep wait",
    "GC scavenge wait",
    "chan receive",
    "chan send",
    "finalizer wait",
    "force gc (idle)",
    "semacquire",
    "sleep",
    "sync.Cond.Wait",
    "timer goroutine (idle)",
    "trace reader (blocked)",
    "wait for GC cycle",
    "GC worker (idle)",
    "preempted",
    "debug call",
];

/// `runtime.waitReasonStrings` of Go 1.21, by `waitReason` value.
static WAIT_REASONS_1_21: &[&str] = &[
    "",
    "GC assist marking",
    "IO wait",
    "chan receive (nil chan)",
    "chan send (nil chan)",
    "dumping heap",
    "garbage collection",
    "garbage collection scan",
    "panicwait",
    "select",
    "select (no cases)",
    "GC assist wait",
    "GC sweep wait",
    "GC scavenge wait",
    "chan receive",
    "chan send",
    "finalizer wait",
    "force gc (idle)",
    "semacquire",
    "sleep",
    "sync.Cond.Wait",
    "sync.Mutex.Lock",
    "sync.RWMutex.RLock",
    "sync.RWMutex.Lock",
    "trace reader (blocked)",
    "wait for GC cycle",
    "GC worker (idle)",
    "GC worker (active)",
    "preempted",
    "debug call",
    "GC mark termination",
    "stopping the world",
];

/// `runtime.waitReasonStrings` of Go 1.22, by `waitReason` value.
static WAIT_REASONS_1_22: &[&str] = &[
    "",
    "GC assist marking",
    "IO wait",
    "chan receive (nil chan)",
    "chan send (nil chan)",
    "dumping heap",
    "garbage collection",
    "garbage collection scan",
    "panicwait",
    "select",
    "select (no cases)",
    "GC assist wait",
    "GC sweep wait",
    "GC scavenge wait",
    "chan receive",
    "chan send",
    "finalizer wait",
    "force gc (idle)",
    "semacquire",
    "sleep",
    "sync.Cond.Wait",
    "sync.Mutex.Lock",
    "sync.RWMutex.RLock",
    "sync.RWMutex.Lock",
    "trace reader (blocked)",
    "wait for GC cycle",
    "GC worker (idle)",
    "GC worker (active)",
    "preempted",
    "debug call",
    "GC mark termination",
    "stopping the world",
    "flushing proc caches",
    "trace goroutine status",
    "trace proc status",
    "page trace flush",
    "coroutine",
];

/// `runtime.waitReasonStrings` of Go 1.23, by `waitReason` value.
static WAIT_REASONS_1_23: &[&str] = &[
    "",
    "GC assist marking",
    "IO wait",
    "chan receive (nil chan)",
    "chan send (nil chan)",
    "dumping heap",
    "garbage collection",
    "garbage collection scan",
    "panicwait",
    "select",
    "select (no cases)",
    "GC assist wait",
    "GC sweep wait",
    "GC scavenge wait",
    "chan receive",
    "chan send",
    "finalizer wait",
    "force gc (idle)",
    "semacquire",
    "sleep",
    "sync.Cond.Wait",
    "sync.Mutex.Lock",
    "sync.RWMutex.RLock",
    "sync.RWMutex.Lock",
    "trace reader (blocked)",
    "wait for GC cycle",
    "GC worker (idle)",
    "GC worker (active)",
    "preempted",
    "debug call",
    "GC mark termination",
    "stopping the world",
    "flushing proc caches",
    "trace goroutine status",
    "trace proc status",
    "page trace flush",
    "coroutine",
    "GC weak to strong wait",
];

/// `runtime.waitReasonStrings` of Go 1.24, by `waitReason` value.
static WAIT_REASONS_1_24: &[&str] = &[
    "",
    "GC assist marking",
    "IO wait",
    "chan receive (nil chan)",
    "chan send (nil chan)",
    "dumping heap",
    "garbage collection",
    "garbage collection scan",
    "panicwait",
    "select",
    "select (no cases)",
    "GC assist wait",
    "GC sweep wait",
    "GC scavenge wait",
    "chan receive",
    "chan send",
    "finalizer wait",
    "force gc (idle)",
    "semacquire",
    "sleep",
    "sync.Cond.Wait",
    "sync.Mutex.Lock",
    "sync.RWMutex.RLock",
    "sync.RWMutex.Lock",
    "sync.WaitGroup.Wait",
    "trace reader (blocked)",
    "wait for GC cycle",
    "GC worker (idle)",
    "GC worker (active)",
    "preempted",
    "debug call",
    "GC mark termination",
    "stopping the world",
    "flushing proc caches",
    "trace goroutine status",
    "trace proc status",
    "page trace flush",
    "coroutine",
    "GC weak to strong wait",
    "synctest.Run",
    "synctest.Wait",
    "chan receive (synctest)",
    "chan send (synctest)",
    "select (synctest)",
];

/// `runtime.waitReasonStrings` of Go 1.25, by `waitReason` value.
static WAIT_REASONS_1_25: &[&str] = &[
    "",
    "GC assist marking",
    "IO wait",
    "chan receive (nil chan)",
    "chan send (nil chan)",
    "dumping heap",
    "garbage collection",
    "garbage collection scan",
    "panicwait",
    "select",
    "select (no cases)",
    "GC assist wait",
    "GC sweep wait",
    "GC scavenge wait",
    "chan receive",
    "chan send",
    "finalizer wait",
    "force gc (idle)",
    "GOMAXPROCS updater (idle)",
    "semacquire",
    "sleep",
    "sync.Cond.Wait",
    "sync.Mutex.Lock",
    "sync.RWMutex.RLock",
    "sync.RWMutex.Lock",
    "sync.WaitGroup.Wait",
    "trace reader (blocked)",
    "wait for GC cycle",
    "GC worker (idle)",
    "GC worker (active)",
    "preempted",
    "debug call",
    "GC mark termination",
    "stopping the world",
    "flushing proc caches",
    "trace goroutine status",
    "trace proc status",
    "page trace flush",
    "coroutine",
    "GC weak to strong wait",
    "synctest.Run",
    "synctest.Wait",
    "chan receive (durable)",
    "chan send (durable)",
    "select (durable)",
    "sync.WaitGroup.Wait (durable)",
    "cleanup wait",
];

/// `runtime.waitReasonStrings` of Go 1.26, 1.27, by `waitReason` value.
static WAIT_REASONS_1_26: &[&str] = &[
    "",
    "GC assist marking",
    "IO wait",
    "dumping heap",
    "garbage collection",
    "garbage collection scan",
    "panicwait",
    "GC assist wait",
    "GC sweep wait",
    "GC scavenge wait",
    "finalizer wait",
    "force gc (idle)",
    "GOMAXPROCS updater (idle)",
    "semacquire",
    "sleep",
    "chan receive (nil chan)",
    "chan send (nil chan)",
    "select (no cases)",
    "select",
    "chan receive",
    "chan send",
    "sync.Cond.Wait",
    "sync.Mutex.Lock",
    "sync.RWMutex.RLock",
    "sync.RWMutex.Lock",
    "sync.WaitGroup.Wait",
    "trace reader (blocked)",
    "wait for GC cycle",
    "GC worker (idle)",
    "GC worker (active)",
    "preempted",
    "debug call",
    "GC mark termination",
    "stopping the world",
    "flushing proc caches",
    "trace goroutine status",
    "trace proc status",
    "page trace flush",
    "coroutine",
    "GC weak to strong wait",
    "synctest.Run",
    "synctest.Wait",
    "chan receive (durable)",
    "chan send (durable)",
    "select (durable)",
    "sync.WaitGroup.Wait (durable)",
    "cleanup wait",
];
