//! A window: the counts of one time range, keyed by (target, stack), still unsymbolized. The
//! pipeline cuts one per window interval (one for a whole `record`) and hands it on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::stacks::StackId;
use crate::process::registry::ProcessId;
use crate::process::{ObjectFile, ObjectId};
use crate::symbolize::buildinfo::BuildInfo;

/// What a sample belongs to besides its stack: the dimensions of the kernel key that survive
/// into the profile as labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleTarget {
    pub pid: u32,
    /// The exec generation: which image of the process (its comm may differ per image).
    pub generation: u32,
    /// 0 unless `--threads`.
    pub tid: u32,
    /// 0 unless goroutine ids are collected.
    pub goid: u64,
    /// 0: no labels.
    pub label_set: u32,
    /// `profiler_ebpf::EVENT_KIND_*`.
    pub kind: u8,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub count: u64,
    /// CPU time the samples stand for (sum of their sampling periods).
    pub weight_ns: u64,
}

impl Counts {
    pub fn add(&mut self, o: Counts) {
        self.count += o.count;
        self.weight_ns += o.weight_ns;
    }
}

/// What a window knows of a process it has samples of: what a sink needs to name its series
/// (taken while the process lived, so a window can be emitted after it is gone).
#[derive(Clone, Debug, Default)]
pub struct TargetMeta {
    pub pid: u32,
    pub process: Option<ProcessId>,
    /// The comm of this image (a child before its exec has its parent's); None when the
    /// image could not be read.
    pub comm: Option<String>,
    /// /proc/PID/exe; empty if unknown.
    pub exe: String,
    /// The cgroup v2 path; empty if unknown.
    pub cgroup: String,
    /// The build info of the image's executable (Go version, main module, build ids).
    pub build: Option<BuildInfo>,
    /// `OTEL_SERVICE_NAME` or `PYROSCOPE_SERVICE_NAME` from its environment, when read.
    pub service_env: Option<String>,
    /// A kernel thread (a child of kthreadd, pid 2).
    pub kernel_thread: bool,
}

#[derive(Clone)]
pub struct Window {
    /// 1, 2, ... in order.
    pub seq: u64,
    pub start: SystemTime,
    pub duration: Duration,
    pub counts: HashMap<(SampleTarget, StackId), Counts>,
    /// By (pid, exec generation).
    pub targets: HashMap<(u32, u32), TargetMeta>,
    /// Every file a frame of this window points into, kept open until it is symbolized.
    pub objects: HashMap<ObjectId, Arc<ObjectFile>>,
    /// Samples (and their weight) in this window.
    pub total: Counts,
    /// Samples whose user stack was cut at the kernel's depth limit.
    pub truncated: u64,
    /// Batches ingested into this window.
    pub batches: u64,
    /// The pprof label sets `SampleTarget::label_set` names.
    pub label_sets: crate::sampler::labels::LabelSets,
}

impl Window {
    pub fn new(seq: u64, start: SystemTime) -> Self {
        Window {
            seq,
            start,
            duration: Duration::ZERO,
            counts: HashMap::new(),
            targets: HashMap::new(),
            objects: HashMap::new(),
            total: Counts::default(),
            truncated: 0,
            batches: 0,
            label_sets: Default::default(),
        }
    }

    pub fn add(&mut self, target: SampleTarget, stack: StackId, c: Counts) {
        self.counts.entry((target, stack)).or_default().add(c);
        self.total.add(c);
    }

    /// Adds another window's counts (a recording's total is the sum of its windows).
    pub fn merge(&mut self, other: &Window) {
        for (&k, &c) in &other.counts {
            self.counts.entry(k).or_default().add(c);
        }
        for (&image, meta) in &other.targets {
            self.targets.entry(image).or_insert_with(|| meta.clone());
        }
        for (&id, o) in &other.objects {
            self.objects.entry(id).or_insert_with(|| o.clone());
        }
        for (&id, l) in &other.label_sets {
            self.label_sets.entry(id).or_insert_with(|| l.clone());
        }
        self.total.add(other.total);
        self.truncated += other.truncated;
        self.batches += other.batches;
        let end = other.start + other.duration;
        if let Ok(d) = end.duration_since(self.start) {
            self.duration = self.duration.max(d);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}
