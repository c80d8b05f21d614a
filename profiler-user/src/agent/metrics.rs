//! The agent's self-metrics in the Prometheus text format (served by [`super::http`]).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use profiler_ebpf::Stat;

use crate::pipeline::PipelineStats;
use crate::sampler::SamplerDrops;
use crate::sink::queue::SinkStats;

/// The counters of each network sink, by name.
pub type NamedStats = Vec<(String, Arc<SinkStats>)>;

/// What `/metrics` reads, each part owned by its stage.
#[derive(Clone)]
pub struct Sources {
    pub pipeline: Arc<Mutex<PipelineStats>>,
    pub sampler: Arc<SamplerDrops>,
    /// Network sinks by name.
    pub sinks: NamedStats,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label values escaped as the text format wants.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The agent's own CPU seconds and resident bytes.
fn self_usage() -> (f64, u64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given; zeroed is a valid rusage.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let cpu = ru.ru_utime.tv_sec as f64
        + ru.ru_stime.tv_sec as f64
        + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) as f64 / 1e6;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    (cpu, rss)
}

pub fn render(src: &Sources) -> String {
    let p = src
        .pipeline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut o = String::new();
    family(
        &mut o,
        "gprof_bpf_samples_total",
        "counter",
        "Samples of profiled processes.",
    );
    let _ = writeln!(o, "gprof_bpf_samples_total {}", p.samples);
    family(
        &mut o,
        "gprof_bpf_lost_total",
        "counter",
        "Samples, stacks and events lost, by reason.",
    );
    let k = &p.kernel_stats;
    for (reason, v) in [
        ("count_map_full", k[Stat::LostCountMapFull as usize]),
        (
            "user_stack_map_full",
            k[Stat::LostUserStackMapFull as usize],
        ),
        (
            "kernel_stack_collision",
            k[Stat::LostKernelStackCollision as usize],
        ),
        ("kernel_stack_other", k[Stat::LostKernelStackOther as usize]),
        ("events_ring_full", k[Stat::LostEvents as usize]),
        (
            "pipeline_behind",
            src.sampler
                .samples
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "labels_unreadable",
            src.sampler
                .label_samples
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(o, "gprof_bpf_lost_total{{reason=\"{reason}\"}} {v}");
    }
    family(&mut o, "gprof_bpf_processes", "gauge", "Processes tracked.");
    let _ = writeln!(o, "gprof_bpf_processes {}", p.processes);
    family(&mut o, "gprof_bpf_windows_total", "counter", "Windows cut.");
    let _ = writeln!(o, "gprof_bpf_windows_total {}", p.windows);
    family(
        &mut o,
        "gprof_bpf_windows_shed_total",
        "counter",
        "Windows dropped because the agent was over its memory limit.",
    );
    let _ = writeln!(o, "gprof_bpf_windows_shed_total {}", p.windows_shed);
    family(
        &mut o,
        "gprof_bpf_sampling_rate_hz",
        "gauge",
        "The sampling rate in effect (the CPU budget may lower it; 0: no budget).",
    );
    let _ = writeln!(o, "gprof_bpf_sampling_rate_hz {}", p.rate_hz);
    family(
        &mut o,
        "gprof_bpf_rate_lowered_total",
        "counter",
        "Times the CPU budget lowered the sampling rate.",
    );
    let _ = writeln!(o, "gprof_bpf_rate_lowered_total {}", p.rate_lowered);
    /// Name, type, help, and how to read it.
    type PerSink = (
        &'static str,
        &'static str,
        &'static str,
        fn(&SinkStats) -> f64,
    );
    let per_sink: [PerSink; 7] = [
        (
            "gprof_bpf_profiles_sent_total",
            "counter",
            "Profiles delivered.",
            |s| s.sent_profiles.load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
        (
            "gprof_bpf_bytes_sent_total",
            "counter",
            "Bytes of pprof delivered.",
            |s| s.sent_bytes.load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
        (
            "gprof_bpf_sent_cpu_seconds_total",
            "counter",
            "CPU time in the profiles delivered.",
            |s| s.sent_weight_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9,
        ),
        (
            "gprof_bpf_retries_total",
            "counter",
            "Retried sends.",
            |s| s.retries.load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
        (
            "gprof_bpf_queue_profiles",
            "gauge",
            "Profiles queued.",
            |s| s.queued_profiles.load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
        ("gprof_bpf_queue_bytes", "gauge", "Bytes queued.", |s| {
            s.queued_bytes.load(std::sync::atomic::Ordering::Relaxed) as f64
        }),
        (
            "gprof_bpf_export_latency_seconds_sum",
            "counter",
            "Sum of queue-to-delivery times (divide by profiles sent).",
            |s| s.latency_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9,
        ),
    ];
    for (name, kind, help, get) in per_sink {
        family(&mut o, name, kind, help);
        for (sink, s) in &src.sinks {
            let _ = writeln!(o, "{name}{{sink=\"{}\"}} {}", esc(sink), get(s));
        }
    }
    family(
        &mut o,
        "gprof_bpf_profiles_dropped_total",
        "counter",
        "Profiles not delivered, by sink and reason.",
    );
    family(
        &mut o,
        "gprof_bpf_dropped_cpu_seconds_total",
        "counter",
        "CPU time in the profiles not delivered, by sink and reason.",
    );
    for (sink, s) in &src.sinks {
        let d = s.dropped.lock().unwrap_or_else(|e| e.into_inner());
        for (reason, (n, w)) in d.iter() {
            let l = format!("sink=\"{}\",reason=\"{}\"", esc(sink), esc(reason));
            let _ = writeln!(o, "gprof_bpf_profiles_dropped_total{{{l}}} {n}");
            let _ = writeln!(
                o,
                "gprof_bpf_dropped_cpu_seconds_total{{{l}}} {}",
                *w as f64 / 1e9
            );
        }
    }
    let (cpu, rss) = self_usage();
    family(
        &mut o,
        "process_cpu_seconds_total",
        "counter",
        "The agent's CPU time.",
    );
    let _ = writeln!(o, "process_cpu_seconds_total {cpu}");
    family(
        &mut o,
        "process_resident_memory_bytes",
        "gauge",
        "The agent's RSS.",
    );
    let _ = writeln!(o, "process_resident_memory_bytes {rss}");
    o
}
