//! Stage 1, the sampler: kernel I/O only, on its own OS thread.
//!
//! It loads and attaches the eBPF programs, forwards fork/exec/exit events the moment the
//! kernel sends them (so a new image is read while it runs), drains the in-kernel aggregates
//! every drain interval into plain-data [`Batch`]es, and jitters the sampling period. Both go
//! to the pipeline over one bounded channel; when the pipeline falls behind, a batch is
//! dropped and counted rather than the kernel maps left to overflow.

pub mod btf;
mod kernel;
pub mod labels;
mod sys;

use std::collections::HashMap;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use profiler_ebpf::{ProcessEvent, STAT_SLOTS, SampleKey, SampleValue};

pub use kernel::{
    KernelControl, MapSizes, check_privileges, missing_agent_capabilities, period_ns,
};

#[derive(Clone, Debug)]
pub struct SamplerOptions {
    pub frequency_hz: u64,
    /// Sample every process, not only the filter's.
    pub all_processes: bool,
    /// Add children of followed processes to the filter (attaches the fork tracepoint, whose
    /// detach costs an RCU grace period at the end, so only when asked for).
    pub follow_children: bool,
    /// The thread id is part of every key (`--threads`).
    pub threads: bool,
    /// The goroutine id is part of every key of a Go process (`--goroutines`).
    pub goroutines: bool,
    /// Read the goroutine of every sample of a Go process in the kernel (its pprof labels,
    /// and its id with `goroutines`); off (`--no-labels`): no reads beyond the stack.
    pub goroutine_data: bool,
    /// Vary the period randomly around 1/frequency so that sampling cannot lock onto
    /// periodic work (the mean rate stays the frequency).
    pub jitter: bool,
    /// How often the kernel maps are drained.
    pub drain_interval: Duration,
}

/// Why sampling could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("missing capabilities {0} (run as root: sudo gprof-bpf ...)")]
    Privileges(String),
    #[error("{0}")]
    Setup(String),
    #[error("draining the kernel maps: {0}")]
    Drain(String),
}

/// One drained map set: plain data, no kernel handles.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// 1, 2, ... in drain order.
    pub seq: u64,
    pub counts: Vec<(SampleKey, SampleValue)>,
    /// User stacks by hash: frames (innermost first) and whether the walk was truncated.
    pub user_stacks: HashMap<u64, (Vec<u64>, bool)>,
    /// Kernel stacks by id, innermost first.
    pub kernel_stacks: HashMap<i32, Vec<u64>>,
    /// The label sets the samples name (`SampleKey::label_set`), decoded.
    pub label_sets: labels::LabelSets,
    /// The kernel's counters (summed over CPUs, since the start) when this batch was drained.
    pub kernel_stats: [u64; STAT_SLOTS as usize],
    /// The last batch: sampling has stopped.
    pub last: bool,
}

/// What the sampler thread sends, in the order it happened.
// A few per drain interval through a channel of 16: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SamplerMsg {
    Events(Vec<ProcessEvent>),
    Batch(Batch),
    /// The sampler thread failed; no more messages follow.
    Failed(SamplerError),
}

/// What the sampler itself dropped because the pipeline fell behind.
#[derive(Debug, Default)]
pub struct SamplerDrops {
    pub batches: AtomicU64,
    pub samples: AtomicU64,
    pub events: AtomicU64,
    /// Samples kept without their pprof labels: the label set could not be read or decoded.
    pub label_samples: AtomicU64,
}

/// The running sampler: the receiving end of its channel and the controls.
pub struct Sampler {
    control: Arc<Mutex<KernelControl>>,
    rx: Receiver<SamplerMsg>,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub drops: Arc<SamplerDrops>,
    pub cpus: Vec<u32>,
    pub sizes: MapSizes,
    rate: Arc<AtomicU64>,
}

/// Batches in flight between the sampler and the pipeline: a few drain intervals.
const CHANNEL_CAPACITY: usize = 16;

impl Sampler {
    /// Loads the programs, starts sampling on every online CPU and the sampler thread.
    pub fn start(opts: &SamplerOptions) -> Result<Self, SamplerError> {
        let (kernel, control) = kernel::Kernel::start(opts)?;
        let control = Arc::new(Mutex::new(control));
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        // SAFETY: eventfd takes no pointers and returns a new fd or -1.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(SamplerError::Setup(format!(
                "eventfd: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: the fd was just created and is owned by nobody else.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(wake) });
        let drops = Arc::new(SamplerDrops::default());
        let cpus = kernel.cpus.clone();
        let sizes = kernel.sizes;
        let rate = Arc::new(AtomicU64::new(opts.frequency_hz));
        let worker = Worker {
            rate: rate.clone(),
            applied_hz: opts.frequency_hz,
            kernel,
            control: control.clone(),
            tx,
            stop: stop.clone(),
            wake: wake.clone(),
            drops: drops.clone(),
            opts: opts.clone(),
            seq: 0,
        };
        let thread = std::thread::Builder::new()
            .name("gprof-sampler".into())
            .spawn(move || worker.run())
            .map_err(|e| SamplerError::Setup(format!("starting the sampler thread: {e}")))?;
        Ok(Sampler {
            control,
            rx,
            stop,
            wake,
            thread: Some(thread),
            drops,
            cpus,
            sizes,
            rate,
        })
    }

    /// The sampling rate in Hz, shared with the sampler thread: storing a new rate changes
    /// the period within one jitter or drain interval (the CPU budget lowers it). Samples
    /// stay weighted by measured time, so CPU time adds up at any rate.
    pub fn rate_handle(&self) -> Arc<AtomicU64> {
        self.rate.clone()
    }

    /// The filter, the frame-0 rules: shared with the sampler thread.
    pub fn control(&self) -> MutexGuard<'_, KernelControl> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle to the controls that other threads can keep.
    pub fn control_handle(&self) -> Arc<Mutex<KernelControl>> {
        self.control.clone()
    }

    /// The next message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<SamplerMsg> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Stops sampling: the thread disables the events, drains both map sets into a last
    /// batch (every sample the kernel counted is in a batch), and exits.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        wake(&self.wake);
    }

    /// Something another thread can keep to stop the sampler.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stop: self.stop.clone(),
            wake: self.wake.clone(),
        }
    }

    /// Waits for the thread to end (after [`Sampler::stop`] and the last batch).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Stops a sampler from another thread (Ctrl-C, a deadline).
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
}

impl Stopper {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        wake(&self.wake);
    }
}

fn wake(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to our eventfd.
    unsafe { libc::write(fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
}

struct Worker {
    kernel: kernel::Kernel,
    control: Arc<Mutex<KernelControl>>,
    tx: SyncSender<SamplerMsg>,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    drops: Arc<SamplerDrops>,
    opts: SamplerOptions,
    seq: u64,
    /// The rate to sample at ([`Sampler::rate_handle`]) and the one in effect.
    rate: Arc<AtomicU64>,
    applied_hz: u64,
}

/// How often the period is re-drawn when jittering: often enough that no run of samples is
/// long enough to lock onto a period (re-drawn every 50 periods instead, the aliasing test
/// missed by 3.2 points). PERF_EVENT_IOC_PERIOD restarts the timer with a full new period, so
/// the elapsed part of the current one is never sampled; no CPU time is lost for it, because
/// the kernel weighs each sample by the measured time since the previous firing on its CPU,
/// which carries that part. Sample *counts* still miss it: with thinning (k× faster timer,
/// `kernel::thinning`) half a timer period per re-draw, ~2 % at 99 Hz (~10 % without).
const JITTER_EVERY: Duration = Duration::from_millis(50);
/// The rate is drawn uniformly from frequency × [1 - J, 1 + J]: its mean is the frequency.
/// Against work locked to the period, consecutive samples move by (period − round) in the
/// round: with J = 0.2 that is at most a fifth of it, so the ~5 samples of one draw land
/// near one phase and a 15 s run of 6/3/1 ms rounds was off by 5 points
/// (tests/tests/fidelity_aliasing.rs); with J = 0.5 each step can cover the whole round.
const JITTER_SPREAD: f64 = 0.5;

impl Worker {
    fn run(mut self) {
        if let Err(e) = self.sample() {
            let _ = self.tx.send(SamplerMsg::Failed(e));
        }
        // Detaching the programs waits for RCU grace periods (tens of ms per tracepoint
        // link); the pipeline already has the last batch.
    }

    fn sample(&mut self) -> Result<(), SamplerError> {
        let mut next_drain = Instant::now() + self.opts.drain_interval;
        let mut next_jitter = Instant::now() + JITTER_EVERY;
        let mut rng = fastrand::Rng::new();
        let mut events = Vec::new();
        loop {
            let now = Instant::now();
            let until = if self.opts.jitter {
                next_drain.min(next_jitter)
            } else {
                next_drain
            };
            self.wait(until.saturating_duration_since(now));
            self.forward_events(&mut events);
            if self.stop.load(Ordering::SeqCst) {
                return self.finish();
            }
            let now = Instant::now();
            if now >= next_drain {
                next_drain += self.opts.drain_interval;
                if next_drain < now {
                    next_drain = now + self.opts.drain_interval;
                }
                let batch = self.drain()?;
                self.send_batch(batch);
            }
            let wanted = self.rate.load(Ordering::Relaxed).max(1);
            if self.opts.jitter && now >= next_jitter {
                next_jitter = now + JITTER_EVERY;
                let f = wanted as f64;
                let rate = f * (1.0 - JITTER_SPREAD + 2.0 * JITTER_SPREAD * rng.f64());
                let period = (1e9 / rate) as u64;
                let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
                self.kernel.set_period(&mut control, period);
            } else if !self.opts.jitter && wanted != self.applied_hz {
                let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
                self.kernel.set_period(&mut control, period_ns(wanted));
            }
            self.applied_hz = wanted;
        }
    }

    /// Sleeps until `timeout` passes, an event arrives, or the pipeline asks to stop.
    fn wait(&self, timeout: Duration) {
        let mut fds = [
            libc::pollfd {
                fd: self.kernel.events.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Rounded up: rounded down, the last fraction of a millisecond before each deadline
        // (20 jitter draws and a drain a second) was a poll(0) spin, 1.8 % of a core of an
        // agent that had nothing else to do.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: poll reads and writes the two pollfd structs of the live array.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    }

    fn forward_events(&mut self, events: &mut Vec<ProcessEvent>) {
        self.kernel.events(events);
        if events.is_empty() {
            return;
        }
        let n = events.len() as u64;
        match self.tx.try_send(SamplerMsg::Events(std::mem::take(events))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.drops.events.fetch_add(n, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => self.stop.store(true, Ordering::SeqCst),
        }
    }

    fn drain(&mut self) -> Result<Batch, SamplerError> {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = self.kernel.drain(&mut control)?;
        drop(control);
        self.drops
            .label_samples
            .store(self.kernel.label_errors, Ordering::Relaxed);
        self.seq += 1;
        batch.seq = self.seq;
        Ok(batch)
    }

    fn send_batch(&mut self, batch: Batch) {
        let samples: u64 = batch.counts.iter().map(|(_, v)| v.count).sum();
        match self.tx.try_send(SamplerMsg::Batch(batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.drops.batches.fetch_add(1, Ordering::Relaxed);
                self.drops.samples.fetch_add(samples, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => self.stop.store(true, Ordering::SeqCst),
        }
    }

    /// Stops the events, then drains both map sets: nothing the kernel counted is left out.
    fn finish(&mut self) -> Result<(), SamplerError> {
        self.kernel.disable();
        let mut events = Vec::new();
        self.kernel.events(&mut events);
        if !events.is_empty() {
            let _ = self.tx.send(SamplerMsg::Events(events));
        }
        let first = self.drain()?;
        let _ = self.tx.send(SamplerMsg::Batch(first));
        let mut second = self.drain()?;
        second.last = true;
        let _ = self.tx.send(SamplerMsg::Batch(second));
        Ok(())
    }
}
