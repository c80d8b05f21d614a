//! Types shared by the in-kernel sampler and the userspace agent.
//!
//! Everything here is `#[repr(C)]` plain data: the kernel program writes it into maps and the
//! agent reads the same bytes back.
#![no_std]

/// Deepest user stack the kernel walks. Deeper stacks are kept (truncated at this depth) and
/// counted in [`Stat::TruncatedStacks`] so the report can say so.
pub const MAX_USER_FRAMES: usize = 192;

/// Entries of each count map (one per distinct key per drain interval).
pub const MAX_COUNT_ENTRIES: u32 = 32 * 1024;
/// Stacks of up to this many frames are stored in the (cheaper) short-stack maps.
pub const SHORT_STACK_FRAMES: usize = 32;
/// Entries of each short-stack map (distinct stacks per drain interval).
pub const MAX_SHORT_STACKS: u32 = 8 * 1024;
/// Entries of each long-stack map.
pub const MAX_LONG_STACKS: u32 = 2 * 1024;
/// Entries of each kernel stack-trace map.
pub const MAX_KERNEL_STACKS: u32 = 4 * 1024;
/// Entries of the process filter.
pub const MAX_TARGETS: u32 = 64 * 1024;

/// Aggregation key: one count per distinct (process, thread, image, stacks, frame-0 registers).
///
/// The two words at SP and `bp - sp` let userspace repair frame 0 of a Go stack: a frameless
/// leaf (or a prologue/epilogue PC) has not saved BP, so the frame-pointer walk skips its caller;
/// the pcsp table then says where the return address is. They are kept in the small count key
/// rather than in the deduplicated stack so that stacks stay shared.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SampleKey {
    pub tgid: u32,
    pub tid: u32,
    /// Bumped by the exec tracepoint: tells apart the images a pid ran over time.
    pub generation: u32,
    /// Id in the kernel stack map, or a negative errno (no kernel stack / lost).
    pub kernel_stack_id: i32,
    /// Key in the user stack map; 0 means no user stack.
    pub user_stack_hash: u64,
    /// `[sp]` and `[sp + 8]` of the user registers (0 if unreadable).
    pub sp_words: [u64; 2],
    /// `bp - sp` of the user registers (wrapping).
    pub bp_minus_sp: u64,
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
#[derive(Clone, Copy)]
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

/// Event sent to userspace through the ring buffer when the set of sampled images changes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEvent {
    pub kind: u32,
    pub tgid: u32,
    /// For forks: the child's pid. For execs: the new generation.
    pub value: u32,
    pub _pad: u32,
}

pub const EVENT_FORK: u32 = 1;
pub const EVENT_EXEC: u32 = 2;

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
}
pub const CONTROL_SLOTS: u32 = 4;

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
    /// Fork/exec events dropped because the ring buffer was full.
    LostEvents = 9,
}
pub const STAT_SLOTS: u32 = 10;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] data with no padding-sensitive invariants.
    unsafe impl aya::Pod for super::SampleKey {}
    unsafe impl aya::Pod for super::UserStack {}
    unsafe impl aya::Pod for super::ShortStack {}
    unsafe impl aya::Pod for super::TargetInfo {}
    unsafe impl aya::Pod for super::ProcessEvent {}
}
