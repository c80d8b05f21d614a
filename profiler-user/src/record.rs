//! A recording: drive the sampler, resolve each drained stack against the process it came
//! from while that process is alive, and build the profile at the end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail};
use profiler_ebpf::{EVENT_EXEC, EVENT_FORK, SampleKey, Stat};

use crate::process::{ObjectCache, ObjectFile, ProcessSnapshot};
use crate::profile::{
    Function, Label, LabelValue, Line, Location, Mapping, Profile, ProfileBuilder, RecordingStats,
    Sample,
};
use crate::sampler::{Drained, Sampler, SamplerOptions};
use crate::symbolize::gopclntab::{Frame, PcKind};
use crate::symbolize::kallsyms::Kallsyms;
use crate::unwind::{self, RepairStats};

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub pids: Vec<u32>,
    pub all: bool,
    pub subprocesses: bool,
    /// Spawn this command and profile it from its first instruction.
    pub command: Vec<String>,
    pub frequency_hz: u64,
    /// None: until Ctrl-C (or until every target exited).
    pub duration: Option<Duration>,
    /// How often the kernel maps are drained.
    pub drain_interval: Duration,
}

/// A resolved frame: enough to symbolize it after the process is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum FrameRef {
    /// An address in a mapped file: object index, profile mapping id, runtime address,
    /// link-time address, lookup kind.
    User {
        object: usize,
        mapping: u64,
        pc: u64,
        link: u64,
        kind: PcKind,
        callee_panics: bool,
    },
    /// An address no mapping (or no readable file) explains.
    Unknown {
        pc: u64,
        kind: PcKind,
    },
    Kernel {
        pc: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StackKey {
    pid: u32,
    tid: u32,
    /// Innermost first: kernel frames, then user frames.
    frames: Vec<FrameRef>,
}

struct ProcessState {
    snapshot: Option<ProcessSnapshot>,
    /// Re-read /proc/PID/maps at most once per drain when an address is not mapped (dlopen).
    refreshed_at_drain: u64,
}

/// Counters the recording keeps besides the kernel's.
#[derive(Default, Debug, Clone, Copy)]
pub struct RecordCounters {
    pub drains: u64,
    pub samples: u64,
    pub repair: RepairStats,
    pub truncated_stacks: u64,
}

pub struct Recorder {
    sampler: Sampler,
    opts: RecordOptions,
    cache: ObjectCache,
    processes: HashMap<(u32, u32), ProcessState>,
    comms: HashMap<u32, String>,
    /// Start time (clock ticks since boot) of each pid when first seen: tells pid reuse apart.
    start_times: HashMap<u32, u64>,
    /// Pids found gone at the last prune; forgotten at the next one, once their last samples
    /// (taken before exit, drained one flip later) have been ingested.
    gone: std::collections::HashSet<u32>,
    objects: Vec<Arc<ObjectFile>>,
    object_index: HashMap<*const ObjectFile, usize>,
    counts: HashMap<StackKey, u64>,
    profile: Profile,
    builder: ProfileBuilder,
    notes: Vec<String>,
    /// Reads /proc/kallsyms in the background from the first kernel frame on (it takes tens
    /// of milliseconds), so the report is not kept waiting at the end.
    kallsyms: Option<std::thread::JoinHandle<Option<Kallsyms>>>,
    pub counters: RecordCounters,
    started: Instant,
}

fn parse_pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

impl Recorder {
    pub fn new(opts: RecordOptions) -> Result<Self> {
        if opts.pids.is_empty() && !opts.all && opts.command.is_empty() {
            bail!("nothing to profile: give --pid PID, --all, or -- COMMAND");
        }
        // Privileges first: without them nothing else can work, and that is the error to show.
        crate::sampler::check_privileges()?;
        for &pid in &opts.pids {
            if !parse_pid_alive(pid) {
                bail!("no process with pid {pid}");
            }
            if let Err(e) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
                bail!("process {pid} is not accessible: {e} (run as root)");
            }
        }
        let sampler = Sampler::start(&SamplerOptions {
            frequency_hz: opts.frequency_hz,
            all_processes: opts.all,
            follow_children: opts.subprocesses,
        })?;
        let profile = Profile::new_cpu(opts.frequency_hz, SystemTime::now());
        let mut r = Recorder {
            sampler,
            opts,
            cache: ObjectCache::default(),
            processes: HashMap::new(),
            comms: HashMap::new(),
            start_times: HashMap::new(),
            gone: Default::default(),
            objects: Vec::new(),
            object_index: HashMap::new(),
            counts: HashMap::new(),
            profile,
            builder: ProfileBuilder::default(),
            notes: Vec::new(),
            kallsyms: None,
            counters: RecordCounters::default(),
            started: Instant::now(),
        };
        for pid in r.opts.pids.clone() {
            r.sampler.add_target(pid, r.opts.subprocesses)?;
            r.snapshot(pid, 0);
        }
        Ok(r)
    }

    /// Adds a process to the filter (e.g. a spawned command) and snapshots it.
    pub fn add_target(&mut self, pid: u32) -> Result<()> {
        self.sampler.add_target(pid, self.opts.subprocesses)?;
        self.opts.pids.push(pid);
        Ok(())
    }

    fn snapshot(&mut self, pid: u32, generation: u32) {
        if let Some(t) = start_time(pid) {
            self.start_times.entry(pid).or_insert(t);
        }
        let snapshot = match ProcessSnapshot::take(pid, generation, &mut self.cache) {
            Ok(s) => {
                for e in &s.errors {
                    let note = format!("pid {pid}: cannot read {e}");
                    if !self.notes.contains(&note) {
                        self.notes.push(note);
                    }
                }
                self.comms.insert(pid, s.comm.clone());
                Some(s)
            }
            Err(_) => None,
        };
        self.processes.insert(
            (pid, generation),
            ProcessState {
                snapshot,
                refreshed_at_drain: u64::MAX,
            },
        );
    }

    /// Handles fork/exec events: snapshot new images while they are alive.
    pub fn poll_events(&mut self) {
        for ev in self.sampler.events() {
            match ev.kind {
                // The child runs its parent's image until it execs.
                EVENT_FORK if !self.processes.contains_key(&(ev.value, 0)) => {
                    self.snapshot(ev.value, 0)
                }
                EVENT_EXEC => self.snapshot(ev.tgid, ev.value),
                _ => {}
            }
        }
    }

    /// Pids still being profiled (the filter, minus processes that are gone).
    pub fn live_targets(&mut self) -> Vec<u32> {
        let mut live = Vec::new();
        for (pid, _) in self.sampler.targets() {
            if self.reused(pid) {
                self.notes.push(format!(
                    "pid {pid} exited and was reused by another process; stopped following it"
                ));
                self.sampler.remove_target(pid);
                continue;
            }
            match std::fs::read_to_string(format!("/proc/{pid}/status")) {
                // Thread creation fires the fork tracepoint too: drop tids that are not processes.
                Ok(status)
                    if status
                        .lines()
                        .any(|l| l.split_whitespace().eq(["Tgid:", &pid.to_string()]))
                        && !status.lines().any(|l| {
                            l.starts_with("State:") && (l.contains("zombie") || l.contains("dead"))
                        }) =>
                {
                    live.push(pid)
                }
                _ => self.sampler.remove_target(pid),
            }
        }
        live
    }

    /// True when `pid` now belongs to another process than the one first seen under it.
    fn reused(&self, pid: u32) -> bool {
        match (self.start_times.get(&pid), start_time(pid)) {
            (Some(&then), Some(now)) => then != now,
            _ => false,
        }
    }

    /// Forgets what was known about a pid that now names another process (--all mode).
    fn forget_if_reused(&mut self, pid: u32) {
        if self.reused(pid) {
            self.processes.retain(|&(p, _), _| p != pid);
            self.start_times.remove(&pid);
            self.comms.remove(&pid);
        }
    }

    /// Keeps a long `--all` recording bounded: forgets processes that are gone and removes
    /// them from the kernel's generation table.
    pub fn prune(&mut self) {
        let gone_before = std::mem::take(&mut self.gone);
        let pids: std::collections::HashSet<u32> = self.processes.keys().map(|k| k.0).collect();
        for pid in pids {
            if parse_pid_alive(pid) && !self.reused(pid) {
                continue;
            }
            if gone_before.contains(&pid) {
                self.processes.retain(|&(p, _), _| p != pid);
                self.start_times.remove(&pid);
                self.sampler.remove_target(pid);
            } else {
                self.gone.insert(pid);
            }
        }
    }

    pub fn drain(&mut self) -> Result<()> {
        self.poll_events();
        let drained = self.sampler.drain()?;
        self.counters.drains += 1;
        self.ingest(drained);
        Ok(())
    }

    fn object_id(&mut self, o: &Arc<ObjectFile>) -> usize {
        let key = Arc::as_ptr(o);
        if let Some(&i) = self.object_index.get(&key) {
            return i;
        }
        self.objects.push(o.clone());
        self.object_index.insert(key, self.objects.len() - 1);
        self.objects.len() - 1
    }

    fn ingest(&mut self, drained: Drained) {
        let drain_no = self.counters.drains;
        let mut seen_this_drain = std::collections::HashSet::new();
        for (key, count) in drained.counts {
            self.counters.samples += count;
            let SampleKey {
                tgid,
                tid,
                generation,
                kernel_stack_id,
                user_stack_hash,
                sp_words,
                bp_minus_sp,
            } = key;
            let mut frames = Vec::new();
            if let Some(k) = drained
                .kernel_stacks
                .get(&kernel_stack_id)
                .filter(|_| kernel_stack_id >= 0)
            {
                frames.extend(k.iter().map(|&pc| FrameRef::Kernel { pc }));
                if self.kallsyms.is_none() {
                    self.kallsyms = Some(std::thread::spawn(|| Kallsyms::load().ok()));
                }
            }
            if self.opts.all && seen_this_drain.insert(tgid) {
                self.forget_if_reused(tgid);
            }
            if !self.processes.contains_key(&(tgid, generation)) {
                self.snapshot(tgid, generation);
            }
            if let Some((user, truncated)) = drained.user_stacks.get(&user_stack_hash) {
                if *truncated {
                    self.counters.truncated_stacks += count;
                }
                // Refresh a stale snapshot once per drain when the IP is not mapped (dlopen).
                let state = self
                    .processes
                    .get_mut(&(tgid, generation))
                    .expect("inserted above");
                let unmapped = state
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| user.first().is_some_and(|&ip| s.resolve(ip).is_none()));
                if unmapped && state.refreshed_at_drain != drain_no && parse_pid_alive(tgid) {
                    state.refreshed_at_drain = drain_no;
                    if let Ok(s) = ProcessSnapshot::take(tgid, generation, &mut self.cache) {
                        state.snapshot = Some(s);
                    }
                }
                let state = &self.processes[&(tgid, generation)];
                let completed = unwind::complete_stack(
                    state.snapshot.as_ref(),
                    user,
                    sp_words,
                    bp_minus_sp,
                    &mut self.counters.repair,
                );
                let resolved: Vec<_> = completed
                    .iter()
                    .map(|f| {
                        let r = state.snapshot.as_ref().and_then(|s| s.resolve(f.pc));
                        (
                            *f,
                            r.map(|r| (r.object.clone(), r.link_address, r.mapped.entry.clone())),
                        )
                    })
                    .collect();
                for (f, r) in resolved {
                    let fref = match r {
                        Some((object, link, entry)) => {
                            let mapping = Mapping {
                                start: entry.start,
                                limit: entry.end,
                                offset: entry.offset,
                                file: object.path.clone(),
                                build_id: object.build_id(),
                                has_functions: true,
                                has_filenames: object.go.is_some(),
                                has_line_numbers: object.go.is_some(),
                                has_inline_frames: object.go.is_some(),
                            };
                            let mapping = self.builder.mapping(&mut self.profile, mapping);
                            let object = self.object_id(&object);
                            FrameRef::User {
                                object,
                                mapping,
                                pc: f.pc,
                                link,
                                kind: f.kind,
                                callee_panics: f.callee_panics,
                            }
                        }
                        None => FrameRef::Unknown {
                            pc: f.pc,
                            kind: f.kind,
                        },
                    };
                    frames.push(fref);
                }
            }
            *self
                .counts
                .entry(StackKey {
                    pid: tgid,
                    tid,
                    frames,
                })
                .or_default() += count;
        }
    }

    /// Stops sampling (the final drains empty both map sets) and builds the profile.
    pub fn finish(mut self) -> Result<Profile> {
        // The sampling window ends here; symbolization time is not part of it.
        self.profile.duration = self.started.elapsed();
        self.drain()?;
        self.drain()?;
        let stats = self.sampler.stats();
        let kallsyms = self.kallsyms.take().and_then(|h| h.join().ok().flatten());
        let mut symbolized: HashMap<FrameRef, u64> = HashMap::new();
        let period = self.profile.period;
        let counts = std::mem::take(&mut self.counts);
        let mut samples = Vec::with_capacity(counts.len());
        let mut scratch = Vec::new();
        for (key, count) in counts {
            let mut location_ids = Vec::with_capacity(key.frames.len());
            for f in &key.frames {
                let id = match symbolized.get(f) {
                    Some(&id) => id,
                    None => {
                        let loc = self.locate(f, kallsyms.as_ref(), &mut scratch);
                        let id = self.builder.location(&mut self.profile, loc);
                        symbolized.insert(*f, id);
                        id
                    }
                };
                location_ids.push(id);
            }
            let mut labels = vec![
                Label {
                    key: "pid".into(),
                    value: LabelValue::Num(key.pid as i64),
                },
                Label {
                    key: "tid".into(),
                    value: LabelValue::Num(key.tid as i64),
                },
            ];
            if let Some(comm) = self.comms.get(&key.pid) {
                labels.push(Label {
                    key: "process".into(),
                    value: LabelValue::Str(comm.clone()),
                });
            }
            samples.push(Sample {
                location_ids,
                values: vec![count as i64, count as i64 * period],
                labels,
            });
        }
        samples.sort_by(|a, b| {
            b.values[0]
                .cmp(&a.values[0])
                .then_with(|| a.location_ids.cmp(&b.location_ids))
        });
        self.profile.samples = samples;
        // One line per Go binary, version first (the report finds the matching GOROOT by it).
        for o in &self.objects {
            let b = &o.build_info;
            let Some(v) = &b.go_version else { continue };
            let mut line = format!("{v} {}", o.path);
            let mut details = Vec::new();
            if let Some(m) = &b.module_path {
                details.push(format!("module {m}"));
            }
            if let Some(m) = b
                .main_path
                .as_ref()
                .filter(|m| Some(*m) != b.module_path.as_ref())
            {
                details.push(format!("main {m}"));
            }
            let id = o.build_id();
            if !id.is_empty() {
                details.push(format!("build id {id}"));
            }
            if !details.is_empty() {
                line.push_str(&format!(" ({})", details.join(", ")));
            }
            self.profile.comments.push(line);
        }
        let mut lost = Vec::new();
        for (stat, what) in [
            (Stat::LostCountMapFull, "samples lost: count map full"),
            (
                Stat::LostUserStackMapFull,
                "user stacks lost: stack map full",
            ),
            (
                Stat::LostKernelStackCollision,
                "kernel stacks lost: stack-id collision",
            ),
            (
                Stat::LostKernelStackOther,
                "kernel stacks lost: other error",
            ),
            (Stat::LostEvents, "fork/exec events lost: ring buffer full"),
        ] {
            lost.push((what.to_string(), stats[stat as usize]));
        }
        lost.push((
            "user stacks truncated at 192 frames".into(),
            stats[Stat::TruncatedStacks as usize],
        ));
        lost.push((
            "user stack walks ended by a read fault".into(),
            stats[Stat::UserReadFault as usize],
        ));
        if self.profile.samples.is_empty() {
            self.notes.push(
                "no samples: the profiled processes did not run on a CPU during the recording \
                 (idle or blocked; this is a CPU profiler)"
                    .into(),
            );
        }
        let (agent_cpu, agent_max_rss) = own_usage();
        self.profile.stats = Some(RecordingStats {
            lost,
            agent_cpu,
            agent_max_rss,
            notes: self.notes.clone(),
        });
        // Detaching the programs waits for RCU grace periods (tens of ms per tracepoint link):
        // let that happen beside the report instead of before it.
        let sampler = self.sampler;
        std::thread::spawn(move || drop(sampler));
        Ok(self.profile)
    }

    fn function(&mut self, name: &str, file: &str, start_line: i64) -> u64 {
        let f = Function {
            name: name.to_string(),
            system_name: name.to_string(),
            filename: file.to_string(),
            start_line,
        };
        self.builder.function(&mut self.profile, f)
    }

    fn locate(
        &mut self,
        f: &FrameRef,
        kallsyms: Option<&Kallsyms>,
        scratch: &mut Vec<(String, String, u32, u32)>,
    ) -> Location {
        match *f {
            FrameRef::Kernel { pc } => {
                let name = kallsyms
                    .and_then(|k| k.lookup(pc))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("[kernel] {pc:#x}"));
                let function_id = self.function(&name, "", 0);
                Location {
                    mapping_id: 0,
                    address: pc,
                    lines: vec![Line {
                        function_id,
                        line: 0,
                    }],
                }
            }
            FrameRef::Unknown { pc, kind } => {
                let function_id = self.function(&format!("[unknown] {pc:#x}"), "", 0);
                Location {
                    mapping_id: 0,
                    address: call_pc(pc, kind),
                    lines: vec![Line {
                        function_id,
                        line: 0,
                    }],
                }
            }
            FrameRef::User {
                object,
                mapping,
                pc,
                link,
                kind,
                callee_panics,
            } => {
                let object = self.objects[object].clone();
                scratch.clear();
                if let Some(go) = &object.go {
                    let mut frames: Vec<Frame<'_>> = Vec::new();
                    // Wrapper frames are elided as the runtime does, unless the callee panics.
                    let callee = callee_panics.then_some("runtime.gopanic");
                    if go
                        .frames_with_callee(link, kind, callee, &mut frames)
                        .is_ok()
                    {
                        scratch.extend(frames.iter().map(|fr| {
                            (
                                fr.function.to_string(),
                                fr.file.to_string(),
                                fr.line,
                                fr.start_line,
                            )
                        }));
                    }
                }
                let lines = if !scratch.is_empty() {
                    let items = std::mem::take(scratch);
                    let lines = items
                        .iter()
                        .map(|(name, file, line, start)| Line {
                            function_id: self.function(name, file, *start as i64),
                            line: *line as i64,
                        })
                        .collect();
                    *scratch = items;
                    lines
                } else if let Some(dwarf_frames) = object
                    .dwarf()
                    .map(|d| {
                        d.frames(if kind == PcKind::Return {
                            link.saturating_sub(1)
                        } else {
                            link
                        })
                    })
                    .filter(|f| !f.is_empty())
                {
                    dwarf_frames
                        .iter()
                        .map(|f| Line {
                            function_id: self.function(&f.function, &f.file, 0),
                            line: i64::from(f.line),
                        })
                        .collect()
                } else {
                    let lookup = if kind == PcKind::Return {
                        link.saturating_sub(1)
                    } else {
                        link
                    };
                    let name = match object.elf_symbols().lookup(lookup) {
                        // C++ and Rust symbols are shown demangled, as perf and pprof show them.
                        Some((name, _)) => {
                            ::addr2line::demangle_auto(std::borrow::Cow::Borrowed(name), None)
                                .into_owned()
                        }
                        None => {
                            let base = object.path.rsplit('/').next().unwrap_or(&object.path);
                            format!("{base}+{link:#x}")
                        }
                    };
                    vec![Line {
                        function_id: self.function(&name, "", 0),
                        line: 0,
                    }]
                };
                Location {
                    mapping_id: mapping,
                    address: call_pc(pc, kind),
                    lines,
                }
            }
        }
    }

    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }
}

/// pprof's convention: a caller's location address is the call instruction (return - 1).
fn call_pc(pc: u64, kind: PcKind) -> u64 {
    if kind == PcKind::Return {
        pc.saturating_sub(1)
    } else {
        pc
    }
}

/// CPU time (user + system) and peak RSS of this process.
pub fn own_usage() -> (Duration, u64) {
    // SAFETY: getrusage fills the struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        ru.ru_maxrss as u64 * 1024,
    )
}

/// Runs a recording to its end: duration, Ctrl-C, or every target gone.
pub async fn run(opts: RecordOptions, quiet: bool) -> Result<Profile> {
    let mut recorder = Recorder::new(opts.clone())?;
    let mut child = None;
    if !opts.command.is_empty() {
        let (pid, handle) = spawn_held(&opts.command, |pid| recorder.add_target(pid))?;
        recorder.snapshot(pid, 0);
        child = Some((pid, handle));
    }
    if !quiet {
        let what = if opts.all {
            "all processes".to_string()
        } else {
            format!("pid {:?}", recorder.opts.pids)
        };
        eprintln!(
            "gprof-bpf: sampling {what} at {} Hz on {} CPUs{}",
            opts.frequency_hz,
            recorder.sampler().cpus.len(),
            match opts.duration {
                Some(d) => format!(" for {:.1}s", d.as_secs_f64()),
                None => ", Ctrl-C to stop".into(),
            }
        );
    }
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut drain_tick = tokio::time::interval(opts.drain_interval);
    let mut event_tick = tokio::time::interval(Duration::from_millis(20));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let sleep_until =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tokio::time::sleep_until(sleep_until), if deadline.is_some() => break,
            _ = event_tick.tick() => recorder.poll_events(),
            _ = drain_tick.tick() => {
                recorder.drain()?;
                if opts.all && recorder.counters.drains % 10 == 0 {
                    recorder.prune();
                }
                if !opts.all && recorder.live_targets().is_empty() {
                    let note = "every profiled process exited; stopped early".to_string();
                    recorder.notes.push(note);
                    break;
                }
            }
        }
    }
    if let Some((pid, handle)) = child {
        if parse_pid_alive(pid) {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = handle.join();
    }
    recorder.finish()
}

/// Spawns `command` held before exec; `register` runs with its pid before it may exec, so the
/// very first instruction of the new image is already profiled.
fn spawn_held(
    command: &[String],
    mut register: impl FnMut(u32) -> Result<()>,
) -> Result<(
    u32,
    std::thread::JoinHandle<std::io::Result<std::process::ExitStatus>>,
)> {
    use std::os::unix::process::CommandExt as _;
    let mut go = [0i32; 2];
    let mut pid_pipe = [0i32; 2];
    // SAFETY: pipe() fills the arrays.
    if unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        || unsafe { libc::pipe2(pid_pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0
    {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    let (go_r, go_w, pid_r, pid_w) = (go[0], go[1], pid_pipe[0], pid_pipe[1]);
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
    // SAFETY: only async-signal-safe calls (getpid, write, read) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let pid = libc::getpid();
            libc::write(pid_w, &pid as *const i32 as *const libc::c_void, 4);
            let mut b = 0u8;
            libc::read(go_r, &mut b as *mut u8 as *mut libc::c_void, 1);
            Ok(())
        })
    };
    let name = command[0].clone();
    // spawn() returns only once exec happened, which waits for us: run it on a thread.
    let handle = std::thread::spawn(move || cmd.spawn().and_then(|mut c| c.wait()));
    let mut pid: i32 = 0;
    // SAFETY: reading 4 bytes into an i32.
    let n = unsafe { libc::read(pid_r, &mut pid as *mut i32 as *mut libc::c_void, 4) };
    unsafe { libc::close(pid_r) };
    unsafe { libc::close(pid_w) };
    if n != 4 {
        let err = handle
            .join()
            .map_err(|_| anyhow::anyhow!("spawn thread panicked"))?;
        bail!("cannot start {name}: {:?}", err.err());
    }
    let registered = register(pid as u32);
    // SAFETY: releasing the child.
    unsafe { libc::write(go_w, b"g".as_ptr() as *const libc::c_void, 1) };
    unsafe { libc::close(go_w) };
    unsafe { libc::close(go_r) };
    registered.context("adding the command to the filter")?;
    Ok((pid as u32, handle))
}
