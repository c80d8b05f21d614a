//! The streaming core: sampler → ingest → window → symbolize → sinks.
//!
//! * [`crate::sampler`] (its own thread) drains the kernel into plain-data batches and
//!   forwards process events as they happen.
//! * [`Pipeline::run`] (one thread) takes them in order: events feed the
//!   [`Registry`](crate::process::registry::Registry) (an image is read the moment it is
//!   announced); each batch is ingested into the current [`Window`] as counts of
//!   symbol-independent stacks ([`stacks`]); at each window boundary the window is symbolized
//!   through the shared cache ([`crate::symbolize::symbolizer`]) into a complete profile
//!   ([`build`]) and handed to every [`Sink`](crate::sink::Sink).
//! * `record` is this pipeline with one window (or `--window` cuts) and the whole-run total
//!   kept for the report; the agent keeps no history.

pub mod budget;
pub mod build;
pub mod goprocs;
pub mod ingest;
pub mod stacks;
pub mod tap;
pub mod window;

use std::time::{Duration, Instant, SystemTime};

use profiler_ebpf::{Frame0Key, Frame0Rule, STAT_SLOTS};

use crate::process::registry::Registry;
use crate::profile::Profile;
use crate::sampler::{Sampler, SamplerError, SamplerMsg};
use crate::sink::{Series, SeriesProfile, Sink, SinkError};
use crate::symbolize::kallsyms::Kallsyms;
use crate::symbolize::symbolizer::{CacheStats, Symbolizer};
use stacks::StackTable;
use window::{TargetMeta, Window};

/// Which series a process's samples belong to (the agent: one per service); None leaves them
/// out of every profile. Without one, a window is one profile of the default series.
pub trait Splitter: Send {
    fn series(&mut self, target: &TargetMeta) -> Option<Series>;
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    #[error("sink {sink}: {error}")]
    Sink { sink: String, error: SinkError },
}

/// What the pipeline decides by itself, between batches.
pub trait Control {
    /// Called after every batch; returns a note and true to stop sampling.
    fn after_batch(&mut self, registry: &mut Registry, sampler: &Sampler) -> Option<String>;
}

/// What feeds the pipeline: the live sampler (with the kernel behind it), or a capture.
pub trait Feed {
    /// The next message, waiting at most `timeout`; None when nothing came.
    fn recv(&mut self, timeout: Duration) -> Option<SamplerMsg>;
    /// Frame-0 rules found by ingest, for the kernel.
    fn frame0_rules(&mut self, rules: &mut Vec<(Frame0Key, Frame0Rule)>);
    /// Processes forgotten by the registry, to drop from the kernel's filter.
    fn forget_targets(&mut self, pids: &[u32]);
    /// Where the goroutine of newly seen Go images is, for the kernel.
    fn go_procs(&mut self, _procs: &mut Vec<(u32, profiler_ebpf::GoProcInfo)>) {}
    /// Called after every batch that is not the last: a note when sampling is to stop.
    fn after_batch(&mut self, registry: &mut Registry) -> Option<String>;
    /// Whether to cut the window now; `due`: its interval has passed (a replay cuts where
    /// the recording did instead).
    fn window_due(&mut self, due: bool) -> bool;
}

/// The live feed: the sampler's channel, its kernel controls, and the caller's [`Control`];
/// with a capture, every message is recorded as it is received.
struct LiveFeed<'a> {
    sampler: &'a Sampler,
    control: &'a mut dyn Control,
    capture: Option<crate::capture::SharedWriter>,
    stopping: bool,
}

impl Feed for LiveFeed<'_> {
    fn recv(&mut self, timeout: Duration) -> Option<SamplerMsg> {
        let msg = self.sampler.recv_timeout(timeout)?;
        if let Some(c) = &self.capture {
            c.message(&msg);
        }
        Some(msg)
    }

    fn frame0_rules(&mut self, rules: &mut Vec<(Frame0Key, Frame0Rule)>) {
        if rules.is_empty() {
            return;
        }
        let mut kernel = self.sampler.control();
        for (key, rule) in rules.drain(..) {
            kernel.set_frame0_rule(key, rule);
        }
    }

    fn go_procs(&mut self, procs: &mut Vec<(u32, profiler_ebpf::GoProcInfo)>) {
        if procs.is_empty() {
            return;
        }
        let mut kernel = self.sampler.control();
        for (pid, info) in procs.drain(..) {
            kernel.set_go_proc(pid, info);
        }
    }

    fn forget_targets(&mut self, pids: &[u32]) {
        if pids.is_empty() {
            return;
        }
        let mut kernel = self.sampler.control();
        for &pid in pids {
            kernel.remove_target(pid);
        }
    }

    fn after_batch(&mut self, registry: &mut Registry) -> Option<String> {
        if self.stopping {
            return None;
        }
        let note = self.control.after_batch(registry, self.sampler)?;
        self.sampler.stop();
        self.stopping = true;
        Some(note)
    }

    fn window_due(&mut self, due: bool) -> bool {
        if due && let Some(c) = &self.capture {
            c.write(&crate::capture::Record::Cut);
        }
        due
    }
}

/// This process's resident set size (`/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(pages * page)
}

/// Never stops by itself (the caller stops the sampler).
pub struct RunUntilStopped;

impl Control for RunUntilStopped {
    fn after_batch(&mut self, _: &mut Registry, _: &Sampler) -> Option<String> {
        None
    }
}

pub struct PipelineOptions {
    /// Over this resident size at a window's end, the window is dropped (and counted) and the
    /// caches emptied instead of symbolizing it: the agent must not hurt its host.
    pub memory_limit: Option<u64>,
    pub frequency_hz: u64,
    /// Cut a window this often; None: one window for the whole run.
    pub window: Option<Duration>,
    /// Keep the sum of every window (a recording's report); an agent does not, and its stack
    /// table then starts over after every window.
    pub keep_total: bool,
}

/// Counters of a run, for the footer, metrics and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct PipelineStats {
    pub batches: u64,
    pub windows: u64,
    /// Windows handed to the sinks (empty windows are not).
    pub windows_written: u64,
    pub samples: u64,
    /// Count-map entries drained (entries per sample tells how well the kernel aggregated).
    pub entries: u64,
    /// What the entries would have been without the frame-0 words in the key: the part of
    /// the cardinality that is inherent (distinct PCs and stacks). Counted with GPROF_BPF_DEBUG.
    pub entries_without_frame0: u64,
    pub kernel_stats: [u64; STAT_SLOTS as usize],
    pub symbols: CacheStats,
    pub stacks: usize,
    /// Processes the registry tracks now.
    pub processes: usize,
    /// Windows not emitted because the process was over its memory limit.
    pub windows_shed: u64,
    /// The sampling rate in effect when a CPU budget is set (else 0), and how often the
    /// budget lowered it.
    pub rate_hz: u64,
    pub rate_lowered: u64,
}

pub struct Pipeline {
    pub registry: Registry,
    stacks: StackTable,
    ingest: ingest::Ingest,
    symbolizer: Symbolizer,
    kallsyms: Option<std::thread::JoinHandle<Option<Kallsyms>>>,
    sinks: Vec<Box<dyn Sink>>,
    splitter: Option<Box<dyn Splitter>>,
    budget: Option<budget::CpuBudget>,
    taps: tap::Taps,
    active_taps: Vec<tap::Active>,
    opts: PipelineOptions,
    window: Window,
    window_started: Instant,
    /// When the current window is due: advanced by the window length at every cut, so that
    /// windows average their configured length rather than drifting by a batch each time.
    window_due_at: Instant,
    /// When the last batch arrived, and the gap before it: a window is cut at the batch
    /// nearest its deadline (within half a gap), not at the first one after it, which with
    /// 1 s batches made every 1 s window 2 s long.
    last_batch: Option<Instant>,
    batch_gap: Duration,
    total: Option<Window>,
    notes: Vec<String>,
    /// Where progress and debug lines go.
    reporter: std::sync::Arc<dyn crate::reporter::Reporter>,
    /// Record every message received (`record --capture`).
    capture: Option<crate::capture::SharedWriter>,
    pub stats: PipelineStats,
    /// GPROF_BPF_DEBUG is set: one line of counters per window on stderr (benchmarks read it).
    debug: bool,
    /// A copy of `stats` after every batch, for readers on other threads (`/metrics`).
    shared_stats: Option<std::sync::Arc<std::sync::Mutex<PipelineStats>>>,
    /// Images already checked for goroutine data, by (pid, exec generation).
    go_checked: std::collections::HashSet<(u32, u32)>,
    /// Why images got no goroutine data, noted once per reason.
    go_noted: std::collections::HashSet<String>,
}

/// When the first window is due (far away without windows).
fn opts_window_or_max(opts: &PipelineOptions) -> Duration {
    opts.window.unwrap_or(Duration::from_secs(365 * 24 * 3600))
}

/// Images remembered as checked, at most (then the set starts over: a re-check is harmless).
const MAX_GO_CHECKED: usize = 1 << 16;

impl Pipeline {
    pub fn new(opts: PipelineOptions, sinks: Vec<Box<dyn Sink>>) -> Self {
        let now = SystemTime::now();
        let first_due = Instant::now() + opts_window_or_max(&opts);
        Pipeline {
            registry: Registry::default(),
            stacks: StackTable::default(),
            ingest: ingest::Ingest::default(),
            symbolizer: Symbolizer::default(),
            kallsyms: None,
            sinks,
            splitter: None,
            budget: None,
            taps: tap::Taps::default(),
            active_taps: Vec::new(),
            total: opts.keep_total.then(|| Window::new(0, now)),
            opts,
            window: Window::new(1, now),
            window_started: Instant::now(),
            window_due_at: first_due,
            last_batch: None,
            batch_gap: Duration::ZERO,
            notes: Vec::new(),
            capture: None,
            reporter: std::sync::Arc::new(crate::reporter::Stderr::default()),
            stats: PipelineStats::default(),
            debug: std::env::var_os("GPROF_BPF_DEBUG").is_some(),
            shared_stats: None,
            go_checked: Default::default(),
            go_noted: Default::default(),
        }
    }

    /// Checks images not seen before for goroutine data and tells the kernel about Go ones.
    fn check_go_images(&mut self, images: &[(u32, u32)], feed: &mut dyn Feed) {
        let mut found = Vec::new();
        for &(pid, generation) in images {
            if self.go_checked.len() >= MAX_GO_CHECKED {
                self.go_checked.clear();
            }
            if !self.go_checked.insert((pid, generation)) {
                continue;
            }
            let _ = self.registry.image(pid, generation);
            let Some(exe) = self.registry.main_object(pid, generation) else {
                continue;
            };
            match goprocs::go_proc_info(&exe, generation) {
                Ok(info) => found.push((pid, info)),
                Err(goprocs::GoProcError::NotGo) => {}
                Err(e) => {
                    let note = e.to_string();
                    if self.go_noted.insert(note.clone()) {
                        self.notes.push(note);
                    }
                }
            }
        }
        feed.go_procs(&mut found);
    }

    /// Records every message the sampler sends into `capture` (and the registry's reads,
    /// which the caller wraps with [`crate::capture::CapturingSource`]).
    pub fn set_capture(&mut self, capture: crate::capture::SharedWriter) {
        self.capture = Some(capture);
    }

    /// Publishes a copy of the counters after every batch.
    pub fn share_stats(&mut self) -> std::sync::Arc<std::sync::Mutex<PipelineStats>> {
        self.shared_stats
            .get_or_insert_with(Default::default)
            .clone()
    }

    /// Where other threads ask for taps (profiles of some processes over some seconds).
    pub fn taps(&self) -> tap::Taps {
        self.taps.clone()
    }

    /// Cuts each window into one profile per series.
    pub fn set_splitter(&mut self, splitter: Box<dyn Splitter>) {
        self.splitter = Some(splitter);
    }

    /// Checks the process's CPU use at every window's end and adjusts the sampling rate.
    pub fn set_cpu_budget(&mut self, budget: budget::CpuBudget) {
        self.stats.rate_hz = budget.rate_hz();
        self.budget = Some(budget);
    }

    /// Where progress and debug lines go (stderr by default).
    pub fn set_reporter(&mut self, reporter: std::sync::Arc<dyn crate::reporter::Reporter>) {
        self.reporter = reporter;
    }

    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Notes for the report: the pipeline's, then the registry's.
    pub fn take_notes(&mut self) -> Vec<String> {
        let mut notes = self.registry.take_notes();
        notes.splice(0..0, std::mem::take(&mut self.notes));
        notes
    }

    /// Runs until the sampler sends its last batch; returns the whole run (if kept).
    pub fn run(
        &mut self,
        sampler: &Sampler,
        control: &mut dyn Control,
    ) -> Result<Option<Window>, PipelineError> {
        let mut feed = LiveFeed {
            sampler,
            control,
            capture: self.capture.clone(),
            stopping: false,
        };
        self.run_feed(&mut feed)
    }

    /// Runs until the feed sends its last batch; returns the whole run (if kept).
    pub fn run_feed(&mut self, feed: &mut dyn Feed) -> Result<Option<Window>, PipelineError> {
        loop {
            let Some(msg) = feed.recv(Duration::from_millis(200)) else {
                continue;
            };
            match msg {
                SamplerMsg::Events(events) => {
                    self.registry.on_events(&events);
                    let images: Vec<(u32, u32)> = events
                        .iter()
                        .filter_map(|e| match e.kind {
                            profiler_ebpf::EVENT_EXEC => Some((e.tgid, e.value)),
                            profiler_ebpf::EVENT_FORK => Some((e.value, 0)),
                            _ => None,
                        })
                        .collect();
                    self.check_go_images(&images, feed);
                }
                SamplerMsg::Failed(e) => return Err(e.into()),
                SamplerMsg::Batch(batch) => {
                    let arrived = Instant::now();
                    if let Some(prev) = self.last_batch.replace(arrived) {
                        self.batch_gap = arrived - prev;
                    }
                    self.registry.begin_batch(batch.seq);
                    self.stats.batches += 1;
                    self.stats.entries += batch.counts.len() as u64;
                    if self.debug {
                        // A diagnostic for the benchmarks, not work for every batch.
                        let distinct: std::collections::HashSet<_> = batch
                            .counts
                            .iter()
                            .map(|(k, _)| profiler_ebpf::SampleKey {
                                frame0: [0; 2],
                                ..*k
                            })
                            .collect();
                        self.stats.entries_without_frame0 += distinct.len() as u64;
                    }
                    self.stats.samples += batch.counts.iter().map(|(_, v)| v.count).sum::<u64>();
                    self.stats.kernel_stats = batch.kernel_stats;
                    self.active_taps
                        .extend(self.taps.take_new().into_iter().map(tap::Active::new));
                    if self.active_taps.is_empty() {
                        self.ingest.batch(
                            &batch,
                            &mut self.registry,
                            &mut self.stacks,
                            &mut self.window,
                        );
                    } else {
                        // Through a window of its own, which the taps take their part of.
                        let mut w = Window::new(0, SystemTime::now());
                        self.ingest
                            .batch(&batch, &mut self.registry, &mut self.stacks, &mut w);
                        for t in &mut self.active_taps {
                            t.add(&w);
                        }
                        self.window.merge(&w);
                    }
                    if self.ingest.saw_kernel_frames
                        && self.kallsyms.is_none()
                        && !self.symbolizer.has_kallsyms()
                    {
                        // Read in the background (tens of ms) so the end is not kept waiting.
                        self.kallsyms = Some(std::thread::spawn(|| Kallsyms::load().ok()));
                    }
                    feed.frame0_rules(&mut self.ingest.new_rules);
                    let images: std::collections::HashSet<(u32, u32)> = batch
                        .counts
                        .iter()
                        .map(|(k, _)| (k.tgid, k.generation))
                        .filter(|i| !self.go_checked.contains(i))
                        .collect();
                    if !images.is_empty() {
                        let images: Vec<_> = images.into_iter().collect();
                        self.check_go_images(&images, feed);
                    }
                    let gone = self.registry.end_batch();
                    feed.forget_targets(&gone);
                    self.stats.processes = self.registry.len();
                    if let Some(s) = &self.shared_stats {
                        *s.lock().unwrap_or_else(|e| e.into_inner()) = self.stats.clone();
                    }
                    self.answer_taps(batch.last);
                    if batch.last {
                        self.cut()?;
                        for s in &mut self.sinks {
                            s.finish().map_err(|error| PipelineError::Sink {
                                sink: s.name().to_string(),
                                error,
                            })?;
                        }
                        return Ok(self.total.take());
                    }
                    let due = self.opts.window.is_some()
                        && arrived + self.batch_gap / 2 >= self.window_due_at;
                    if feed.window_due(due) {
                        self.cut()?;
                    }
                    if let Some(note) = feed.after_batch(&mut self.registry) {
                        self.notes.push(note);
                    }
                }
            }
        }
    }

    /// Ends the current window: symbolize, emit, add to the total, start the next.
    fn cut(&mut self) -> Result<(), PipelineError> {
        let next = Window::new(self.window.seq + 1, SystemTime::now());
        let mut window = std::mem::replace(&mut self.window, next);
        let now = Instant::now();
        window.duration = now - self.window_started;
        self.window_started = now;
        if let Some(w) = self.opts.window {
            self.window_due_at += w;
            if self.window_due_at <= now {
                // Fell behind (a slow window, a replay): start the schedule over.
                self.window_due_at = now + w;
            }
        }
        self.stats.windows += 1;
        if let Some(b) = &mut self.budget {
            if let Some(c) = b.check() {
                let verb = if c.to_hz < c.from_hz {
                    "over"
                } else {
                    "well under"
                };
                log::warn!(
                    "CPU use {:.2} % of a core is {verb} the budget of {:.2} %: sampling at {} Hz instead of {} Hz",
                    c.usage * 100.0,
                    c.limit * 100.0,
                    c.to_hz,
                    c.from_hz
                );
            }
            self.stats.rate_hz = b.rate_hz();
            self.stats.rate_lowered = b.lowered;
        }
        let rss = self.opts.memory_limit.and_then(|_| resident_bytes());
        if let (Some(limit), Some(rss)) = (self.opts.memory_limit, rss)
            && rss > limit
        {
            self.stats.windows_shed += 1;
            log::warn!(
                "resident memory {} MiB is over the limit of {} MiB: window {} dropped ({} samples), caches emptied",
                rss >> 20,
                limit >> 20,
                window.seq,
                window.total.count
            );
            self.symbolizer.clear_cache();
            if self.active_taps.is_empty() && self.total.is_none() {
                self.stacks.clear();
            }
            self.registry.objects.evict_unused();
            // SAFETY: malloc_trim only releases free heap pages; no pointer is involved.
            unsafe { libc::malloc_trim(0) };
        } else if !self.sinks.is_empty() && !window.is_empty() {
            self.stats.windows_written += 1;
            self.emit(&window)?;
        }
        match &mut self.total {
            Some(total) => {
                if total.batches == 0 {
                    total.start = window.start;
                }
                total.merge(&window);
            }
            // Nothing refers to the stacks once their window is emitted (and no tap is open).
            None if self.active_taps.is_empty() => {
                self.stacks.clear();
                // Give back what the window freed: glibc keeps freed memory in its arenas, and
                // a long run would otherwise hold its highest window forever (measured: 50 MiB
                // of heap at the peak, 178 MiB of anonymous RSS).
                // SAFETY: malloc_trim only releases free heap pages; no pointer is involved.
                unsafe { libc::malloc_trim(0) };
            }
            None => {}
        }
        self.stats.stacks = self.stacks.len();
        if self.debug {
            let s = self.symbolizer.stats();
            self.reporter.debug(&format!(
                "window {} samples {} entries {} processes {} files {} \
                 symbols hits {} misses {} entries {}/{}",
                window.seq,
                window.total.count,
                self.stats.entries,
                self.registry.len(),
                self.registry.objects.len(),
                s.hits,
                s.misses,
                s.entries,
                s.capacity
            ));
        }
        Ok(())
    }

    /// Answers the taps whose time is up (all of them when sampling ends).
    fn answer_taps(&mut self, all: bool) {
        let now = std::time::Instant::now();
        let (done, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active_taps)
            .into_iter()
            .partition(|t| all || now >= t.until);
        self.active_taps = open;
        for t in done {
            let mut profile = self.profile_of(&t.window);
            profile.start_time = t.window.start;
            profile.duration = t.elapsed();
            // The asker may have gone (a closed connection): nothing to do then.
            let _ = t.reply.send(profile);
        }
    }

    /// Hands a window to the sinks: one profile per series.
    fn emit(&mut self, window: &Window) -> Result<(), PipelineError> {
        let mut groups: std::collections::BTreeMap<Series, std::collections::HashSet<(u32, u32)>> =
            Default::default();
        for (&key, meta) in &window.targets {
            let series = match &mut self.splitter {
                Some(s) => s.series(meta),
                None => Some(Series::default()),
            };
            if let Some(series) = series {
                groups.entry(series).or_default().insert(key);
            }
        }
        for (series, targets) in &groups {
            let profile = self.profile_filtered(window, &|t: &window::SampleTarget| {
                targets.contains(&(t.pid, t.generation))
            });
            if profile.samples.is_empty() {
                continue;
            }
            let p = SeriesProfile {
                seq: window.seq,
                series,
                profile: &profile,
            };
            for s in &mut self.sinks {
                s.profile(&p).map_err(|error| PipelineError::Sink {
                    sink: s.name().to_string(),
                    error,
                })?;
            }
        }
        for s in &mut self.sinks {
            s.window_done(window.seq)
                .map_err(|error| PipelineError::Sink {
                    sink: s.name().to_string(),
                    error,
                })?;
        }
        Ok(())
    }

    /// Symbolizes a window (the current total, a cut window) into a profile.
    pub fn profile_of(&mut self, window: &Window) -> Profile {
        self.profile_filtered(window, &|_| true)
    }

    fn profile_filtered(&mut self, window: &Window, keep: build::TargetFilter<'_>) -> Profile {
        if let Some(h) = self.kallsyms.take() {
            self.symbolizer.set_kallsyms(h.join().ok().flatten());
        } else if self.ingest.saw_kernel_frames && self.opts.window.is_some() {
            // A long run: modules may have come and gone.
            self.symbolizer.refresh_kallsyms();
        }
        let p = build::profile(
            window,
            &self.stacks,
            &mut self.symbolizer,
            self.opts.frequency_hz,
            keep,
        );
        self.stats.symbols = self.symbolizer.stats();
        p
    }

    /// Samples whose user stack ended at a caller outside every executable mapping.
    pub fn cut_at_non_code(&self) -> u64 {
        self.ingest.cut_at_non_code
    }

    pub fn repair_stats(&self) -> crate::unwind::RepairStats {
        self.ingest.repair
    }
}
