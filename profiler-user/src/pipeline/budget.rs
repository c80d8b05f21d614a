//! The agent's CPU budget: at each window's end, the process's own CPU time since the last
//! check is compared with the budget; over it, the sampling rate is halved (down to a
//! floor), and well under it, doubled back up to the configured rate. The kernel weighs
//! every sample by the measured time since the previous one, so a lower rate costs
//! resolution, never CPU time in the profiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Checks closer together than this are merged: one 1 s window says little about a rate.
const MIN_SPAN: Duration = Duration::from_secs(5);
/// Under this fraction of the budget, the rate goes back up.
const RAISE_BELOW: f64 = 0.3;

pub struct CpuBudget {
    /// CPU seconds per second (0.01: 1 % of one core).
    limit: f64,
    configured_hz: u64,
    min_hz: u64,
    rate: Arc<AtomicU64>,
    last_cpu: Option<Duration>,
    last_at: Instant,
    /// Times the rate was lowered (`gprof_bpf_rate_lowered_total`).
    pub lowered: u64,
}

/// A change the budget made, for the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateChange {
    pub usage: f64,
    pub limit: f64,
    pub from_hz: u64,
    pub to_hz: u64,
}

impl CpuBudget {
    /// `limit`: CPU seconds per second; `rate`: the sampler's shared rate.
    pub fn new(limit: f64, configured_hz: u64, rate: Arc<AtomicU64>) -> CpuBudget {
        CpuBudget {
            limit,
            configured_hz,
            min_hz: configured_hz.clamp(1, 2),
            rate,
            // Set at the first check: start-up (loading the program, the first look at every
            // process) is not what the rate costs, and counted in, it halved the rate of
            // every agent in its first window.
            last_cpu: None,
            last_at: Instant::now(),
            lowered: 0,
        }
    }

    /// The rate in effect.
    pub fn rate_hz(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Measures the CPU used since the last check and adjusts the rate.
    pub fn check(&mut self) -> Option<RateChange> {
        let span = self.last_at.elapsed();
        if span < MIN_SPAN {
            return None;
        }
        let cpu = process_cpu_time()?;
        let last = self.last_cpu.replace(cpu);
        self.last_at = Instant::now();
        let used = cpu.saturating_sub(last?);
        self.decide(used.as_secs_f64() / span.as_secs_f64())
    }

    fn decide(&mut self, usage: f64) -> Option<RateChange> {
        let from_hz = self.rate_hz();
        let to_hz = if usage > self.limit && from_hz > self.min_hz {
            self.lowered += 1;
            (from_hz / 2).max(self.min_hz)
        } else if usage < RAISE_BELOW * self.limit && from_hz < self.configured_hz {
            (from_hz * 2).min(self.configured_hz)
        } else {
            return None;
        };
        self.rate.store(to_hz, Ordering::Relaxed);
        Some(RateChange {
            usage,
            limit: self.limit,
            from_hz,
            to_hz,
        })
    }
}

/// User plus system CPU time of this process so far.
fn process_cpu_time() -> Option<Duration> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the pointed-to, properly sized buffer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so the struct is initialised.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Some(tv(ru.ru_utime) + tv(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_budget_halves_down_to_the_floor_and_recovers() {
        let rate = Arc::new(AtomicU64::new(19));
        let mut b = CpuBudget::new(0.01, 19, rate.clone());
        let change = b.decide(0.05).unwrap();
        assert_eq!((change.from_hz, change.to_hz), (19, 9));
        b.decide(0.05); // 4
        b.decide(0.05); // 2
        assert_eq!(rate.load(Ordering::Relaxed), 2, "the floor");
        assert_eq!(b.decide(0.05), None);
        assert_eq!(b.lowered, 3);
        // Between 30 % and 100 % of the budget: stay.
        assert_eq!(b.decide(0.005), None);
        // Well under it: back up, never above the configured rate.
        for _ in 0..5 {
            b.decide(0.001);
        }
        assert_eq!(rate.load(Ordering::Relaxed), 19);
    }
}
