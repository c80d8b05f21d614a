//! The kernel side, seen from userspace: load and attach the eBPF programs, size their maps,
//! keep the process filter and the frame-0 rules, and drain the aggregated counts.
//!
//! The kernel writes into one of two map sets while we read and empty the other, so a
//! recording of any length never fills a map and no increment races with our reads.

use std::os::fd::{AsFd as _, OwnedFd};
use std::time::Duration;

use aya::maps::{Array, HashMap, IterableMap as _, MapData, PerCpuArray, RingBuf};
use aya::maps::{MapError, StackTraceMap};
use aya::programs::{PerfEvent, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use profiler_ebpf::{
    Control, Frame0Key, Frame0Rule, GoProcInfo, LabelSet, MAX_USER_FRAMES, ProcessEvent,
    SHORT_STACK_FRAMES, STAT_SLOTS, SampleKey, SampleValue, ShortStack, TargetInfo, UserStack,
};

use super::labels::{self, LabelSets};
use super::{Batch, SamplerError, SamplerOptions, sys};

/// The compiled kernel program (built by build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler"));

/// Map sizes for a host and a rate: every drain interval must fit in one map set even when
/// every sample is a new key (a fresh process, a new stack), with headroom for bursts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    pub counts: u32,
    pub short_stacks: u32,
    pub long_stacks: u32,
    pub kernel_stacks: u32,
    pub frame0_rules: u32,
}

impl MapSizes {
    pub fn for_host(cpus: usize, frequency_hz: u64, drain: Duration) -> Self {
        let per_drain = (cpus as f64 * frequency_hz as f64 * drain.as_secs_f64()).ceil() as u64;
        let fit = |n: u64, min: u32, max: u32| (n.next_power_of_two() as u32).clamp(min, max);
        MapSizes {
            counts: fit(per_drain * 2, 1024, 1 << 20),
            short_stacks: fit(per_drain * 2, 1024, 1 << 18),
            // Deep stacks (> 32 frames: an HTTP handler under middleware) can be every sample
            // (measured: a 35-frame busy loop at 999 Hz lost a quarter of its stacks to a map
            // sized for half the samples). 1.5 KiB each: 6 MiB per set at 999 Hz on 2 CPUs.
            long_stacks: fit(per_drain + per_drain / 4, 256, 1 << 16),
            // The stack-trace map hashes ids into buckets: sparse is fewer collisions.
            kernel_stacks: fit(per_drain * 4, 1024, 1 << 18),
            frame0_rules: fit(per_drain * 8, 16 * 1024, 1 << 20),
        }
    }
}

struct MapSet {
    counts: HashMap<MapData, SampleKey, SampleValue>,
    short_stacks: HashMap<MapData, u64, ShortStack>,
    long_stacks: HashMap<MapData, u64, UserStack>,
    kernel_stacks: StackTraceMap<MapData>,
}

/// What userspace changes while sampling runs: the filter, the frame-0 rules, the period.
/// Shared by the sampler thread and the pipeline (behind a mutex).
pub struct KernelControl {
    control: Array<MapData, u32>,
    targets: HashMap<MapData, u32, TargetInfo>,
    // An LRU hash in the kernel; aya reads and writes it as a hash map.
    frame0_rules: HashMap<MapData, Frame0Key, u32>,
    go_procs: HashMap<MapData, u32, GoProcInfo>,
    /// Whether the kernel can find a thread's goroutine at all (the fsbase offset is known).
    pub goroutines_supported: bool,
}

impl KernelControl {
    pub fn add_target(&mut self, tgid: u32, follow_children: bool) -> Result<(), MapError> {
        let info = TargetInfo {
            generation: 0,
            follow_children: u32::from(follow_children),
        };
        // BPF_NOEXIST: never reset the generation of a target the kernel already tracks.
        match self.targets.insert(tgid, info, 1 /* BPF_NOEXIST */) {
            Ok(()) => Ok(()),
            Err(_) if self.targets.get(&tgid, 0).is_ok() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tells the kernel where the goroutine id and labels of a Go process are.
    pub fn set_go_proc(&mut self, tgid: u32, info: GoProcInfo) {
        // A full map only means this process's samples go without goroutine data.
        let _ = self.go_procs.insert(tgid, info, 0);
    }

    pub fn remove_target(&mut self, tgid: u32) {
        let _ = self.targets.remove(&tgid);
        let _ = self.go_procs.remove(&tgid);
        // Rules of a gone process would only age out of the LRU; they are few, leave them.
    }

    /// The filter's pids with their current exec generation.
    pub fn targets(&self) -> Vec<(u32, TargetInfo)> {
        self.targets.iter().filter_map(|r| r.ok()).collect()
    }

    /// Tells the kernel what to keep of the words at SP for samples at this IP.
    pub fn set_frame0_rule(&mut self, key: Frame0Key, rule: Frame0Rule) {
        // A full LRU evicts an old rule; an error only means the words stay in the key.
        let _ = self.frame0_rules.insert(key, rule as u32, 0);
    }

    fn set(&mut self, slot: Control, value: u32) -> Result<(), MapError> {
        self.control.set(slot as u32, value, 0)
    }
}

/// The loaded programs and the maps only the sampler thread touches.
pub struct Kernel {
    // Keeps the programs and their links alive.
    _ebpf: Ebpf,
    stats: PerCpuArray<MapData, u64>,
    pub(super) events: RingBuf<MapData>,
    sets: [MapSet; 2],
    active: u32,
    /// One cpu-clock event per CPU; closing them detaches the program.
    perf_fds: Vec<OwnedFd>,
    pub cpus: Vec<u32>,
    pub sizes: MapSizes,
    /// [`thinning`]: the timer period is the sampling period / this.
    thinning: u32,
    /// Whether the batch syscall works on this kernel (found out at the first drain).
    batch_ok: bool,
    /// The kernel's interned label sets (an LRU keyed by content hash).
    label_sets: HashMap<MapData, u32, LabelSet>,
    /// Decoded label sets by id (ids are content hashes, so an id always means one set).
    labels: LabelSets,
    /// Samples whose label set could not be read (gone from the kernel's LRU, not decodable,
    /// a string unresolvable): kept without labels.
    pub label_errors: u64,
}

/// Decoded label sets kept at most (then the cache starts over).
const MAX_CACHED_LABEL_SETS: usize = 1 << 16;

/// Checks the privileges eBPF sampling needs and says which are missing.
fn effective_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// The capabilities a host-wide agent wants besides CAP_BPF and CAP_PERFMON, and what is
/// lost without each: the names of those missing (root has them all).
pub fn missing_agent_capabilities() -> Vec<&'static str> {
    let cap_eff = effective_caps();
    [
        (
            19,
            "CAP_SYS_PTRACE (read other users' /proc/PID/maps and environ)",
        ),
        (
            2,
            "CAP_DAC_READ_SEARCH (open binaries that are not world-readable)",
        ),
        (
            40,
            "CAP_CHECKPOINT_RESTORE (open deleted binaries through /proc/PID/map_files)",
        ),
    ]
    .into_iter()
    .filter(|(c, _)| cap_eff & (1u64 << c) == 0)
    .map(|(_, n)| n)
    .collect()
}

pub fn check_privileges() -> Result<(), SamplerError> {
    let cap_eff = effective_caps();
    const CAP_SYS_ADMIN: u64 = 21;
    const CAP_PERFMON: u64 = 38;
    const CAP_BPF: u64 = 39;
    let has = |c: u64| cap_eff & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .iter()
        .filter(|(c, _)| !has(*c))
        .map(|(_, n)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(SamplerError::Privileges(missing.join(" and ")));
    }
    Ok(())
}

/// Offset of `child_pid` in the sched_process_fork record, from tracefs (it moved between
/// kernel versions when the comm fields became __data_loc).
fn fork_child_pid_offset() -> Result<u32, SamplerError> {
    let candidates = [
        "/sys/kernel/tracing/events/sched/sched_process_fork/format",
        "/sys/kernel/debug/tracing/events/sched/sched_process_fork/format",
    ];
    let mut text = candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok());
    if text.is_none() {
        // tracefs is not mounted (common in minimal containers): mount it where it belongs.
        let _ = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
        text = std::fs::read_to_string(candidates[0]).ok();
    }
    let text = text.ok_or_else(|| {
        SamplerError::Setup(
            "cannot read the sched_process_fork tracepoint format (is tracefs mounted?)".into(),
        )
    })?;
    parse_field_offset(&text, "child_pid")
        .ok_or_else(|| SamplerError::Setup("no child_pid in sched_process_fork format".into()))
}

fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|l| {
        let l = l.trim();
        let decl = l.strip_prefix("field:")?.split(';').next()?;
        if decl.split_whitespace().last()? != field {
            return None;
        }
        let off = l
            .split(';')
            .find_map(|p| p.trim().strip_prefix("offset:"))?;
        off.trim().parse().ok()
    })
}

fn take<T: TryFrom<aya::maps::Map>>(ebpf: &mut Ebpf, name: &str) -> Result<T, SamplerError>
where
    T::Error: std::fmt::Display,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| SamplerError::Setup(format!("map {name} missing from the eBPF object")))?;
    T::try_from(map).map_err(|e| SamplerError::Setup(format!("map {name}: {e}")))
}

fn setup_err(what: &str) -> impl FnOnce(String) -> SamplerError + '_ {
    move |e| SamplerError::Setup(format!("{what}: {e}"))
}

/// Loads program `name` and attaches it to the raw tracepoint `tp`.
fn attach_raw_tracepoint(ebpf: &mut Ebpf, name: &str, tp: &str) -> Result<(), SamplerError> {
    let program: &mut RawTracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| SamplerError::Setup(format!("program {name} missing")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| setup_err(name)(e.to_string()))?;
    program
        .load()
        .map_err(|e| SamplerError::Setup(format!("loading {name}: {e}")))?;
    program
        .attach(tp)
        .map_err(|e| SamplerError::Setup(format!("attaching {name} to {tp}: {e}")))?;
    Ok(())
}

/// The timer rate at or below which the kernel thins ([`thinning`]): k = this / rate.
const THINNED_TIMER_HZ: u64 = 500;

/// k of [`Control::Thinning`]: with jitter at low rates, the timer runs k× faster and the
/// kernel keeps 1 firing in k at random. Within one 50 ms draw of the jittered period the
/// samples are otherwise a lattice: against work whose round is near the drawn period, the
/// ~5 samples of a draw land at nearly one phase and count as about one (the aliasing test
/// missed by up to 3.2 points). Random thinning spreads them over the k phases of the faster
/// timer. The timer stays at most ~500 Hz per CPU (5 at 99 Hz; none above 250 Hz), so
/// the extra interrupts, which the program leaves after a clock read and a random draw,
/// stay cheap. Without jitter every firing is kept: --no-jitter is the plain fixed period.
pub fn thinning(opts: &SamplerOptions) -> u32 {
    if opts.jitter {
        (THINNED_TIMER_HZ / opts.frequency_hz.max(1)).clamp(1, 16) as u32
    } else {
        1
    }
}

/// The period in nanoseconds of a rate.
pub fn period_ns(frequency_hz: u64) -> u64 {
    1_000_000_000 / frequency_hz.max(1)
}

impl Kernel {
    /// Loads the programs and starts sampling on every online CPU.
    pub fn start(opts: &SamplerOptions) -> Result<(Self, KernelControl), SamplerError> {
        check_privileges()?;
        // Old kernels charge BPF maps to RLIMIT_MEMLOCK; harmless on new ones.
        let rlim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads the struct we pass; failure only leaves the old limit.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };

        let fork_offset = fork_child_pid_offset()?;
        let cpus = aya::util::online_cpus()
            .map_err(|(what, e)| SamplerError::Setup(format!("{what}: {e}")))?;
        let sizes = MapSizes::for_host(cpus.len(), opts.frequency_hz, opts.drain_interval);
        let mut loader = EbpfLoader::new();
        // No BTF relocations to do (the object uses no CO-RE): skipping aya's parse of the
        // kernel's BTF saves tens of milliseconds of attach time.
        loader.btf(None);
        for set in ["0", "1"] {
            // The loader keeps the names by reference for its lifetime.
            let name = |m: &str| -> &'static str { Box::leak(format!("{m}_{set}").into()) };
            loader.map_max_entries(name("COUNTS"), sizes.counts);
            loader.map_max_entries(name("SHORT_STACKS"), sizes.short_stacks);
            loader.map_max_entries(name("LONG_STACKS"), sizes.long_stacks);
            loader.map_max_entries(name("KERNEL_STACKS"), sizes.kernel_stacks);
        }
        loader.map_max_entries("FRAME0_RULES", sizes.frame0_rules);
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| SamplerError::Setup(format!("loading the eBPF object: {e}")))?;
        // The goroutine of a sample is found from the thread's TLS base, saved in its
        // task_struct at an offset only the kernel's BTF tells.
        let fsbase_offset = match super::btf::host_fsbase_offset() {
            Ok(off) => off,
            Err(e) => {
                log::warn!("no goroutine ids or labels: {e}");
                0
            }
        };
        let mut control = KernelControl {
            control: take(&mut ebpf, "CONTROL")?,
            targets: take(&mut ebpf, "TARGETS")?,
            frame0_rules: take(&mut ebpf, "FRAME0_RULES")?,
            go_procs: take(&mut ebpf, "GO_PROCS")?,
            goroutines_supported: fsbase_offset != 0,
        };
        let thinning = thinning(opts);
        let period = period_ns(opts.frequency_hz) / u64::from(thinning);
        let settings = [
            (Control::ActiveSet, 0),
            (Control::AllProcesses, u32::from(opts.all_processes)),
            (Control::ForkChildPidOffset, fork_offset),
            (Control::Threads, u32::from(opts.threads)),
            (Control::PeriodNanos, period as u32),
            (Control::Thinning, thinning),
            (Control::Goroutines, u32::from(opts.goroutines)),
            (Control::FsbaseOffset, fsbase_offset),
            (Control::Labels, u32::from(opts.goroutine_data)),
        ];
        for (slot, value) in settings {
            control
                .set(slot, value)
                .map_err(|e| setup_err("control map")(e.to_string()))?;
        }

        attach_raw_tracepoint(&mut ebpf, "on_exec", "sched_process_exec")?;
        attach_raw_tracepoint(&mut ebpf, "on_exit", "sched_process_exit")?;
        if opts.follow_children {
            // The fork record's child pid needs the tracepoint's own format (a raw tracepoint
            // would hand us task_struct pointers and need BTF offsets).
            let fork: &mut TracePoint = ebpf
                .program_mut("on_fork")
                .ok_or_else(|| SamplerError::Setup("program on_fork missing".into()))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| setup_err("on_fork")(e.to_string()))?;
            fork.load()
                .map_err(|e| setup_err("loading on_fork")(e.to_string()))?;
            fork.attach("sched", "sched_process_fork")
                .map_err(|e| setup_err("attaching on_fork")(e.to_string()))?;
        }

        let program: &mut PerfEvent = ebpf
            .program_mut("sample")
            .ok_or_else(|| SamplerError::Setup("program sample missing".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| setup_err("sample")(e.to_string()))?;
        program
            .load()
            .map_err(|e| setup_err("loading the perf_event program (verifier)")(e.to_string()))?;
        let prog_fd = program
            .fd()
            .map_err(|e| setup_err("perf_event program fd")(e.to_string()))?;
        let mut perf_fds = Vec::with_capacity(cpus.len());
        for &cpu in &cpus {
            // Our own perf events (not aya's attach): the sampler keeps their fds to change
            // the period while they run (jitter).
            let fd = sys::open_cpu_clock(cpu, period)
                .map_err(|e| SamplerError::Setup(format!("cpu-clock event on CPU {cpu}: {e}")))?;
            sys::attach_bpf(fd.as_fd(), prog_fd.as_fd()).map_err(|e| {
                SamplerError::Setup(format!("attaching the program on CPU {cpu}: {e}"))
            })?;
            perf_fds.push(fd);
        }

        let mut set = |n: &str| -> Result<MapSet, SamplerError> {
            Ok(MapSet {
                counts: take(&mut ebpf, &format!("COUNTS_{n}"))?,
                short_stacks: take(&mut ebpf, &format!("SHORT_STACKS_{n}"))?,
                long_stacks: take(&mut ebpf, &format!("LONG_STACKS_{n}"))?,
                kernel_stacks: take(&mut ebpf, &format!("KERNEL_STACKS_{n}"))?,
            })
        };
        let sets = [set("0")?, set("1")?];
        let kernel = Kernel {
            thinning,
            stats: take(&mut ebpf, "STATS")?,
            events: take(&mut ebpf, "EVENTS")?,
            sets,
            active: 0,
            perf_fds,
            cpus,
            sizes,
            batch_ok: true,
            label_sets: take(&mut ebpf, "LABEL_SETS")?,
            labels: LabelSets::new(),
            label_errors: 0,
            _ebpf: ebpf,
        };
        Ok((kernel, control))
    }

    /// Sets a new sampling period on every CPU (the timer's: a k-th of it when thinning) and
    /// the period the kernel falls back to.
    pub fn set_period(&mut self, control: &mut KernelControl, period_ns: u64) {
        let period_ns = period_ns / u64::from(self.thinning);
        for fd in &self.perf_fds {
            let _ = sys::set_period(fd.as_fd(), period_ns);
        }
        let _ = control.set(Control::PeriodNanos, period_ns as u32);
    }

    /// Stops sampling on every CPU (the programs stay attached until the fds close).
    pub fn disable(&mut self) {
        for fd in &self.perf_fds {
            let _ = sys::disable(fd.as_fd());
        }
    }

    /// Fork/exec/exit events since the last call.
    pub fn events(&mut self, out: &mut Vec<ProcessEvent>) {
        while let Some(item) = self.events.next() {
            if item.len() >= size_of::<ProcessEvent>() {
                // SAFETY: the kernel wrote a ProcessEvent of this size; read_unaligned copes
                // with the ring buffer's 8-byte alignment.
                out.push(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const ProcessEvent) });
            }
        }
    }

    /// Counters summed over CPUs, indexed by [`profiler_ebpf::Stat`].
    pub fn stats(&self) -> [u64; STAT_SLOTS as usize] {
        let mut out = [0u64; STAT_SLOTS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = self.stats.get(&(i as u32), 0) {
                *slot = values.iter().sum();
            }
        }
        out
    }

    /// Switches the kernel to the other map set and empties the one it was writing.
    pub fn drain(&mut self, control: &mut KernelControl) -> Result<Batch, SamplerError> {
        let draining = self.active as usize;
        self.active ^= 1;
        control
            .set(Control::ActiveSet, self.active)
            .map_err(|e| SamplerError::Drain(format!("flipping the map set: {e}")))?;
        // A program that read the old index just before the switch finishes within
        // microseconds; give it ample time before reading that set.
        std::thread::sleep(Duration::from_millis(2));
        let mut out = Batch::default();
        let batch_ok = self.batch_ok;
        let set = &mut self.sets[draining];
        let chunk = 4096;
        let fd = set.counts.map().fd().as_fd();
        let batched = batch_ok
            && sys::drain_hash_map::<SampleKey, SampleValue>(fd, chunk, |k, v| {
                out.counts.push((k, v))
            })
            .map_err(|e| SamplerError::Drain(format!("count map: {e}")))?;
        if batched {
            let fd = set.short_stacks.map().fd().as_fd();
            sys::drain_hash_map::<u64, ShortStack>(fd, chunk, |hash, stack| {
                let len = (stack.len as usize).min(SHORT_STACK_FRAMES);
                out.user_stacks
                    .insert(hash, (stack.frames[..len].to_vec(), stack.truncated != 0));
            })
            .map_err(|e| SamplerError::Drain(format!("short stack map: {e}")))?;
            let fd = set.long_stacks.map().fd().as_fd();
            // Long stacks are 1.5 KiB each: a smaller chunk keeps the buffer modest.
            sys::drain_hash_map::<u64, UserStackPod>(fd, 256, |hash, stack| {
                let stack = stack.0;
                let len = (stack.len as usize).min(MAX_USER_FRAMES);
                out.user_stacks
                    .insert(hash, (stack.frames[..len].to_vec(), stack.truncated != 0));
            })
            .map_err(|e| SamplerError::Drain(format!("long stack map: {e}")))?;
        } else {
            self.batch_ok = false;
            drain_one_by_one(set, &mut out);
        }
        let ids: Vec<u32> = set
            .kernel_stacks
            .stack_ids()
            .filter_map(|k| k.ok())
            .collect();
        for id in ids {
            if let Ok(stack) = set.kernel_stacks.get(&id, 0) {
                out.kernel_stacks
                    .insert(id as i32, stack.frames().iter().map(|f| f.ip).collect());
            }
            let _ = set.kernel_stacks.remove(&id);
        }
        self.label_sets_of(&mut out);
        out.kernel_stats = self.stats();
        Ok(out)
    }
}

impl Kernel {
    /// Puts the label sets the batch's samples name into it, decoding the new ones.
    fn label_sets_of(&mut self, out: &mut Batch) {
        for (key, value) in &out.counts {
            let id = key.label_set;
            if id == 0 || out.label_sets.contains_key(&id) {
                continue;
            }
            if !self.labels.contains_key(&id) {
                if self.labels.len() >= MAX_CACHED_LABEL_SETS {
                    self.labels.clear();
                }
                let tgid = key.tgid;
                match self
                    .label_sets
                    .get(&id, 0)
                    .map_err(|e| e.to_string())
                    .and_then(|set| {
                        labels::decode_with(&set, &mut |addr, len| read_immutable(tgid, addr, len))
                            .map_err(|e| e.to_string())
                    }) {
                    Ok(l) => {
                        self.labels.insert(id, std::sync::Arc::new(l));
                    }
                    Err(e) => {
                        self.label_errors += value.count;
                        log::debug!("label set {id:#x}: {e}");
                        continue;
                    }
                }
            }
            out.label_sets.insert(id, self.labels[&id].clone());
        }
    }
}

/// `len` bytes at `addr` of process `pid`, if they lie in a read-only file mapping (a
/// binary's rodata, where Go's string literals are): bytes that cannot have changed since the
/// kernel saw their address. The kernel leaves such a label string to us when its page was
/// not resident (reclaimed file pages: the perf interrupt cannot fault them in).
fn read_immutable(pid: u32, addr: u64, len: usize) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt as _;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let end = addr.checked_add(len as u64)?;
    let immutable = maps.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (Some(range), Some(perms), _, _, Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return false;
        };
        let Some((s, e)) = range.split_once('-') else {
            return false;
        };
        let (Ok(s), Ok(e)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else {
            return false;
        };
        s <= addr && end <= e && perms.as_bytes().get(1) == Some(&b'-') && inode != "0"
    });
    if !immutable {
        return None;
    }
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = vec![0u8; len];
    mem.read_exact_at(&mut buf, addr).ok()?;
    Some(buf)
}

/// `UserStack` with a `Default`, for the batch buffers.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct UserStackPod(UserStack);

impl Default for UserStackPod {
    fn default() -> Self {
        UserStackPod(UserStack {
            len: 0,
            truncated: 0,
            frames: [0; MAX_USER_FRAMES],
        })
    }
}

/// The fallback for kernels without batch map operations: two syscalls per key.
fn drain_one_by_one(set: &mut MapSet, out: &mut Batch) {
    let keys: Vec<SampleKey> = set.counts.keys().filter_map(|k| k.ok()).collect();
    for key in keys {
        if let Ok(value) = set.counts.get(&key, 0) {
            out.counts.push((key, value));
        }
        let _ = set.counts.remove(&key);
    }
    let hashes: Vec<u64> = set.short_stacks.keys().filter_map(|k| k.ok()).collect();
    for hash in hashes {
        if let Ok(stack) = set.short_stacks.get(&hash, 0) {
            let len = (stack.len as usize).min(SHORT_STACK_FRAMES);
            out.user_stacks
                .insert(hash, (stack.frames[..len].to_vec(), stack.truncated != 0));
        }
        let _ = set.short_stacks.remove(&hash);
    }
    let hashes: Vec<u64> = set.long_stacks.keys().filter_map(|k| k.ok()).collect();
    for hash in hashes {
        if let Ok(stack) = set.long_stacks.get(&hash, 0) {
            let len = (stack.len as usize).min(MAX_USER_FRAMES);
            out.user_stacks
                .insert(hash, (stack.frames[..len].to_vec(), stack.truncated != 0));
        }
        let _ = set.long_stacks.remove(&hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracepoint_field_offsets() {
        let new = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
                   \tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
                   \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_field_offset(new, "child_pid"), Some(20));
        let old = "\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\
                   \tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_field_offset(old, "child_pid"), Some(44));
        assert_eq!(parse_field_offset(old, "nope"), None);
    }

    #[test]
    fn map_sizes_follow_host_and_rate() {
        let small = MapSizes::for_host(2, 99, Duration::from_secs(1));
        let big = MapSizes::for_host(64, 999, Duration::from_secs(1));
        assert!(small.counts >= 2 * 99 * 2 && small.counts <= 1024);
        assert!(big.counts >= 64 * 999 * 2);
        assert!(big.counts.is_power_of_two());
        // Every sample of a drain may be a new deep stack.
        let deep = MapSizes::for_host(2, 999, Duration::from_secs(1));
        assert!(deep.long_stacks >= 2 * 999 && deep.short_stacks >= 2 * 999);
    }
}
