//! Types shared by the in-kernel sampler and the userspace agent.
//!
//! Everything here is `#[repr(C)]` plain data: the kernel program writes it into maps and the
//! agent reads the same bytes back.
#![no_std]

/// Deepest user stack the kernel walks. Deeper stacks are kept (truncated at this depth) and
/// counted in [`Stat::TruncatedStacks`] so the report can say so.
pub const MAX_USER_FRAMES: usize = 192;

/// Default entries of each count map. The agent sets the real sizes at load time from the CPU
/// count, the rate and the drain interval (`EbpfLoader::set_max_entries`); these are what the
/// object file declares.
pub const MAX_COUNT_ENTRIES: u32 = 32 * 1024;
/// Stacks of up to this many frames are stored in the (cheaper) short-stack maps.
pub const SHORT_STACK_FRAMES: usize = 32;
/// Default entries of each short-stack map (distinct stacks per drain interval).
pub const MAX_SHORT_STACKS: u32 = 8 * 1024;
/// Default entries of each long-stack map.
pub const MAX_LONG_STACKS: u32 = 2 * 1024;
/// Default entries of each kernel stack-trace map.
pub const MAX_KERNEL_STACKS: u32 = 4 * 1024;
/// Entries of the process filter.
pub const MAX_TARGETS: u32 = 64 * 1024;
/// Default entries of the frame-0 rule map (an LRU: old rules are evicted, never lost samples).
pub const MAX_FRAME0_RULES: u32 = 64 * 1024;
/// Entries of the Go process map (per-process runtime offsets).
pub const MAX_GO_PROCS: u32 = 16 * 1024;
/// Default entries of the label-set map (an LRU keyed by the content hash: a set evicted
/// before userspace read it is re-inserted by its next sample).
pub const MAX_LABEL_SETS: u32 = 4 * 1024;
/// Caps of one interned label set: at most this many labels ...
pub const MAX_LABELS: usize = 8;
/// ... of at most this many bytes of key and of value each. What is cut is flagged in the
/// set ([`LABEL_SET_CUT_LABELS`], [`LABEL_SET_CUT_BYTES`]) and counted ([`Stat::LabelsCut`]).
pub const MAX_LABEL_BYTES: usize = 64;

/// Aggregation key (ABI v2): one count per distinct (process image, stacks, frame-0 words,
/// dimensions). Fields that are 0 unless asked for keep in-kernel aggregation effective.
///
/// Frame-0 repair: a frameless Go leaf (or a prologue/epilogue PC) has not saved BP, so the
/// frame-pointer walk skips its caller; the return address is then at `[SP]` or `[SP+8]`
/// (userspace knows which from pcsp). Those words are random data for every other PC and would
/// make nearly every sample a new key, so the kernel keeps them only for IPs userspace has not
/// yet classified, and for the others only the word the rule names (see [`Frame0Rule`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SampleKey {
    pub tgid: u32,
    /// Bumped by the exec tracepoint: tells apart the images a pid ran over time.
    pub generation: u32,
    /// The thread id with `--threads`, else 0.
    pub tid: u32,
    /// Id in the kernel stack map, or a negative errno (no kernel stack / lost).
    pub kernel_stack_id: i32,
    /// Key in the user stack map; 0 means no user stack.
    pub user_stack_hash: u64,
    /// `[sp]` and `[sp + 8]` of the user registers as the frame-0 rule keeps them (else 0).
    pub frame0: [u64; 2],
    /// [`KEY_FLAG_BP_IS_SP`], the event kind in bits 8..16 ([`EVENT_KIND_CPU`]...).
    pub flags: u32,
    /// Interned pprof label set of the goroutine (0: none or not collected).
    pub label_set: u32,
    /// Goroutine id with `--goroutines`, else 0.
    pub goid: u64,
}

/// `SampleKey::flags`: BP equalled SP at the sample (the frame is established at SP delta 8).
pub const KEY_FLAG_BP_IS_SP: u32 = 1;
/// `SampleKey::flags` bits 8..16: what the sample measures.
pub const EVENT_KIND_SHIFT: u32 = 8;
pub const EVENT_KIND_CPU: u32 = 0;

/// The value of a count entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SampleValue {
    pub count: u64,
    /// CPU time these samples stand for, in nanoseconds: per sample, the time since the
    /// previous firing of the perf event on its CPU (measured, so the part of a period cut
    /// short by a jitter restart is not lost), else the configured period.
    pub weight_ns: u64,
}

/// Key of the frame-0 rule map: an IP of a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Frame0Key {
    pub tgid: u32,
    pub generation: u32,
    pub ip: u64,
}

/// What the kernel keeps of `[SP]`, `[SP+8]` at an IP, as userspace learned it from pcsp.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame0Rule {
    /// The frame is established (or the IP is not Go code): keep neither word.
    Neither = 1,
    /// SP delta 0: the return address is `[SP]`.
    Word0 = 2,
    /// SP delta 8: the return address is `[SP+8]` unless BP == SP.
    Word1 = 3,
}

/// A user stack: `frames[0]` is the interrupted IP, the rest are return addresses from the
/// frame-pointer walk, innermost first.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UserStack {
    pub len: u32,
    /// Non-zero when the walk stopped at [`MAX_USER_FRAMES`] with frames left.
    pub truncated: u32,
    pub frames: [u64; MAX_USER_FRAMES],
}

/// A stack of at most [`SHORT_STACK_FRAMES`] frames: the same layout as the start of
/// [`UserStack`], so the kernel stores the first bytes of its scratch stack as is.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct ShortStack {
    pub len: u32,
    pub truncated: u32,
    pub frames: [u64; SHORT_STACK_FRAMES],
}

/// Per-target state in the filter map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetInfo {
    pub generation: u32,
    /// Non-zero: children of this process are added to the filter (`--subprocesses`).
    pub follow_children: u32,
}

/// How a Go release stores a goroutine's pprof labels behind `g.labels`.
pub const GO_LABELS_NONE: u32 = 0;
/// Go ≤ 1.23: a pointer to a `map[string]string` (runtime hmap, 272-byte buckets).
pub const GO_LABELS_MAP: u32 = 1;
/// Go ≥ 1.24: a pointer to `labelMap{list []label{key, value string}}`, sorted by key.
pub const GO_LABELS_SLICE: u32 = 2;

/// Per Go process (keyed by tgid): where its goroutine id and labels are, for the image of
/// exec generation `generation` (another generation reads nothing).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoProcInfo {
    pub generation: u32,
    /// Offset of the `g` slot from the thread's fsbase (−8 for internally linked binaries).
    pub tls_g_offset: i32,
    pub g_m: u32,
    pub m_curg: u32,
    pub g_goid: u32,
    pub g_labels: u32,
    /// [`GO_LABELS_MAP`], [`GO_LABELS_SLICE`] or [`GO_LABELS_NONE`] (goroutine id only).
    pub labels_repr: u32,
    /// Offset of `g.stack` (`{lo, hi}`): the running goroutine's stack bounds let the frame
    /// walk copy the used stack in one read.
    pub g_stack: u32,
}

/// One label of an interned set: the first `key_len`/`val_len` bytes of `key`/`val` (the
/// rest is zero). A length with [`LABEL_UNRESOLVED`] set means the kernel could not read the
/// string (its page was not resident: reclaimed file pages of the binary's rodata, where
/// string literals live): the first 8 bytes are then its address in the process, and the
/// length without the flag is its length, for userspace to read.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LabelPair {
    pub key_len: u32,
    pub val_len: u32,
    pub key: [u8; MAX_LABEL_BYTES],
    pub val: [u8; MAX_LABEL_BYTES],
}

/// An interned label set, the value of the label-set map (key: `SampleKey::label_set`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LabelSet {
    /// Pairs in use (≤ [`MAX_LABELS`]); a pair with an empty key is no label (an empty slot
    /// of a Go ≤ 1.23 label map).
    pub len: u32,
    /// [`LABEL_SET_CUT_LABELS`] | [`LABEL_SET_CUT_BYTES`].
    pub flags: u32,
    pub pairs: [LabelPair; MAX_LABELS],
}

/// `LabelSet::flags`: the goroutine had more labels than were kept.
pub const LABEL_SET_CUT_LABELS: u32 = 1;
/// `LabelSet::flags`: a key or value was longer than [`MAX_LABEL_BYTES`] and was cut.
pub const LABEL_SET_CUT_BYTES: u32 = 2;
/// `LabelSet::flags`: some strings are addresses to resolve in the sampled process (see
/// [`LabelPair`]); the set's id then includes the process (addresses are per process).
pub const LABEL_SET_UNRESOLVED: u32 = 4;
/// `LabelPair::key_len`/`val_len`: the string is unresolved (see [`LabelPair`]).
pub const LABEL_UNRESOLVED: u32 = 1 << 31;

/// Event sent to userspace through the ring buffer when the set of sampled images changes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEvent {
    pub kind: u32,
    pub tgid: u32,
    /// For forks: the child's pid. For execs: the new generation. For exits: 0.
    pub value: u32,
    pub _pad: u32,
}

pub const EVENT_FORK: u32 = 1;
pub const EVENT_EXEC: u32 = 2;
/// A process (thread group leader) exited; `value` is 0.
pub const EVENT_EXIT: u32 = 3;

/// Slots of the control array written by userspace.
#[repr(u32)]
#[derive(Clone, Copy, Debug)]
pub enum Control {
    /// Which of the two map sets the kernel writes to (0 or 1); userspace drains the other.
    ActiveSet = 0,
    /// Non-zero: sample every process (`--all`), not only the filter map's.
    AllProcesses = 1,
    /// Offset of `child_pid` in the sched_process_fork tracepoint record (read from tracefs).
    ForkChildPidOffset = 2,
    /// Non-zero: the thread id is part of the key (`--threads`).
    Threads = 3,
    /// The current sampling period in nanoseconds (userspace updates it when it jitters the
    /// period): the weight of a sample when the time since the last firing is unknown or
    /// implausible, and the bound of what is plausible.
    PeriodNanos = 4,
    /// k ≥ 2: the timer runs k× faster than the sampling rate and the kernel keeps each
    /// firing with probability 1/k, weighted k × the time since the previous firing
    /// (0 or 1: keep every firing). Decorrelates the samples of one jitter draw.
    Thinning = 5,
    /// Non-zero: the goroutine id is part of the key (`--goroutines`).
    Goroutines = 6,
    /// Offset of `thread.fsbase` in the kernel's `task_struct` (from its BTF); 0: unknown,
    /// nothing of the runtime is read (not even `g.stack` for the frame walk).
    FsbaseOffset = 7,
    /// Non-zero: read the pprof labels of the goroutine (off with `--no-labels`).
    Labels = 8,
}
pub const CONTROL_SLOTS: u32 = 9;

/// Bytes of the running goroutine's stack (from SP up to `g.stack.hi`) copied in one user
/// read per sample; the frame walk reads the records inside it from the copy and only the
/// ones beyond it (a deeper stack, another stack) one read each.
pub const STACK_COPY_BYTES: usize = 16 * 1024;

/// Per-CPU counters (index into the stats array).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Every perf event the program saw (all processes, all CPUs).
    Events = 0,
    /// Samples of wanted processes.
    Samples = 1,
    /// Lost: the count map was full.
    LostCountMapFull = 2,
    /// Lost user stack: a stack map was full.
    LostUserStackMapFull = 3,
    /// Lost kernel stack: bucket collision in the kernel stack map.
    LostKernelStackCollision = 4,
    /// Lost kernel stack: map full or another error.
    LostKernelStackOther = 5,
    /// The frame-pointer walk hit an unreadable address (stack ends early, sample kept).
    UserReadFault = 6,
    /// The user stack was deeper than MAX_USER_FRAMES (sample kept, truncated).
    TruncatedStacks = 7,
    /// Samples of wanted processes that had no user context (kernel threads).
    NoUserContext = 8,
    /// Fork/exec/exit events dropped because the ring buffer was full.
    LostEvents = 9,
    /// Samples that found their key already present (aggregated in the kernel).
    CountHits = 10,
    /// Samples whose IP had a frame-0 rule.
    Frame0RuleHits = 11,
    /// Samples of a Go process whose goroutine could not be read (fsbase, g, m, curg or the
    /// labels unreadable): the sample is kept without goroutine id or labels.
    GoReadFault = 12,
    /// Samples whose label set was cut to the caps (too many labels, too long strings).
    LabelsCut = 13,
    /// Samples whose label set could not be interned (map error): kept without labels.
    LabelSetsLost = 14,
}
pub const STAT_SLOTS: u32 = 15;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] data with no padding-sensitive invariants.
    unsafe impl aya::Pod for super::SampleKey {}
    unsafe impl aya::Pod for super::SampleValue {}
    unsafe impl aya::Pod for super::Frame0Key {}
    unsafe impl aya::Pod for super::UserStack {}
    unsafe impl aya::Pod for super::ShortStack {}
    unsafe impl aya::Pod for super::TargetInfo {}
    unsafe impl aya::Pod for super::ProcessEvent {}
    unsafe impl aya::Pod for super::GoProcInfo {}
    unsafe impl aya::Pod for super::LabelSet {}
}
