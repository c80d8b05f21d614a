//! Delivery for network sinks: a bounded queue (profiles and bytes) that drops the oldest
//! when full, and one sender thread per sink that retries with jittered exponential backoff.
//!
//! Rules (the ones Pyroscope's and OTLP's clients follow): retry on transport errors, 408,
//! 429 and 5xx, honouring `Retry-After`; never retry any other 4xx (dropped, counted by
//! reason, logged once per reason with the server's message). A profile older than
//! `max_age` is dropped (backends reject old data). `finish` stops taking profiles and
//! delivers what is queued until its deadline; what is left then is dropped and counted.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Series, SeriesProfile, Sink, SinkError};

/// One encoded profile waiting to be sent.
#[derive(Clone, Debug)]
pub struct Payload {
    pub seq: u64,
    pub series: Series,
    /// The gzipped pprof.
    pub pprof: Vec<u8>,
    pub start: SystemTime,
    pub duration: Duration,
    /// CPU time the profile stands for.
    pub weight_ns: u64,
    pub queued: Instant,
}

/// What one attempt at sending came to.
#[derive(Debug)]
pub enum Outcome {
    Sent,
    /// Try again: after `after` if the server said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Never retried: the server refused this profile.
    Reject {
        reason: String,
        message: String,
    },
}

impl Outcome {
    /// The outcome of an HTTP status (`retry_after` from the response headers).
    pub fn of_status(status: u16, retry_after: Option<Duration>, message: String) -> Outcome {
        match status {
            200..=299 => Outcome::Sent,
            408 | 429 | 500..=599 => Outcome::Retry {
                reason: format!("http_{status}"),
                after: retry_after,
            },
            _ => Outcome::Reject {
                reason: format!("http_{status}"),
                message,
            },
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = humantime::parse_rfc3339_weak(v)
        .ok()
        .or_else(|| httpdate(v))?;
    Some(t.duration_since(SystemTime::now()).unwrap_or_default())
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn httpdate(v: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? + 1;
    humantime::parse_rfc3339(&format!("{year}-{m:02}-{day:0>2}T{time}Z")).ok()
}

/// A sink's transport: one attempt at delivering one payload.
pub trait Transport: Send + 'static {
    fn send(&mut self, p: &Payload) -> Outcome;
}

#[derive(Clone, Copy, Debug)]
pub struct QueueOptions {
    pub max_profiles: usize,
    pub max_bytes: usize,
    /// First backoff; doubled per failure up to `max_backoff`, with full jitter.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Profiles older than this are dropped instead of sent.
    pub max_age: Duration,
    /// How long `finish` keeps delivering.
    pub flush_deadline: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_profiles: 1000,
            max_bytes: 64 << 20,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            max_age: Duration::from_secs(3600),
            flush_deadline: Duration::from_secs(10),
        }
    }
}

/// A sink's counters (read by `/metrics` while the sink runs).
#[derive(Debug, Default)]
pub struct SinkStats {
    pub sent_profiles: AtomicU64,
    pub sent_bytes: AtomicU64,
    /// CPU time delivered, in ns (the conservation check of the tests).
    pub sent_weight_ns: AtomicU64,
    pub retries: AtomicU64,
    pub queued_profiles: AtomicU64,
    pub queued_bytes: AtomicU64,
    /// Sum of the time from queueing to delivery, ns, and how many were summed.
    pub latency_ns: AtomicU64,
    /// Dropped profiles (and their CPU time) by reason.
    pub dropped: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl SinkStats {
    fn drop_one(&self, reason: &str, p: &Payload) {
        let mut d = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        let e = d.entry(reason.to_string()).or_default();
        e.0 += 1;
        e.1 += p.weight_ns;
    }

    /// Profiles dropped, over all reasons.
    pub fn dropped_profiles(&self) -> u64 {
        let d = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        d.values().map(|v| v.0).sum()
    }
}

struct State {
    items: VecDeque<Payload>,
    bytes: usize,
    closed: bool,
    /// When `finish` gives up.
    deadline: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    opts: QueueOptions,
    stats: Arc<SinkStats>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, s: &State) {
        self.stats
            .queued_profiles
            .store(s.items.len() as u64, Ordering::Relaxed);
        self.stats
            .queued_bytes
            .store(s.bytes as u64, Ordering::Relaxed);
    }
}

/// The queue and its sender thread.
pub struct Delivery {
    name: String,
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Delivery {
    pub fn start(name: &str, opts: QueueOptions, transport: Box<dyn Transport>) -> Delivery {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
                deadline: None,
            }),
            cv: Condvar::new(),
            opts,
            stats: Arc::new(SinkStats::default()),
        });
        let s = shared.clone();
        let sink = name.to_string();
        let worker = std::thread::Builder::new()
            .name(format!("gprof-sink-{name}"))
            .spawn(move || send_loop(&sink, &s, transport))
            .expect("spawning a sink thread");
        Delivery {
            name: name.to_string(),
            shared,
            worker: Some(worker),
        }
    }

    pub fn stats(&self) -> Arc<SinkStats> {
        self.shared.stats.clone()
    }

    /// Queues a payload; drops the oldest ones while the queue is over a bound.
    pub fn push(&self, p: Payload) {
        let mut s = self.shared.lock();
        if s.closed {
            self.shared.stats.drop_one("closed", &p);
            return;
        }
        s.bytes += p.pprof.len();
        s.items.push_back(p);
        let o = &self.shared.opts;
        while s.items.len() > 1 && (s.items.len() > o.max_profiles || s.bytes > o.max_bytes) {
            let old = s.items.pop_front().expect("non-empty");
            s.bytes -= old.pprof.len();
            self.shared.stats.drop_one("queue_full", &old);
        }
        self.shared.publish(&s);
        self.shared.cv.notify_all();
    }

    /// Stops taking payloads, delivers the queue until the deadline, and waits for the
    /// sender; returns how many were left undelivered.
    pub fn finish(&mut self) -> u64 {
        {
            let mut s = self.shared.lock();
            s.closed = true;
            s.deadline = Some(Instant::now() + self.shared.opts.flush_deadline);
            self.shared.cv.notify_all();
        }
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        let mut s = self.shared.lock();
        let left = s.items.len() as u64;
        for p in std::mem::take(&mut s.items) {
            self.shared.stats.drop_one("shutdown", &p);
        }
        s.bytes = 0;
        self.shared.publish(&s);
        if left > 0 {
            log::warn!(
                "sink {}: {left} profiles undelivered at shutdown",
                self.name
            );
        }
        left
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.finish();
        }
    }
}

/// How a network sink turns one series' profile into payloads (one, or several within a
/// backend's limits).
pub type Encode = fn(&SeriesProfile<'_>) -> Result<Vec<Payload>, SinkError>;

/// A network sink: encodes on the pipeline's thread, delivers on its own.
pub struct NetworkSink {
    name: String,
    delivery: Delivery,
    encode: Encode,
}

impl NetworkSink {
    pub fn new(
        name: &str,
        queue: QueueOptions,
        transport: Box<dyn Transport>,
        encode: Encode,
    ) -> NetworkSink {
        NetworkSink {
            name: name.to_string(),
            delivery: Delivery::start(name, queue, transport),
            encode,
        }
    }

    pub fn stats(&self) -> Arc<SinkStats> {
        self.delivery.stats()
    }
}

impl Sink for NetworkSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn profile(&mut self, p: &SeriesProfile<'_>) -> Result<(), SinkError> {
        for payload in (self.encode)(p)? {
            self.delivery.push(payload);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.delivery.finish();
        Ok(())
    }
}

/// Sleeps `d` unless the queue is closed with a deadline that comes first; false when the
/// deadline passed.
fn pause(shared: &Shared, d: Duration) -> bool {
    let until = Instant::now() + d;
    let mut s = shared.lock();
    loop {
        let now = Instant::now();
        if let Some(deadline) = s.deadline
            && now >= deadline
        {
            return false;
        }
        if now >= until {
            return true;
        }
        let wake = s.deadline.map_or(until, |dl| dl.min(until));
        s = shared
            .cv
            .wait_timeout(s, wake.saturating_duration_since(now))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn send_loop(name: &str, shared: &Shared, mut transport: Box<dyn Transport>) {
    let o = shared.opts;
    let mut failures = 0u32;
    let mut logged: HashSet<String> = HashSet::new();
    loop {
        // The oldest payload, left in the queue while it is being sent (a full queue drops
        // it, which is then counted once, as queue_full).
        let p = {
            let mut s = shared.lock();
            loop {
                if let Some(deadline) = s.deadline
                    && (Instant::now() >= deadline || s.items.is_empty())
                {
                    return;
                }
                if let Some(p) = s.items.front() {
                    break p.clone();
                }
                s = shared.cv.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        };
        let age = SystemTime::now()
            .duration_since(p.start + p.duration)
            .unwrap_or_default();
        let outcome = if age > o.max_age {
            Outcome::Reject {
                reason: "expired".into(),
                message: format!("older than {}", humantime::format_duration(o.max_age)),
            }
        } else {
            transport.send(&p)
        };
        let take = |shared: &Shared| {
            let mut s = shared.lock();
            // Still the front unless the queue dropped it meanwhile.
            if s.items
                .front()
                .is_some_and(|f| f.queued == p.queued && f.seq == p.seq)
            {
                let p = s.items.pop_front().expect("front");
                s.bytes -= p.pprof.len();
            }
            shared.publish(&s);
        };
        match outcome {
            Outcome::Sent => {
                take(shared);
                failures = 0;
                let st = &shared.stats;
                st.sent_profiles.fetch_add(1, Ordering::Relaxed);
                st.sent_bytes
                    .fetch_add(p.pprof.len() as u64, Ordering::Relaxed);
                st.sent_weight_ns.fetch_add(p.weight_ns, Ordering::Relaxed);
                st.latency_ns
                    .fetch_add(p.queued.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            Outcome::Reject { reason, message } => {
                take(shared);
                shared.stats.drop_one(&reason, &p);
                if logged.insert(reason.clone()) {
                    log::warn!(
                        "sink {name}: {} dropped ({reason}, not retried): {message}",
                        p.series.display()
                    );
                }
            }
            Outcome::Retry { reason, after } => {
                shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                failures = failures.saturating_add(1);
                let exp = o
                    .min_backoff
                    .saturating_mul(1 << failures.min(20).saturating_sub(1))
                    .min(o.max_backoff);
                // Full jitter, so that hosts that failed together do not retry together.
                let jittered = exp.mul_f64(0.5 + 0.5 * fastrand::f64());
                let wait = after.map_or(jittered, |a| a.min(o.max_backoff));
                if failures == 1 || logged.insert(format!("retry {reason}")) {
                    log::info!(
                        "sink {name}: {reason}, retrying in {}",
                        humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
                    );
                }
                if !pause(shared, wait) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Script(Arc<Mutex<Vec<Outcome>>>, Arc<Mutex<Vec<(u64, Instant)>>>);

    impl Transport for Script {
        fn send(&mut self, p: &Payload) -> Outcome {
            self.1.lock().unwrap().push((p.seq, Instant::now()));
            let mut o = self.0.lock().unwrap();
            if o.is_empty() {
                Outcome::Sent
            } else {
                o.remove(0)
            }
        }
    }

    fn payload(seq: u64, bytes: usize) -> Payload {
        Payload {
            seq,
            series: Series::default(),
            pprof: vec![0; bytes],
            start: SystemTime::now(),
            duration: Duration::from_secs(1),
            weight_ns: 10,
            queued: Instant::now(),
        }
    }

    fn opts() -> QueueOptions {
        QueueOptions {
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..Default::default()
        }
    }

    #[test]
    fn retries_honour_retry_after_and_rejects_are_not_retried() {
        let outcomes = Arc::new(Mutex::new(vec![
            Outcome::of_status(429, Some(Duration::from_millis(300)), String::new()),
            Outcome::of_status(503, None, String::new()),
            Outcome::Sent,
            Outcome::of_status(413, None, "too big".into()),
        ]));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut d = Delivery::start("t", opts(), Box::new(Script(outcomes, calls.clone())));
        let stats = d.stats();
        d.push(payload(1, 10));
        d.push(payload(2, 10));
        d.finish();
        let calls = calls.lock().unwrap();
        let seqs: Vec<u64> = calls.iter().map(|c| c.0).collect();
        assert_eq!(seqs, [1, 1, 1, 2]);
        assert!(
            calls[1].1 - calls[0].1 >= Duration::from_millis(50),
            "Retry-After is capped at max_backoff"
        );
        assert_eq!(stats.sent_profiles.load(Ordering::Relaxed), 1);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
        let dropped = stats.dropped.lock().unwrap();
        assert_eq!(dropped.get("http_413"), Some(&(1, 10)));
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let outcomes = Arc::new(Mutex::new(
            (0..1000)
                .map(|_| Outcome::Retry {
                    reason: "down".into(),
                    after: None,
                })
                .collect(),
        ));
        let mut d = Delivery::start(
            "t",
            QueueOptions {
                max_profiles: 3,
                flush_deadline: Duration::from_millis(100),
                ..opts()
            },
            Box::new(Script(outcomes, Arc::new(Mutex::new(Vec::new())))),
        );
        let stats = d.stats();
        for seq in 1..=5 {
            d.push(payload(seq, 10));
        }
        assert_eq!(stats.queued_profiles.load(Ordering::Relaxed), 3);
        assert_eq!(d.finish(), 3);
        let dropped = stats.dropped.lock().unwrap();
        assert_eq!(dropped.get("queue_full").map(|d| d.0), Some(2));
        assert_eq!(dropped.get("shutdown").map(|d| d.0), Some(3));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
