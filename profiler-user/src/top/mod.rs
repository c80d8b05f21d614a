//! `gprof-bpf top --pid PID`: a live view of where a process spends its CPU, as py-spy top.
//!
//! The streaming pipeline runs on its own thread with short windows (`--interval`); a sink
//! reduces each window's profile to per-function times ([`model::WindowSummary`]) and sends
//! them to the view's thread, which folds them into [`model::Model`] (a decaying and a
//! cumulative aggregate) and shows it: interactively on a terminal ([`term::run`]), else as one
//! plain block per interval ([`term::run_plain`]). [`view`] is the text of both.

pub mod model;
pub mod term;
pub mod view;

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use profiler_ebpf::Stat;

use crate::pipeline::{Pipeline, PipelineOptions, PipelineStats};
use crate::record::{FilterError, RecordError, UntilTargetsExit, own_usage};
use crate::reporter::{Reporter, Stderr};
use crate::sampler::{Sampler, SamplerDrops, SamplerOptions};
use crate::sink::{SeriesProfile, Sink, SinkError};
use model::{Model, WindowSummary};
use view::Status;

/// What to show.
#[derive(Clone, Debug)]
pub struct TopOptions {
    pub pid: u32,
    pub frequency_hz: u64,
    /// How often the view refreshes (the pipeline's window).
    pub interval: Duration,
    pub subprocesses: bool,
    /// Group each function by the value of this sample label.
    pub by_tag: Option<String>,
    pub jitter: bool,
    /// Rows per block when stdout is not a terminal.
    pub plain_rows: usize,
}

impl Default for TopOptions {
    fn default() -> Self {
        TopOptions {
            pid: 0,
            frequency_hz: 99,
            interval: Duration::from_secs(1),
            subprocesses: false,
            by_tag: None,
            jitter: true,
            plain_rows: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error(transparent)]
    Start(#[from] RecordError),
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("profiling stopped: {0}")]
    Pipeline(String),
}

/// From the pipeline's thread to the view's.
enum Msg {
    Window(WindowSummary),
    /// The pipeline ended: its notes, or why it failed.
    Ended(Result<Vec<String>, String>),
}

/// Why the view ended.
#[derive(Debug)]
pub enum Ended {
    /// A quit key.
    Quit,
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// The pipeline stopped by itself (the target exited), with its notes.
    Target(Vec<String>),
    Failed(String),
}

/// The sink of the pipeline: each window's profile, reduced, to the view.
struct ViewSink {
    tx: mpsc::Sender<Msg>,
    by_tag: Option<String>,
}

impl Sink for ViewSink {
    fn name(&self) -> &str {
        "top"
    }

    fn profile(&mut self, p: &SeriesProfile<'_>) -> Result<(), SinkError> {
        // The view may have quit already: nothing to do then.
        let _ = self.tx.send(Msg::Window(WindowSummary::of(
            p.profile,
            self.by_tag.as_deref(),
        )));
        Ok(())
    }
}

/// The library's warnings while the terminal is ours: shown in the view, printed after it.
#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl Reporter for Collect {
    fn progress(&self, _: &str) {}
    fn warn(&self, msg: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg.to_string());
    }
    fn debug(&self, _: &str) {}
}

/// What the view's loop reads between frames: windows, the end of the pipeline, signals, and
/// the status line's numbers.
pub struct Feed {
    rx: mpsc::Receiver<Msg>,
    pub status: Status,
    stop: Arc<AtomicBool>,
    interval: Duration,
    last_window: Instant,
    next_status: Instant,
    usage: (Instant, Duration),
    stats: Arc<Mutex<PipelineStats>>,
    drops: Arc<SamplerDrops>,
    warnings: Arc<Collect>,
    /// Windows (real or idle) folded in so far.
    pub windows_seen: u64,
    /// Samples received since the start (a reset does not clear it).
    pub samples: u64,
}

impl Feed {
    /// Takes what arrived; `dirty` is set when the view changed. Some when the view must end.
    pub fn poll(&mut self, model: &mut Model, dirty: &mut bool) -> Option<Ended> {
        if self.stop.load(Ordering::Relaxed) {
            return Some(Ended::Signal);
        }
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Window(w)) => {
                    self.samples += w.samples;
                    model.add(w);
                    self.last_window = Instant::now();
                    self.windows_seen += 1;
                    *dirty = true;
                }
                Ok(Msg::Ended(Ok(notes))) => return Some(Ended::Target(notes)),
                Ok(Msg::Ended(Err(e))) => return Some(Ended::Failed(e)),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Some(Ended::Failed("the pipeline thread ended".into()));
                }
            }
        }
        // The pipeline emits no empty window: an interval without one was idle.
        if self.last_window.elapsed() > self.interval + self.interval / 2 {
            model.idle(self.interval);
            self.last_window += self.interval;
            self.windows_seen += 1;
            *dirty = true;
        }
        let now = Instant::now();
        if now >= self.next_status {
            self.next_status = now + self.interval;
            let (cpu, _) = own_usage();
            let (then, cpu_then) = self.usage;
            let wall = now.duration_since(then).as_secs_f64();
            if wall > 0.0 {
                self.status.cpu_pct = 100.0 * cpu.saturating_sub(cpu_then).as_secs_f64() / wall;
            }
            self.usage = (now, cpu);
            let kernel = self
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .kernel_stats;
            self.status.lost = kernel[Stat::LostCountMapFull as usize]
                + self.drops.samples.load(Ordering::Relaxed);
            if let Some(w) = self
                .warnings
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last()
            {
                self.status.message = Some(format!("warning: {w}"));
            }
            *dirty = true;
        }
        None
    }
}

/// The executable of `pid` and its Go version (None when it is not Go or unreadable).
fn target_info(pid: u32) -> (String, Option<String>) {
    let exe_link = format!("/proc/{pid}/exe");
    let exe = std::fs::read_link(&exe_link)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let version = (|| {
        let file = std::fs::File::open(&exe_link).ok()?;
        if file.metadata().ok()?.len() > 1 << 30 {
            return None;
        }
        // SAFETY: a read-only private mapping of the target's executable, read once here;
        // the build info reader never panics on any bytes (a file rewritten under us only
        // gives a wrong or no version).
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        crate::symbolize::buildinfo::read(&map).ok()?.go_version
    })();
    (exe, version)
}

/// Sets `stop` on SIGINT, SIGTERM and SIGHUP (from a thread of its own; returns once the
/// handlers are in place).
fn watch_signals(stop: Arc<AtomicBool>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("gprof-top-signals".into())
        .spawn(move || {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                let _ = ready_tx.send(());
                return;
            };
            rt.block_on(async move {
                let (int, term, hup) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                );
                let _ = ready_tx.send(());
                let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (int, term, hup) else {
                    return;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                stop.store(true, Ordering::Relaxed);
            });
        });
    if spawned.is_ok() {
        let _ = ready_rx.recv_timeout(Duration::from_secs(2));
    }
}

/// Runs the live view until a quit key, a signal, or the target's exit; prints a final line.
pub fn run(opts: TopOptions) -> Result<(), TopError> {
    crate::sampler::check_privileges().map_err(RecordError::from)?;
    let pid = opts.pid;
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(RecordError::NoProcess(pid).into());
    }
    if let Err(error) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        return Err(RecordError::NotAccessible { pid, error }.into());
    }
    let tty = std::io::stdout().is_terminal();
    let (exe, go_version) = target_info(pid);
    let sampler = Sampler::start(&SamplerOptions {
        frequency_hz: opts.frequency_hz,
        all_processes: false,
        follow_children: opts.subprocesses,
        threads: false,
        goroutines: false,
        goroutine_data: true,
        jitter: opts.jitter,
        // Several drains per window, so a window is cut close to its interval.
        drain_interval: (opts.interval / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1)),
    })
    .map_err(RecordError::from)?;
    let (tx, rx) = mpsc::channel();
    let sink = ViewSink {
        tx: tx.clone(),
        by_tag: opts.by_tag.clone(),
    };
    let mut pipeline = Pipeline::new(
        PipelineOptions {
            memory_limit: None,
            frequency_hz: opts.frequency_hz,
            window: Some(opts.interval),
            keep_total: false,
        },
        vec![Box::new(sink)],
    );
    let warnings = Arc::new(Collect::default());
    if tty {
        pipeline.set_reporter(warnings.clone());
    } else {
        pipeline.set_reporter(Arc::new(Stderr { quiet: true }));
    }
    let stats = pipeline.share_stats();
    sampler
        .control()
        .add_target(pid, opts.subprocesses)
        .map_err(|e| RecordError::from(FilterError(e)))?;
    pipeline.registry.snapshot(pid, 0);
    let stopper = sampler.stopper();
    let drops = sampler.drops.clone();
    let worker = std::thread::Builder::new()
        .name("gprof-pipeline".into())
        .spawn(move || {
            let mut control = UntilTargetsExit::new(false);
            let result = pipeline.run(&sampler, &mut control);
            let notes = pipeline.take_notes();
            let _ = tx.send(Msg::Ended(result.map(|_| notes).map_err(|e| e.to_string())));
            sampler
        })?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());
    let now = Instant::now();
    let mut feed = Feed {
        rx,
        status: Status {
            pid,
            exe,
            go_version,
            frequency_hz: opts.frequency_hz,
            interval: opts.interval,
            by_tag: opts.by_tag.clone(),
            subprocesses: opts.subprocesses,
            ..Default::default()
        },
        stop,
        interval: opts.interval,
        last_window: now,
        next_status: now,
        usage: (now, own_usage().0),
        stats,
        drops,
        warnings: warnings.clone(),
        windows_seen: 0,
        samples: 0,
    };
    let mut model = Model::new((opts.interval * 3).max(Duration::from_secs(3)));
    let started = Instant::now();
    let ended = if tty {
        // The library's log lines would scribble over the view.
        let level = log::max_level();
        log::set_max_level(log::LevelFilter::Off);
        let ended = term::run(&mut feed, &mut model);
        log::set_max_level(level);
        ended
    } else {
        eprintln!(
            "gprof-bpf: top: sampling pid {pid} at {} Hz, a block every {}",
            opts.frequency_hz,
            humantime::format_duration(opts.interval)
        );
        term::run_plain(&mut feed, &mut model, opts.plain_rows)
    };
    stopper.stop();
    let sampler = worker.join().ok();
    for w in warnings.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        eprintln!("gprof-bpf: warning: {w}");
    }
    let summary = format!(
        "{} samples in {:.1}s",
        feed.samples,
        started.elapsed().as_secs_f64()
    );
    let result = match ended {
        Ok(Ended::Quit) | Ok(Ended::Signal) => {
            println!("gprof-bpf top: stopped; pid {pid}: {summary}");
            Ok(())
        }
        Ok(Ended::Target(notes)) => {
            let why = if notes.is_empty() {
                "sampling ended".to_string()
            } else {
                notes.join("; ")
            };
            println!("gprof-bpf top: pid {pid} exited ({why}); {summary}");
            Ok(())
        }
        Ok(Ended::Failed(e)) => Err(TopError::Pipeline(e)),
        Err(e) => Err(TopError::Terminal(e)),
    };
    // Detaching waits for RCU grace periods: after the final line, not before it.
    if let Some(s) = sampler {
        s.join();
    }
    result
}
