//! The kernel side, seen from userspace: load and attach the eBPF programs, keep the process
//! filter, and drain the aggregated counts.
//!
//! The kernel writes into one of two map sets while we read and empty the other, so a
//! recording of any length never fills a map and no increment races with our reads.

use std::collections::HashMap as StdHashMap;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf, StackTraceMap};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{PerfEvent, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use profiler_ebpf::{
    Control, MAX_USER_FRAMES, ProcessEvent, SHORT_STACK_FRAMES, STAT_SLOTS, SampleKey, ShortStack,
    Stat, TargetInfo, UserStack,
};

/// The compiled kernel program (built by build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler"));

#[derive(Clone, Debug)]
pub struct SamplerOptions {
    pub frequency_hz: u64,
    /// Sample every process, not only the filter's.
    pub all_processes: bool,
    /// Add children of followed processes to the filter (attaches the fork tracepoint, whose
    /// detach costs an RCU grace period at the end, so only when asked for).
    pub follow_children: bool,
}

/// One drained map set.
#[derive(Default)]
pub struct Drained {
    pub counts: Vec<(SampleKey, u64)>,
    /// User stacks by hash: frames (innermost first) and whether the walk was truncated.
    pub user_stacks: StdHashMap<u64, (Vec<u64>, bool)>,
    /// Kernel stacks by id, innermost first.
    pub kernel_stacks: StdHashMap<i32, Vec<u64>>,
}

struct MapSet {
    counts: HashMap<MapData, SampleKey, u64>,
    short_stacks: HashMap<MapData, u64, ShortStack>,
    long_stacks: HashMap<MapData, u64, UserStack>,
    kernel_stacks: StackTraceMap<MapData>,
}

pub struct Sampler {
    // Keeps the programs and their links alive.
    _ebpf: Ebpf,
    control: Array<MapData, u32>,
    stats: PerCpuArray<MapData, u64>,
    targets: HashMap<MapData, u32, TargetInfo>,
    events: RingBuf<MapData>,
    sets: [MapSet; 2],
    active: u32,
    pub cpus: Vec<u32>,
}

/// Checks the privileges eBPF sampling needs and says which are missing.
pub fn check_privileges() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
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
        bail!(
            "missing capabilities {} (run as root: sudo gprof-bpf ...)",
            missing.join(" and ")
        );
    }
    Ok(())
}

/// Offset of `child_pid` in the sched_process_fork record, from tracefs (it moved between
/// kernel versions when the comm fields became __data_loc).
fn fork_child_pid_offset() -> Result<u32> {
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
    let text =
        text.context("cannot read the sched_process_fork tracepoint format (is tracefs mounted?)")?;
    parse_field_offset(&text, "child_pid").context("no child_pid in sched_process_fork format")
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

fn take<T: TryFrom<aya::maps::Map>>(ebpf: &mut Ebpf, name: &str) -> Result<T>
where
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} missing from the eBPF object"))?;
    T::try_from(map).with_context(|| format!("map {name}"))
}

impl Sampler {
    /// Loads the programs and starts sampling on every online CPU.
    pub fn start(opts: &SamplerOptions) -> Result<Self> {
        check_privileges()?;
        // Old kernels charge BPF maps to RLIMIT_MEMLOCK; harmless on new ones.
        let rlim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain syscall with a valid pointer.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };

        let fork_offset = fork_child_pid_offset()?;
        // No BTF relocations to do (the object uses no CO-RE): skipping aya's parse of the
        // kernel's BTF saves tens of milliseconds of attach time.
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .load(OBJECT)
            .context("loading the eBPF object")?;
        let mut control: Array<MapData, u32> = take(&mut ebpf, "CONTROL")?;
        control.set(Control::ActiveSet as u32, 0, 0)?;
        control.set(
            Control::AllProcesses as u32,
            u32::from(opts.all_processes),
            0,
        )?;
        control.set(Control::ForkChildPidOffset as u32, fork_offset, 0)?;

        let exec: &mut RawTracePoint = ebpf
            .program_mut("on_exec")
            .context("program on_exec missing")?
            .try_into()?;
        exec.load().context("loading on_exec")?;
        exec.attach("sched_process_exec")
            .context("attaching on_exec to sched_process_exec")?;
        if opts.follow_children {
            // The fork record's child pid needs the tracepoint's own format (a raw tracepoint
            // would hand us task_struct pointers and need BTF offsets).
            let fork: &mut TracePoint = ebpf
                .program_mut("on_fork")
                .context("program on_fork missing")?
                .try_into()?;
            fork.load().context("loading on_fork")?;
            fork.attach("sched", "sched_process_fork")
                .context("attaching on_fork to sched/sched_process_fork")?;
        }

        let cpus = aya::util::online_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
        let program: &mut PerfEvent = ebpf
            .program_mut("sample")
            .context("program sample missing")?
            .try_into()?;
        program
            .load()
            .context("loading the perf_event program (verifier)")?;
        for &cpu in &cpus {
            program
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(opts.frequency_hz),
                    false,
                )
                .with_context(|| format!("attaching the cpu-clock event on CPU {cpu}"))?;
        }

        let sets = [
            MapSet {
                counts: take(&mut ebpf, "COUNTS_0")?,
                short_stacks: take(&mut ebpf, "SHORT_STACKS_0")?,
                long_stacks: take(&mut ebpf, "LONG_STACKS_0")?,
                kernel_stacks: take(&mut ebpf, "KERNEL_STACKS_0")?,
            },
            MapSet {
                counts: take(&mut ebpf, "COUNTS_1")?,
                short_stacks: take(&mut ebpf, "SHORT_STACKS_1")?,
                long_stacks: take(&mut ebpf, "LONG_STACKS_1")?,
                kernel_stacks: take(&mut ebpf, "KERNEL_STACKS_1")?,
            },
        ];
        Ok(Sampler {
            control,
            stats: take(&mut ebpf, "STATS")?,
            targets: take(&mut ebpf, "TARGETS")?,
            events: take(&mut ebpf, "EVENTS")?,
            sets,
            active: 0,
            cpus,
            _ebpf: ebpf,
        })
    }

    pub fn add_target(&mut self, tgid: u32, follow_children: bool) -> Result<()> {
        let info = TargetInfo {
            generation: 0,
            follow_children: u32::from(follow_children),
        };
        // BPF_NOEXIST: never reset the generation of a target the kernel already tracks.
        match self.targets.insert(tgid, info, 1 /* BPF_NOEXIST */) {
            Ok(()) => Ok(()),
            Err(_) if self.targets.get(&tgid, 0).is_ok() => Ok(()),
            Err(e) => Err(e).context("adding a pid to the filter"),
        }
    }

    pub fn remove_target(&mut self, tgid: u32) {
        let _ = self.targets.remove(&tgid);
    }

    /// The filter's pids with their current exec generation.
    pub fn targets(&self) -> Vec<(u32, TargetInfo)> {
        self.targets.iter().filter_map(|r| r.ok()).collect()
    }

    /// Fork/exec events since the last call.
    pub fn events(&mut self) -> Vec<ProcessEvent> {
        let mut out = Vec::new();
        while let Some(item) = self.events.next() {
            if item.len() >= size_of::<ProcessEvent>() {
                // SAFETY: the kernel wrote a ProcessEvent; read_unaligned copes with alignment.
                out.push(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const ProcessEvent) });
            }
        }
        out
    }

    /// The ring buffer's fd, to wait for events.
    pub fn events_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.events.as_fd()
    }

    /// Counters summed over CPUs, indexed by [`Stat`].
    pub fn stats(&self) -> [u64; STAT_SLOTS as usize] {
        let mut out = [0u64; STAT_SLOTS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = self.stats.get(&(i as u32), 0) {
                *slot = values.iter().sum();
            }
        }
        out
    }

    pub fn stat(&self, s: Stat) -> u64 {
        self.stats()[s as usize]
    }

    /// Switches the kernel to the other map set and empties the one it was writing.
    pub fn drain(&mut self) -> Result<Drained> {
        let draining = self.active as usize;
        self.active ^= 1;
        self.control
            .set(Control::ActiveSet as u32, self.active, 0)?;
        // A program that read the old index just before the switch finishes within
        // microseconds; give it ample time before reading that set.
        std::thread::sleep(Duration::from_millis(2));
        let set = &mut self.sets[draining];
        let mut out = Drained::default();
        let keys: Vec<SampleKey> = set.counts.keys().filter_map(|k| k.ok()).collect();
        for key in keys {
            if let Ok(count) = set.counts.get(&key, 0) {
                out.counts.push((key, count));
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
        Ok(out)
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
}
