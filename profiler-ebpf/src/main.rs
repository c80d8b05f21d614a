//! gprof-bpf's kernel side.
//!
//! * `sample` (perf_event, one software cpu-clock event per CPU): filters the wanted processes,
//!   walks the user stack by frame pointers (bounded, deeper than the kernel's 127-frame cap),
//!   takes the kernel stack with `bpf_get_stackid`, and counts samples per key in one of two
//!   map sets; userspace flips the active set and drains the other, so a recording of any
//!   length never fills the maps.
//! * `on_fork` / `on_exec` / `on_exit` (sched tracepoints): `--subprocesses`, image changes and
//!   process ends, sent to userspace as they happen so it can read a new image right away.
//!
//! Key layout and the frame-0 rule map are described in `profiler_ebpf::SampleKey` (ABI v2).
#![no_std]
#![no_main]
// The bpf target has no atomic types with read-modify-write methods; the intrinsic lowers to
// BPF's atomic add (the build uses RUSTC_BOOTSTRAP=1, see profiler-user/build.rs). Host builds
// (clippy on the workspace) use the stable atomics instead.
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
// Map keys and values are passed by reference on purpose: by value they are copied onto the
// 512-byte BPF stack, which this program would then overflow.
#![allow(clippy::needless_borrows_for_generic_args)]

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_NOEXIST, bpf_perf_event_data, pt_regs},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_get_prandom_u32, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_probe_read_user, bpf_probe_read_user_buf,
        generated::bpf_task_pt_regs,
    },
    macros::{map, perf_event, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
    programs::{
        PerfEventContext, RawTracePointContext, TracePointContext, tracing::StackIdContext,
    },
};

use profiler_ebpf::{
    CONTROL_SLOTS, Control, EVENT_EXEC, EVENT_EXIT, EVENT_FORK, Frame0Key, Frame0Rule,
    GO_LABELS_MAP, GO_LABELS_SLICE, GoProcInfo, KEY_FLAG_BP_IS_SP, LABEL_SET_CUT_BYTES,
    LABEL_SET_CUT_LABELS, LABEL_SET_UNRESOLVED, LABEL_UNRESOLVED, LabelPair, LabelSet,
    MAX_COUNT_ENTRIES, MAX_FRAME0_RULES, MAX_GO_PROCS, MAX_KERNEL_STACKS, MAX_LABEL_BYTES,
    MAX_LABEL_SETS, MAX_LABELS, MAX_LONG_STACKS, MAX_SHORT_STACKS, MAX_TARGETS, MAX_USER_FRAMES,
    ProcessEvent, SHORT_STACK_FRAMES, STACK_COPY_BYTES, STAT_SLOTS, SampleKey, SampleValue,
    ShortStack, Stat, TargetInfo, UserStack,
};

#[map]
static CONTROL: Array<u32> = Array::with_max_entries(CONTROL_SLOTS, 0);
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_SLOTS, 0);
#[map]
static TARGETS: HashMap<u32, TargetInfo> = HashMap::with_max_entries(MAX_TARGETS, 0);
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);
/// Per-CPU scratch for the stack being walked (too large for the 512-byte BPF stack).
#[map]
static SCRATCH: PerCpuArray<UserStack> = PerCpuArray::with_max_entries(1, 0);
/// Per-CPU copy of the running goroutine's used stack (see [`STACK_COPY_BYTES`]).
#[map]
static STACK_COPY: PerCpuArray<[u64; STACK_COPY_WORDS]> = PerCpuArray::with_max_entries(1, 0);
/// Two words more than are ever copied: a record at the last 8-aligned offset the verifier
/// can prove (the mask in [`frame_record`]) stays inside the value.
const STACK_COPY_WORDS: usize = STACK_COPY_BYTES / 8 + 2;
/// Per CPU: `bpf_ktime_get_ns` at the last firing of the perf event on this CPU (any process,
/// idle included), 0 before the first. A sample's weight is the time since then.
#[map]
static LAST_FIRING: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
/// What to keep of `[SP]`/`[SP+8]` per (process image, IP), learned by userspace from pcsp.
#[map]
static FRAME0_RULES: LruHashMap<Frame0Key, u32> = LruHashMap::with_max_entries(MAX_FRAME0_RULES, 0);

/// Go processes: where their goroutine id and labels are (set by userspace per image).
#[map]
static GO_PROCS: HashMap<u32, GoProcInfo> = HashMap::with_max_entries(MAX_GO_PROCS, 0);
/// Interned label sets by content hash (`SampleKey::label_set`); userspace reads them when it
/// drains. An LRU: never full, and an evicted set comes back with its next sample.
#[map]
static LABEL_SETS: LruHashMap<u32, LabelSet> = LruHashMap::with_max_entries(MAX_LABEL_SETS, 0);
/// Per-CPU scratch for the label set being read.
#[map]
static LABEL_SCRATCH: PerCpuArray<LabelSet> = PerCpuArray::with_max_entries(1, 0);

// Two map sets; CONTROL[ActiveSet] picks the one being written. All preallocated: an insert
// in the sampling path then takes an element from a free list instead of allocating.
#[map]
static COUNTS_0: HashMap<SampleKey, SampleValue> = HashMap::with_max_entries(MAX_COUNT_ENTRIES, 0);
#[map]
static COUNTS_1: HashMap<SampleKey, SampleValue> = HashMap::with_max_entries(MAX_COUNT_ENTRIES, 0);
#[map]
static SHORT_STACKS_0: HashMap<u64, ShortStack> = HashMap::with_max_entries(MAX_SHORT_STACKS, 0);
#[map]
static SHORT_STACKS_1: HashMap<u64, ShortStack> = HashMap::with_max_entries(MAX_SHORT_STACKS, 0);
#[map]
static LONG_STACKS_0: HashMap<u64, UserStack> = HashMap::with_max_entries(MAX_LONG_STACKS, 0);
#[map]
static LONG_STACKS_1: HashMap<u64, UserStack> = HashMap::with_max_entries(MAX_LONG_STACKS, 0);
#[map]
static KERNEL_STACKS_0: StackTrace = StackTrace::with_max_entries(MAX_KERNEL_STACKS, 0);
#[map]
static KERNEL_STACKS_1: StackTrace = StackTrace::with_max_entries(MAX_KERNEL_STACKS, 0);

/// One map set.
struct MapSet {
    counts: &'static HashMap<SampleKey, SampleValue>,
    short_stacks: &'static HashMap<u64, ShortStack>,
    long_stacks: &'static HashMap<u64, UserStack>,
    kernel_stacks: &'static StackTrace,
}

const EEXIST: i64 = 17;

#[inline(always)]
fn control(slot: Control) -> u32 {
    CONTROL.get(slot as u32).copied().unwrap_or(0)
}

#[inline(always)]
fn bump(stat: Stat) {
    if let Some(p) = STATS.get_ptr_mut(stat as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

#[perf_event]
pub fn sample(ctx: PerfEventContext) -> u32 {
    bump(Stat::Events);
    // Before any filter: every firing ends the interval the next one is weighted by.
    let mut weight = elapsed_since_last_firing();
    // Thinning: keep 1 firing in k at random. The weight k × (time since the last firing)
    // is unbiased (the choice is independent of what runs) and as steady as the timer;
    // the time since the last *kept* firing would add the geometric spread of the gaps to
    // every weight and cost the shares about as much as thinning gains.
    let k = control(Control::Thinning);
    if k > 1 {
        // SAFETY: a helper without arguments.
        if unsafe { bpf_get_prandom_u32() } % k != 0 {
            return 0;
        }
        weight *= u64::from(k);
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    if tgid == 0 {
        return 0; // idle
    }
    let generation = match unsafe { TARGETS.get(&tgid) } {
        Some(t) => t.generation,
        None if control(Control::AllProcesses) != 0 => 0,
        None => return 0,
    };
    bump(Stat::Samples);
    // Once, before the map set is chosen: the two `record` copies would each have the
    // verifier walk the goroutine reads again.
    let uregs = user_regs(&ctx);
    let mut go = GoroutineData::default();
    if let Some((regs, _)) = &uregs {
        goroutine(tgid, generation, regs.rsp, &mut go);
    }
    if control(Control::ActiveSet) == 0 {
        let set = MapSet {
            counts: &COUNTS_0,
            short_stacks: &SHORT_STACKS_0,
            long_stacks: &LONG_STACKS_0,
            kernel_stacks: &KERNEL_STACKS_0,
        };
        record(&ctx, &uregs, tgid, tid, generation, weight, &go, &set);
    } else {
        let set = MapSet {
            counts: &COUNTS_1,
            short_stacks: &SHORT_STACKS_1,
            long_stacks: &LONG_STACKS_1,
            kernel_stacks: &KERNEL_STACKS_1,
        };
        record(&ctx, &uregs, tgid, tid, generation, weight, &go, &set);
    }
    0
}

/// The user-mode registers of the sampled task: the perf regs when the CPU was in user mode,
/// otherwise the task's saved user registers.
#[inline(always)]
fn user_regs(ctx: &PerfEventContext) -> Option<(pt_regs, bool)> {
    let data = ctx.as_ptr() as *const bpf_perf_event_data;
    // SAFETY: the perf_event context is a valid bpf_perf_event_data.
    let regs: pt_regs = unsafe { (*data).regs };
    if regs.cs & 3 != 0 {
        return Some((regs, false));
    }
    // SAFETY: helpers that take the current task; reads are checked.
    let saved = unsafe {
        let task = bpf_get_current_task_btf();
        let p = bpf_task_pt_regs(task) as *const pt_regs;
        bpf_probe_read_kernel(p).ok()?
    };
    if saved.rip == 0 || saved.rsp == 0 {
        return None; // kernel thread: no user context
    }
    Some((saved, true))
}

/// The CPU time this firing stands for: the time since the previous firing on this CPU (a
/// per-CPU cpu-clock event fires on wall time, idle included), and records this one.
///
/// Measured rather than the configured period because a period change (jitter,
/// PERF_EVENT_IOC_PERIOD) restarts the timer with a full new period: the elapsed part of the
/// old one is never sampled, and weighting by the period lost it (~10 % at 99 Hz). Measured,
/// it is carried by the next sample's weight.
///
/// Falls back to the configured period on the first firing and on an implausible gap: more
/// than [`MAX_GAP_PERIODS`] current periods (the event was disabled and re-enabled, the CPU was
/// offline, the clock read went wrong). A restart gap is at most the longest jittered period
/// (2× the mean at ±50 %) plus a new one; even against the shortest current period (2/3 of the
/// mean) that is 4 periods, so 8 leaves room for timer latency and never cuts a real interval.
#[inline(always)]
fn elapsed_since_last_firing() -> u64 {
    let period = u64::from(control(Control::PeriodNanos));
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(last) = LAST_FIRING.get_ptr_mut(0) else {
        return period;
    };
    // SAFETY: per-CPU slot, no concurrent writer on this CPU (perf programs do not nest).
    let prev = unsafe { core::mem::replace(&mut *last, now) };
    let gap = now.wrapping_sub(prev);
    if prev == 0 || gap == 0 || gap > MAX_GAP_PERIODS * period {
        period
    } else {
        gap
    }
}

/// See [`elapsed_since_last_firing`].
const MAX_GAP_PERIODS: u64 = 8;

#[inline(always)]
fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &PerfEventContext,
    uregs: &Option<(pt_regs, bool)>,
    tgid: u32,
    tid: u32,
    generation: u32,
    weight: u64,
    go: &GoroutineData,
    set: &MapSet,
) {
    let counts = set.counts;
    let mut key = SampleKey {
        tgid,
        generation,
        tid: if control(Control::Threads) != 0 {
            tid
        } else {
            0
        },
        kernel_stack_id: -1,
        user_stack_hash: 0,
        frame0: [0; 2],
        flags: 0,
        label_set: go.label_set,
        goid: go.goid,
    };
    let data = ctx.as_ptr() as *const bpf_perf_event_data;
    // SAFETY: valid context.
    let in_kernel = unsafe { (*data).regs.cs } & 3 == 0;
    if in_kernel {
        match ctx.get_stackid(set.kernel_stacks, 0) {
            Ok(id) => key.kernel_stack_id = id as i32,
            Err(e) => {
                key.kernel_stack_id = e;
                if -(e as i64) == EEXIST {
                    bump(Stat::LostKernelStackCollision)
                } else {
                    bump(Stat::LostKernelStackOther)
                }
            }
        }
    }
    match uregs {
        Some((regs, _)) => {
            let copy = copy_stack(regs.rsp, go.stack_hi);
            if let Some(hash) = user_stack(regs, copy, set) {
                key.user_stack_hash = hash;
            }
            frame0_words(regs, copy, tgid, generation, &mut key);
        }
        None => bump(Stat::NoUserContext),
    }
    // Several CPUs may count into one entry (the thread id is not in the key by default), so
    // the adds are atomic; two CPUs inserting the same new key race on BPF_NOEXIST, and the
    // loser adds into the winner's entry.
    for _ in 0..2 {
        if let Some(v) = counts.get_ptr_mut(&key) {
            // SAFETY: map value pointer of our own key, valid for this program run; the
            // fields are 8-byte aligned u64s.
            unsafe {
                atomic_add(&raw mut (*v).count, 1);
                atomic_add(&raw mut (*v).weight_ns, weight);
            }
            bump(Stat::CountHits);
            return;
        }
        let first = SampleValue {
            count: 1,
            weight_ns: weight,
        };
        if counts.insert(&key, &first, BPF_NOEXIST as u64).is_ok() {
            return;
        }
    }
    bump(Stat::LostCountMapFull);
}

/// `*p += v`, atomically (several CPUs may count into one entry).
///
/// # Safety
/// `p` must point to a live, 8-byte aligned u64 (a map value).
#[cfg(target_arch = "bpf")]
#[inline(always)]
unsafe fn atomic_add(p: *mut u64, v: u64) {
    use core::intrinsics::{AtomicOrdering, atomic_xadd};
    // SAFETY: the caller's contract.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, v) };
}

/// `*p += v`, atomically (host builds, for linting only).
///
/// # Safety
/// `p` must point to a live, 8-byte aligned u64.
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
unsafe fn atomic_add(p: *mut u64, v: u64) {
    // SAFETY: the caller's contract.
    unsafe { core::sync::atomic::AtomicU64::from_ptr(p) }
        .fetch_add(v, core::sync::atomic::Ordering::Relaxed);
}

/// Keeps the words at SP the frame-0 rule for this IP asks for (both when there is no rule
/// yet: userspace then classifies the IP and installs one).
#[inline(always)]
fn frame0_words(
    regs: &pt_regs,
    (copy, copied): (*const u64, u64),
    tgid: u32,
    generation: u32,
    key: &mut SampleKey,
) {
    let sp = regs.rsp;
    if regs.rbp == sp {
        key.flags |= KEY_FLAG_BP_IS_SP;
    }
    let rule_key = Frame0Key {
        tgid,
        generation,
        ip: regs.rip,
    };
    // SAFETY: lookup in our own map; the value is copied out.
    let rule = unsafe { FRAME0_RULES.get(&rule_key) }.copied();
    let (word0, word1) = match rule {
        Some(r) if r == Frame0Rule::Neither as u32 => (false, false),
        Some(r) if r == Frame0Rule::Word0 as u32 => (true, false),
        Some(r) if r == Frame0Rule::Word1 as u32 => (false, regs.rbp != sp),
        _ => (true, true),
    };
    if rule.is_some() {
        bump(Stat::Frame0RuleHits);
    }
    if !word0 && !word1 {
        return;
    }
    // [SP] and [SP+8]: the first two words of the stack copy, or one user read.
    let words = if copied >= 16 {
        // SAFETY: the copy holds at least 16 bytes from SP.
        unsafe { [*copy, *copy.add(1)] }
    } else {
        // SAFETY: checked user read.
        unsafe { bpf_probe_read_user(sp as *const [u64; 2]) }.unwrap_or([0, 0])
    };
    if word0 {
        key.frame0[0] = keep_word(words[0], regs.rip, rule.is_some());
    }
    if word1 {
        key.frame0[1] = keep_word(words[1], regs.rip, rule.is_some());
    }
}

/// Before an IP has a rule, a word is kept only if it could be a return address into the
/// same binary as the IP (within 1 GiB of it): stack data (heap pointers, counters) would
/// otherwise make each of those first samples a key of its own. With a rule, the word is
/// the one the repair reads and is kept as it is.
#[inline(always)]
fn keep_word(word: u64, ip: u64, ruled: bool) -> u64 {
    if ruled || word.abs_diff(ip) < (1 << 30) {
        word
    } else {
        0
    }
}

/// Inserts a stack unless it is there already; false when the map is full.
#[inline(always)]
fn store<T>(map: &HashMap<u64, T>, hash: u64, stack: &T) -> bool {
    // SAFETY: lookups in our own map.
    unsafe { map.get(&hash) }.is_some()
        || map.insert(&hash, stack, BPF_NOEXIST as u64).is_ok()
        || unsafe { map.get(&hash) }.is_some()
}

/// Captures the user stack into the per-CPU scratch and stores it, deduplicated by hash, in
/// the short- or long-stack map. Returns the hash, or None when that map is full.
///
/// The walk is ours, one 16-byte read per frame record: measured against `bpf_get_stack`
/// (the kernel's perf_callchain_user) on the same targets, it costs 1.8 µs instead of 2.6 µs
/// at 35 frames, and is not capped at 127 frames.
#[inline(always)]
fn user_stack(regs: &pt_regs, copy: (*const u64, u64), set: &MapSet) -> Option<u64> {
    let stack = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch, exclusively ours while this program runs.
    let stack = unsafe { &mut *stack };
    stack.truncated = 0;
    let (len, mut hash) = walk_frame_pointers(regs, copy, stack);
    stack.len = len as u32;
    hash = mix(hash, len as u64);
    if hash == 0 {
        hash = 1;
    }
    let stored = if len <= SHORT_STACK_FRAMES {
        // SAFETY: ShortStack is the layout of UserStack's first bytes (both #[repr(C)]).
        let short = unsafe { &*(stack as *const UserStack as *const ShortStack) };
        store(set.short_stacks, hash, short)
    } else {
        store(set.long_stacks, hash, stack)
    };
    if !stored {
        bump(Stat::LostUserStackMapFull);
        return None;
    }
    Some(hash)
}

/// A frame record as the Go (and any frame-pointer) prologue leaves it: `[bp]` is the
/// caller's BP, `[bp+8]` the return address. Read in one helper call per frame.
#[repr(C)]
struct FrameRecord {
    next_bp: u64,
    ret: u64,
}

/// Copies `[sp, min(stack_hi, sp + STACK_COPY_BYTES))` of user memory into the per-CPU
/// stack copy in one read; returns the copy and how many bytes it holds (0: no copy).
///
/// `stack_hi` is the running goroutine's `g.stack.hi`, known to be above SP: all of it is
/// the goroutine's own stack, so the read cannot run off a mapping.
#[inline(always)]
fn copy_stack(sp: u64, stack_hi: u64) -> (*const u64, u64) {
    let Some(copy) = STACK_COPY.get_ptr_mut(0) else {
        return (core::ptr::null(), 0);
    };
    if stack_hi <= sp {
        return (core::ptr::null(), 0);
    }
    let mut n = stack_hi - sp;
    if n > STACK_COPY_BYTES as u64 {
        n = STACK_COPY_BYTES as u64;
    }
    // SAFETY: the copy is STACK_COPY_BYTES of our own per-CPU map value and n is at most
    // that; the user read is checked.
    let ok = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            copy as *mut core::ffi::c_void,
            n as u32,
            sp as *const core::ffi::c_void,
        )
    } == 0;
    if ok {
        (copy as *const u64, n)
    } else {
        (core::ptr::null(), 0)
    }
}

/// The frame record at `bp`: from the stack copy when it lies inside (`copied` bytes from
/// `sp`, 8-aligned), otherwise one checked user read.
#[inline(always)]
fn frame_record(bp: u64, sp: u64, copy: *const u64, copied: u64) -> Option<FrameRecord> {
    let off = bp.wrapping_sub(sp);
    // Masked first, so that the verifier sees the offset the read uses bounded (and 8-aligned)
    // whatever the compiler makes of the comparisons after it.
    let o = off & (STACK_COPY_BYTES as u64 - 8);
    if o == off && o + 16 <= copied {
        // SAFETY: o ≤ STACK_COPY_BYTES − 8 and the value holds STACK_COPY_BYTES + 16 bytes;
        // o + 16 ≤ copied: both words were copied from the stack.
        return Some(unsafe {
            let p = (copy as *const u8).add(o as usize) as *const u64;
            FrameRecord {
                next_bp: *p,
                ret: *p.add(1),
            }
        });
    }
    // SAFETY: a checked user read.
    unsafe { bpf_probe_read_user(bp as *const FrameRecord) }.ok()
}

/// Walks the frame-pointer chain from the interrupted registers: `frames[0]` is the IP, then
/// the return address of each frame record. Returns the number of frames and their hash
/// (computed during the walk: a second loop over a variable length makes the verifier's job
/// explode). Records inside the stack copy ([`copy_stack`]: `copied` bytes from SP) are read
/// from it, so a goroutine's stack costs one user read per sample instead of one per frame.
#[inline(always)]
fn walk_frame_pointers(
    regs: &pt_regs,
    (copy, copied): (*const u64, u64),
    stack: &mut UserStack,
) -> (usize, u64) {
    stack.frames[0] = regs.rip;
    let mut hash = mix(0xcbf2_9ce4_8422_2325, regs.rip);
    let mut len: usize = 1;
    let mut bp = regs.rbp;
    let sp = regs.rsp;
    for i in 1..MAX_USER_FRAMES {
        if bp == 0 {
            break;
        }
        let Some(record) = frame_record(bp, sp, copy, copied) else {
            bump(Stat::UserReadFault);
            break;
        };
        if record.ret == 0 {
            break;
        }
        stack.frames[i] = record.ret;
        hash = mix(hash, record.ret);
        len = i + 1;
        if record.next_bp == bp {
            break;
        }
        bp = record.next_bp;
        if i == MAX_USER_FRAMES - 1 && bp != 0 {
            stack.truncated = 1;
            bump(Stat::TruncatedStacks);
        }
    }
    (len, hash)
}

/// Go processes: the goroutine running on this thread (`g.m.curg`, as the runtime's own
/// SIGPROF handler attributes samples) gives the sample its goroutine id (`--goroutines`) and
/// its pprof label set. Every read is checked; a failed one is counted, the sample kept.
///
/// A function of its own (a BPF-to-BPF call), not inlined: the verifier then meets one state
/// after the call whatever path the label walk took, instead of exploring the frame walk once
/// per path. Its temporaries live in a per-CPU work area: the caller's frame leaves little
/// of the 512-byte stack.
/// What [`goroutine`] found for the sample's key.
#[derive(Default)]
struct GoroutineData {
    goid: u64,
    label_set: u32,
    /// `g.stack.hi` of the running `g` (the goroutine, or g0/gsignal) when SP is inside its
    /// stack; 0 otherwise.
    stack_hi: u64,
}

#[inline(never)]
fn goroutine(tgid: u32, generation: u32, sp: u64, key: &mut GoroutineData) {
    let Some(info) = GO_PROCS.get_ptr(&tgid) else {
        return;
    };
    // SAFETY: a value of our own map, valid for this program run.
    let info = unsafe { &*info };
    if info.generation != generation {
        return;
    }
    let fsbase_offset = control(Control::FsbaseOffset);
    if fsbase_offset == 0 {
        return;
    }
    let Some(g) = running_g(info, fsbase_offset) else {
        bump(Stat::GoReadFault);
        return;
    };
    if g == 0 {
        return;
    }
    // g.stack: {lo, hi}.
    let Some(bounds) = read_user::<[u64; 2]>(g + u64::from(info.g_stack)) else {
        bump(Stat::GoReadFault);
        return;
    };
    if bounds[0] <= sp && sp < bounds[1] {
        key.stack_hi = bounds[1];
    }
    let want_goid = control(Control::Goroutines) != 0;
    let want_labels = control(Control::Labels) != 0;
    if !want_goid && !want_labels {
        return;
    }
    let Some((goid, labels)) = current_goroutine(info, g, want_goid) else {
        bump(Stat::GoReadFault);
        return;
    };
    key.goid = goid;
    let repr = info.labels_repr;
    if want_labels && labels != 0 && (repr == GO_LABELS_MAP || repr == GO_LABELS_SLICE) {
        key.label_set = label_set(repr, labels, tgid);
    }
}

#[inline(always)]
fn read_user<T>(addr: u64) -> Option<T> {
    // SAFETY: a checked user read.
    unsafe { bpf_probe_read_user(addr as *const T) }.ok()
}

/// The `g` running on this thread (from its TLS slot); 0 on a thread without one (not
/// started by Go, or before the runtime set it).
#[inline(always)]
fn running_g(info: &GoProcInfo, fsbase_offset: u32) -> Option<u64> {
    // SAFETY: the current task; a checked kernel read at an offset from its BTF.
    let fsbase: u64 = unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        bpf_probe_read_kernel(task.wrapping_add(fsbase_offset as usize) as *const u64).ok()?
    };
    if fsbase == 0 {
        return Some(0);
    }
    read_user(fsbase.wrapping_add(info.tls_g_offset as i64 as u64))
}

/// `(goid, g.labels)` of `g.m.curg` (the goid only when `want_goid`, else 0); `(0, 0)` when
/// the thread runs no user goroutine (g0 in the scheduler).
#[inline(always)]
fn current_goroutine(info: &GoProcInfo, g: u64, want_goid: bool) -> Option<(u64, u64)> {
    let m: u64 = read_user(g + u64::from(info.g_m))?;
    if m == 0 {
        return Some((0, 0));
    }
    let curg: u64 = read_user(m + u64::from(info.m_curg))?;
    if curg == 0 {
        return Some((0, 0));
    }
    let goid: u64 = if want_goid {
        read_user(curg + u64::from(info.g_goid))?
    } else {
        0
    };
    let labels: u64 = read_user(curg + u64::from(info.g_labels))?;
    Some((goid, labels))
}

/// Per-CPU work area of [`label_set`]: the label headers, read straight into map memory.
#[repr(C)]
pub struct LabelWork {
    /// Go ≤ 1.23: bucket 0 of the map: tophash (1 word), keys (16), values (16).
    /// Go ≥ 1.24: up to 8 `label{key, value string}` (4 words each).
    buf: [u64; 33],
    /// `hmap` count, flags/B/noverflow/hash0, buckets; or the label slice `{ptr, len, cap}`.
    head: [u64; 3],
}

#[map]
static LABEL_WORK: PerCpuArray<LabelWork> = PerCpuArray::with_max_entries(1, 0);

/// Reads `bytes` (≤ the room at `dst`) of user memory at `src` into map memory at `dst`.
#[inline(always)]
fn read_bytes(dst: *mut u64, bytes: u32, src: u64) -> bool {
    // SAFETY: `dst` points at at least `bytes` bytes of our own per-CPU map value; the read
    // is checked.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            dst as *mut core::ffi::c_void,
            bytes,
            src as *const core::ffi::c_void,
        ) == 0
    }
}

/// The hash [`copy_pair`] gives an absent pair (odd: never 0).
const EMPTY_PAIR_HASH: u64 = 0x2545_f491_4f6c_dd1d;

/// Tophash values below this mark empty or evacuated slots.
const MIN_TOP_HASH: u64 = 5;

/// Reads the label set behind `labels` (the value of `g.labels`) into the per-CPU scratch,
/// interns it, and returns its id (0: no labels, or it could not be read or interned).
///
/// Two phases, both with constant bounds so the verifier walks each once: the label headers
/// (the map's first bucket, or the first 8 entries of the sorted slice) in one read, then up
/// to [`MAX_LABELS`] key and value copies. Pair `i` stays at index `i`; an empty map slot is a
/// pair of length 0 (userspace skips those).
#[inline(never)]
fn label_set(repr: u32, labels: u64, tgid: u32) -> u32 {
    let (Some(set), Some(work)) = (LABEL_SCRATCH.get_ptr_mut(0), LABEL_WORK.get_ptr_mut(0)) else {
        return 0;
    };
    // SAFETY: per-CPU scratch, exclusively ours while this program runs.
    let (set, work) = unsafe { (&mut *set, &mut *work) };
    set.len = 0;
    set.flags = 0;
    match read_label_headers(repr, labels, set, work) {
        Some(true) => {}
        Some(false) => return 0,
        None => {
            bump(Stat::GoReadFault);
            return 0;
        }
    }
    let mut hash = 0u64;
    for i in 0..MAX_LABELS as u32 {
        let h = copy_pair(i, repr);
        if h == 0 {
            bump(Stat::GoReadFault);
            return 0;
        }
        hash = hash.wrapping_add(h);
    }
    set.len = MAX_LABELS as u32;
    if set.flags != 0 {
        bump(Stat::LabelsCut);
    }
    // Addresses mean something in one process only: such a set is that process's own.
    if set.flags & LABEL_SET_UNRESOLVED != 0 {
        hash = mix(hash, u64::from(tgid));
    }
    let h = mix(hash, u64::from(set.flags));
    let mut id = (h ^ (h >> 32)) as u32;
    if id == 0 {
        id = 1;
    }
    // SAFETY: lookups in our own map.
    if unsafe { LABEL_SETS.get(&id) }.is_some()
        || LABEL_SETS.insert(&id, set, BPF_NOEXIST as u64).is_ok()
        || unsafe { LABEL_SETS.get(&id) }.is_some()
    {
        id
    } else {
        bump(Stat::LabelSetsLost);
        0
    }
}

/// Reads the label headers into `work.buf` (and the slice length or the map's tophash, which
/// tell [`copy_pair`] which are present); false: no labels, None: a read failed. Flags what
/// does not fit.
#[inline(always)]
fn read_label_headers(
    repr: u32,
    labels: u64,
    set: &mut LabelSet,
    work: &mut LabelWork,
) -> Option<bool> {
    if repr == GO_LABELS_SLICE {
        // labelMap{list []label}: {ptr, len, cap}.
        if !read_bytes(work.head.as_mut_ptr(), 16, labels) {
            return None;
        }
        let (ptr, len) = (work.head[0], work.head[1]);
        if len == 0 || ptr == 0 {
            return Some(false);
        }
        if len > MAX_LABELS as u64 {
            set.flags |= LABEL_SET_CUT_LABELS;
        }
        let n = len.min(MAX_LABELS as u64) as u32;
        if !read_bytes(work.buf.as_mut_ptr(), n * 32, ptr) {
            return None;
        }
        return Some(true);
    }
    // *labelMap is a map[string]string, i.e. a pointer to its hmap.
    let hmap: u64 = read_user(labels)?;
    if hmap == 0 {
        return Some(false);
    }
    if !read_bytes(work.head.as_mut_ptr(), 24, hmap) {
        return None;
    }
    let count = work.head[0];
    let b = (work.head[1] >> 8) & 0xff;
    let buckets = work.head[2];
    if count == 0 || buckets == 0 {
        return Some(false);
    }
    // Only bucket 0 is read: all of a map of up to 8 labels (B = 0; label maps are built
    // once, never deleted from, so its slots are filled in order); of a bigger one, the
    // labels that hashed there, and the set is flagged as cut.
    if b != 0 || count > MAX_LABELS as u64 {
        set.flags |= LABEL_SET_CUT_LABELS;
    }
    // tophash[8], keys [8]string, values [8]string.
    if !read_bytes(work.buf.as_mut_ptr(), 8 * 33, buckets) {
        return None;
    }
    Some(true)
}

/// Copies label `i`'s bytes (cut at [`MAX_LABEL_BYTES`]) from the headers in the work area
/// into the scratch set (an absent one: all zero) and returns its hash, never 0; 0 when a
/// read failed. A function of its own, like [`goroutine`]: the verifier meets one state after
/// each call instead of multiplying the branches of eight copies.
#[inline(never)]
fn copy_pair(i: u32, repr: u32) -> u64 {
    let (Some(set), Some(work)) = (LABEL_SCRATCH.get_ptr_mut(0), LABEL_WORK.get_ptr_mut(0)) else {
        return 0;
    };
    // SAFETY: per-CPU scratch, exclusively ours while this program runs.
    let (set, work) = unsafe { (&mut *set, &*work) };
    let i = i as usize;
    if i >= MAX_LABELS {
        return 0;
    }
    // Presence is read from map memory here, not passed in: a mask known to the verifier
    // would make it walk every combination.
    let present = if repr == GO_LABELS_SLICE {
        (i as u64) < work.head[1]
    } else {
        (work.buf[0] >> (8 * i)) & 0xff >= MIN_TOP_HASH
    };
    let (kptr, klen, vptr, vlen) = if !present {
        (0, 0, 0, 0)
    } else if repr == GO_LABELS_SLICE {
        (
            work.buf[4 * i],
            work.buf[4 * i + 1],
            work.buf[4 * i + 2],
            work.buf[4 * i + 3],
        )
    } else {
        (
            work.buf[1 + 2 * i],
            work.buf[2 + 2 * i],
            work.buf[17 + 2 * i],
            work.buf[18 + 2 * i],
        )
    };
    if klen > MAX_LABEL_BYTES as u64 || vlen > MAX_LABEL_BYTES as u64 {
        set.flags |= LABEL_SET_CUT_BYTES;
    }
    let pair: &mut LabelPair = &mut set.pairs[i];
    // Zeroed word by word (a memset would be a byte loop for the verifier to walk).
    let words = pair.key.as_mut_ptr() as *mut u64;
    for w in 0..(2 * MAX_LABEL_BYTES / 8) {
        // SAFETY: key and val are adjacent 8-aligned arrays of the map value.
        unsafe { core::ptr::write_volatile(words.add(w), 0) };
    }
    if !present {
        // All zero: the hash of an empty pair is a constant, not worth 16 rounds of mixing.
        pair.key_len = 0;
        pair.val_len = 0;
        return EMPTY_PAIR_HASH;
    }
    let kl = klen.min(MAX_LABEL_BYTES as u64) as usize;
    let vl = vlen.min(MAX_LABEL_BYTES as u64) as usize;
    pair.key_len = kl as u32;
    pair.val_len = vl as u32;
    // A string that cannot be read here (its page not resident: the perf interrupt cannot
    // fault it in) is left for userspace: its address instead of its bytes.
    // SAFETY: checked user reads into our scratch.
    if kl > 0 && unsafe { bpf_probe_read_user_buf(kptr as *const u8, &mut pair.key[..kl]) }.is_err()
    {
        // SAFETY: key is 8-aligned in the map value and at least 8 bytes long.
        unsafe { core::ptr::write_volatile(words, kptr) };
        pair.key_len = kl as u32 | LABEL_UNRESOLVED;
        set.flags |= LABEL_SET_UNRESOLVED;
    }
    // SAFETY: as above.
    if vl > 0 && unsafe { bpf_probe_read_user_buf(vptr as *const u8, &mut pair.val[..vl]) }.is_err()
    {
        let vwords = pair.val.as_mut_ptr() as *mut u64;
        // SAFETY: val is 8-aligned in the map value and at least 8 bytes long.
        unsafe { core::ptr::write_volatile(vwords, vptr) };
        pair.val_len = vl as u32 | LABEL_UNRESOLVED;
        set.flags |= LABEL_SET_UNRESOLVED;
    }
    let (kl, vl) = (pair.key_len as usize, pair.val_len as usize);
    let mut h = mix(0x8422_2325_cbf2_9ce4, (kl as u64) | ((vl as u64) << 32));
    for w in 0..(2 * MAX_LABEL_BYTES / 8) {
        // SAFETY: as above.
        h = mix(h, unsafe { core::ptr::read_volatile(words.add(w)) });
    }
    h | 1
}

/// `bpf_ringbuf_output` flag: do not wake the reader (it reads on its next wakeup).
const BPF_RB_NO_WAKEUP: u64 = 1;

#[inline(always)]
fn send_event(kind: u32, tgid: u32, value: u32) {
    let event = ProcessEvent {
        kind,
        tgid,
        value,
        _pad: 0,
    };
    // Forks and execs wake userspace at once (it reads the new image while it runs); exits
    // can wait for the next wakeup.
    let flags = if kind == EVENT_EXIT {
        BPF_RB_NO_WAKEUP
    } else {
        0
    };
    if EVENTS.output::<ProcessEvent>(&event, flags).is_err() {
        bump(Stat::LostEvents);
    }
}

/// sched_process_fork: a child of a followed process is wanted too. The record is read at an
/// offset userspace took from tracefs (it changed across kernel versions). Thread creation
/// fires here as well; userspace drops thread ids that are not processes.
#[tracepoint]
pub fn on_fork(ctx: TracePointContext) -> u32 {
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    let follow = match unsafe { TARGETS.get(&parent) } {
        Some(t) => t.follow_children != 0,
        None => false,
    };
    if !follow {
        return 0;
    }
    let offset = control(Control::ForkChildPidOffset) as usize;
    if offset == 0 || offset > 64 {
        return 0;
    }
    // SAFETY: bounded read inside the tracepoint record.
    let Ok(child) = (unsafe { ctx.read_at::<u32>(offset) }) else {
        return 0;
    };
    if child == parent {
        return 0;
    }
    let info = TargetInfo {
        generation: 0,
        follow_children: 1,
    };
    let _ = TARGETS.insert(&child, &info, BPF_NOEXIST as u64);
    send_event(EVENT_FORK, parent, child);
    0
}

/// sched_process_exec: the process now runs another image; samples from here on carry a new
/// generation so userspace symbolizes them against the new mappings. A raw tracepoint: it
/// needs no argument (the current task is the exec'ing one), and unlike a perf tracepoint its
/// detach does not wait for RCU grace periods (~75 ms at the end of every recording).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn on_exec(_ctx: RawTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let generation = match TARGETS.get_ptr_mut(&tgid) {
        Some(t) => {
            // SAFETY: map value pointer.
            unsafe {
                (*t).generation += 1;
                (*t).generation
            }
        }
        None => {
            if control(Control::AllProcesses) == 0 {
                return 0;
            }
            // In --all mode the filter map doubles as the generation table of processes that
            // exec'd during the recording.
            let info = TargetInfo {
                generation: 1,
                follow_children: 0,
            };
            let _ = TARGETS.insert(&tgid, &info, BPF_NOEXIST as u64);
            1
        }
    };
    send_event(EVENT_EXEC, tgid, generation);
    0
}

/// sched_process_exit: fires for every exiting thread; only a thread-group leader's exit ends
/// a process. Sent for followed processes (every process with `--all`) so userspace can drop
/// their state once their last samples are drained.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn on_exit(_ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid != pid_tgid as u32 {
        return 0;
    }
    // SAFETY: lookup in our own map.
    let followed = unsafe { TARGETS.get(&tgid) }.is_some();
    if followed || control(Control::AllProcesses) != 0 {
        send_event(EVENT_EXIT, tgid, 0);
    }
    0
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
