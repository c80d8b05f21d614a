//! A recording: the streaming pipeline with one window (or `--window` cuts written to a
//! directory), the processes given on the command line, and a report at the end.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use profiler_ebpf::Stat;

use crate::capture::{self, CapturingSource, SharedWriter};
use crate::pipeline::PipelineError;
use crate::pipeline::{Control, Pipeline, PipelineOptions};
use crate::process::LiveProcs;
use crate::process::registry::{Registry, start_time};
use crate::profile::{Profile, RecordingStats};
use crate::reporter::{Reporter, Stderr};
use crate::sampler::{Sampler, SamplerError, SamplerOptions};
use crate::sink::{DirSink, Sink, SinkError};

/// Why a recording could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("nothing to profile: give --pid PID, --all, or -- COMMAND")]
    NothingToProfile,
    #[error("no process with pid {0}")]
    NoProcess(u32),
    #[error("process {pid} is not accessible: {error} (run as root)")]
    NotAccessible { pid: u32, error: std::io::Error },
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("adding the command to the filter")]
    CommandFilter(#[source] FilterError),
    #[error("pipe: {0}")]
    Pipe(std::io::Error),
    #[error("spawn thread panicked")]
    SpawnPanicked,
    #[error("cannot start {name}: {detail}")]
    Start { name: String, detail: String },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}

/// The kernel's pid filter refused a pid.
#[derive(Debug, thiserror::Error)]
#[error("adding a pid to the filter")]
pub struct FilterError(#[source] pub aya::maps::MapError);

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
    /// The thread id is a dimension of every sample (`--threads`).
    pub threads: bool,
    /// The goroutine id is a dimension of every sample of a Go process (`--goroutines`).
    pub goroutines: bool,
    /// Read goroutine data (pprof labels, ids) in the kernel; off with `--no-labels`.
    pub goroutine_data: bool,
    /// Vary the sampling period randomly around 1/frequency (on by default).
    pub jitter: bool,
    /// Cut the recording into windows this long, each written to `window_dir`.
    pub window: Option<Duration>,
    pub window_dir: Option<PathBuf>,
    /// Keep the whole-run total for the report; off (`--windows-only`) a recording of any
    /// length stays in bounded memory and writes only its windows.
    pub keep_total: bool,
    /// Also write a capture of the recording's inputs here (see [`crate::capture`]).
    pub capture: Option<PathBuf>,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            pids: Vec::new(),
            all: false,
            subprocesses: false,
            command: Vec::new(),
            frequency_hz: 99,
            duration: None,
            drain_interval: Duration::from_secs(1),
            threads: false,
            goroutines: false,
            goroutine_data: true,
            jitter: true,
            window: None,
            window_dir: None,
            keep_total: true,
            capture: None,
        }
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops a `--pid` recording when every profiled process is gone, and stops following a pid
/// that now names another process.
pub(crate) struct UntilTargetsExit {
    all: bool,
    start_times: std::collections::HashMap<u32, u64>,
}

impl UntilTargetsExit {
    /// `all`: profiling every process, which never ends by itself.
    pub(crate) fn new(all: bool) -> Self {
        UntilTargetsExit {
            all,
            start_times: Default::default(),
        }
    }
}

impl Control for UntilTargetsExit {
    fn after_batch(&mut self, registry: &mut Registry, sampler: &Sampler) -> Option<String> {
        if self.all {
            registry.forget_vanished();
            return None;
        }
        let targets = sampler.control().targets();
        let mut live = 0;
        let mut notes = Vec::new();
        for (pid, _) in targets {
            let first = *self
                .start_times
                .entry(pid)
                .or_insert_with(|| start_time(pid).unwrap_or(0));
            let now = start_time(pid);
            if now.is_some_and(|t| first != 0 && t != first) {
                notes.push(format!(
                    "pid {pid} exited and was reused by another process; stopped following it"
                ));
                sampler.control().remove_target(pid);
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
                    live += 1
                }
                _ => sampler.control().remove_target(pid),
            }
        }
        if live == 0 {
            notes.push("every profiled process exited; stopped early".to_string());
        }
        (live == 0).then(|| notes.join("; "))
    }
}

/// Runs a recording to its end: duration, Ctrl-C, or every target gone.
pub async fn run(opts: RecordOptions, quiet: bool) -> Result<Profile, RecordError> {
    run_with(opts, Arc::new(Stderr { quiet })).await
}

/// [`run`], saying what it does through `reporter`.
pub async fn run_with(
    opts: RecordOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Profile, RecordError> {
    if opts.pids.is_empty() && !opts.all && opts.command.is_empty() {
        return Err(RecordError::NothingToProfile);
    }
    // Privileges first: without them nothing else can work, and that is the error to show.
    crate::sampler::check_privileges()?;
    for &pid in &opts.pids {
        if !alive(pid) {
            return Err(RecordError::NoProcess(pid));
        }
        if let Err(e) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            return Err(RecordError::NotAccessible { pid, error: e });
        }
    }
    let sampler = Sampler::start(&SamplerOptions {
        frequency_hz: opts.frequency_hz,
        all_processes: opts.all,
        follow_children: opts.subprocesses,
        threads: opts.threads,
        goroutines: opts.goroutines,
        goroutine_data: opts.goroutine_data,
        jitter: opts.jitter,
        drain_interval: opts.drain_interval,
    })?;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(dir) = &opts.window_dir {
        sinks.push(Box::new(DirSink::new(dir.clone())?));
    }
    let pipeline_opts = PipelineOptions {
        memory_limit: None,
        frequency_hz: opts.frequency_hz,
        window: opts.window,
        keep_total: opts.keep_total,
    };
    let capture = match &opts.capture {
        Some(path) => Some(SharedWriter::create(
            path,
            capture::Header::new(&pipeline_opts, opts.all),
        )?),
        None => None,
    };
    let mut pipeline = Pipeline::new(pipeline_opts, sinks);
    pipeline.set_reporter(reporter.clone());
    if let Some(c) = &capture {
        pipeline.set_capture(c.clone());
        pipeline
            .registry
            .set_source(Box::new(CapturingSource::new(LiveProcs, c.clone())));
    }
    let mut pids = opts.pids.clone();
    for &pid in &opts.pids {
        sampler
            .control()
            .add_target(pid, opts.subprocesses)
            .map_err(FilterError)?;
        if let Some(c) = &capture {
            c.write(&capture::Record::Target(pid));
        }
        pipeline.registry.snapshot(pid, 0);
    }
    let mut child = None;
    if !opts.command.is_empty() {
        let registry = &mut pipeline.registry;
        let (pid, handle) = spawn_held(&opts.command, |pid| {
            // Read while the child is held: its image before the exec is ours (a fork of this
            // process), and it has samples too (it waits in read(2) until released).
            if let Some(c) = &capture {
                c.write(&capture::Record::Target(pid));
            }
            registry.snapshot(pid, 0);
            sampler
                .control()
                .add_target(pid, opts.subprocesses)
                .map_err(FilterError)
        })?;
        pids.push(pid);
        child = Some((pid, handle));
    }
    {
        let what = if opts.all {
            "all processes".to_string()
        } else {
            format!("pid {pids:?}")
        };
        reporter.progress(&format!(
            "sampling {what} at {} Hz on {} CPUs{}",
            opts.frequency_hz,
            sampler.cpus.len(),
            match opts.duration {
                Some(d) => format!(" for {:.1}s", d.as_secs_f64()),
                None => ", Ctrl-C to stop".into(),
            }
        ));
    }
    let stopper = sampler.stopper();
    let all = opts.all;
    let mut work = tokio::task::spawn_blocking(move || {
        let mut control = UntilTargetsExit::new(all);
        let total = pipeline.run(&sampler, &mut control);
        (pipeline, sampler, total)
    });
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let sleep_until =
        deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1 << 40));
    let finished = tokio::select! {
        _ = &mut ctrl_c => None,
        _ = tokio::time::sleep_until(sleep_until), if deadline.is_some() => None,
        r = &mut work => Some(r),
    };
    let (mut pipeline, sampler, total) = match finished {
        Some(r) => r?,
        None => {
            stopper.stop();
            work.await?
        }
    };
    let total = total?;
    if let Some(c) = &capture {
        c.finish()?;
    }
    if let Some((pid, handle)) = child {
        if alive(pid) {
            // SAFETY: kill sends a signal to our own child; no memory is involved.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = handle.join();
    }
    let window =
        total.unwrap_or_else(|| crate::pipeline::window::Window::new(0, SystemTime::now()));
    let mut profile = pipeline.profile_of(&window);
    profile.start_time = window.start;
    profile.duration = window.duration;
    let stats = pipeline.stats.kernel_stats;
    if std::env::var_os("GPROF_BPF_DEBUG").is_some() {
        reporter.debug(&format!(
            "pipeline {:?} kernel {:?} registry {:?}",
            pipeline.stats, stats, pipeline.registry.counters
        ));
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
    let drops = &sampler.drops;
    lost.push((
        "samples dropped: the pipeline fell behind".into(),
        drops.samples.load(std::sync::atomic::Ordering::Relaxed),
    ));
    lost.push((
        "pprof label sets unreadable (sample kept without labels)".into(),
        drops
            .label_samples
            .load(std::sync::atomic::Ordering::Relaxed),
    ));
    lost.push((
        "user stacks truncated at 192 frames".into(),
        stats[Stat::TruncatedStacks as usize],
    ));
    lost.push((
        "user stacks cut at a caller outside any code mapping".into(),
        pipeline.cut_at_non_code(),
    ));
    lost.push((
        "user stack walks ended by a read fault".into(),
        stats[Stat::UserReadFault as usize],
    ));
    for (stat, what) in [
        (
            Stat::GoReadFault,
            "goroutine reads failed (sample kept without goroutine data)",
        ),
        (
            Stat::LabelsCut,
            "pprof label sets cut to 8 labels of 64 bytes",
        ),
        (
            Stat::LabelSetsLost,
            "pprof label sets not interned (sample kept without labels)",
        ),
    ] {
        lost.push((what.to_string(), stats[stat as usize]));
    }
    let mut notes = pipeline.take_notes();
    if !opts.keep_total {
        notes.push(format!(
            "wrote {} window profiles ({} samples) to {}",
            pipeline.stats.windows_written,
            pipeline.stats.samples,
            opts.window_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ));
    } else if profile.samples.is_empty() {
        notes.push(
            "no samples: the profiled processes did not run on a CPU during the recording \
             (idle or blocked; this is a CPU profiler)"
                .into(),
        );
    }
    let (agent_cpu, agent_max_rss) = own_usage();
    profile.stats = Some(RecordingStats {
        lost,
        agent_cpu,
        agent_max_rss,
        notes,
        kernel_samples: stats[Stat::Samples as usize],
    });
    // Detaching the programs waits for RCU grace periods (tens of ms per tracepoint link):
    // let that happen beside the report instead of before it.
    std::thread::spawn(move || sampler.join());
    Ok(profile)
}

/// CPU time (user + system) and peak RSS of this process.
pub fn own_usage() -> (Duration, u64) {
    // SAFETY: rusage is plain integers, for which all-zero is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to our own struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        ru.ru_maxrss as u64 * 1024,
    )
}

/// Spawns `command` held before exec; `register` runs with its pid before it may exec, so the
/// very first instruction of the new image is already profiled.
fn spawn_held(
    command: &[String],
    mut register: impl FnMut(u32) -> Result<(), FilterError>,
) -> Result<
    (
        u32,
        std::thread::JoinHandle<std::io::Result<std::process::ExitStatus>>,
    ),
    RecordError,
> {
    use std::os::unix::process::CommandExt as _;
    let mut go = [0i32; 2];
    let mut pid_pipe = [0i32; 2];
    // SAFETY: pipe() fills the arrays.
    if unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        || unsafe { libc::pipe2(pid_pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0
    {
        return Err(RecordError::Pipe(std::io::Error::last_os_error()));
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
        let err = handle.join().map_err(|_| RecordError::SpawnPanicked)?;
        return Err(RecordError::Start {
            name,
            detail: format!("{:?}", err.err()),
        });
    }
    let registered = register(pid as u32);
    // SAFETY: releasing the child.
    unsafe { libc::write(go_w, b"g".as_ptr() as *const libc::c_void, 1) };
    unsafe { libc::close(go_w) };
    unsafe { libc::close(go_r) };
    registered.map_err(RecordError::CommandFilter)?;
    Ok((pid as u32, handle))
}
