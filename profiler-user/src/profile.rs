//! The in-memory profile every output is rendered from.
//!
//! It mirrors pprof's `profile.proto` (so writing and reading `.pb.gz` is a direct mapping and a
//! runtime/pprof profile can be rendered by the same reports), with ids that are 1-based indexes
//! into the vectors. Samples of many processes live in one profile, told apart by labels.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// `(type, unit)` of one sample value, e.g. `("cpu", "nanoseconds")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueType {
    pub kind: String,
    pub unit: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub limit: u64,
    pub offset: u64,
    pub file: String,
    pub build_id: String,
    pub has_functions: bool,
    pub has_filenames: bool,
    pub has_line_numbers: bool,
    pub has_inline_frames: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Function {
    /// Name as printed (generic shapes as `[...]`).
    pub name: String,
    pub system_name: String,
    pub filename: String,
    /// Line of the `func` keyword; 0 when unknown.
    pub start_line: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Line {
    /// 1-based index into `Profile::functions`.
    pub function_id: u64,
    pub line: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Location {
    /// 1-based index into `Profile::mappings`, 0 for none (kernel, unknown).
    pub mapping_id: u64,
    /// Address in the process (for callers: the call instruction, i.e. return address - 1).
    pub address: u64,
    /// Innermost first: the last entry is the physical function the others were inlined into.
    pub lines: Vec<Line>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelValue {
    Str(String),
    Num(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub key: String,
    pub value: LabelValue,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// 1-based indexes into `Profile::locations`, leaf first.
    pub location_ids: Vec<u64>,
    /// One value per `Profile::sample_types` entry.
    pub values: Vec<i64>,
    pub labels: Vec<Label>,
}

/// What the recording itself cost and lost; printed in every output's footer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingStats {
    /// `(reason, count)` of samples or stack parts lost, in a stable order.
    pub lost: Vec<(String, u64)>,
    /// CPU time (user + system) the profiler itself used.
    pub agent_cpu: Duration,
    /// Peak resident set size of the profiler, bytes.
    pub agent_max_rss: u64,
    /// Notes about the recording (exited processes, unreadable binaries...).
    pub notes: Vec<String>,
    /// Samples of the profiled processes by the kernel's own counter: the profile's samples
    /// plus what `lost` counts, nothing else (the window tests check this).
    pub kernel_samples: u64,
}

#[derive(Clone, Debug)]
pub struct Profile {
    pub sample_types: Vec<ValueType>,
    pub samples: Vec<Sample>,
    pub mappings: Vec<Mapping>,
    pub locations: Vec<Location>,
    pub functions: Vec<Function>,
    pub start_time: SystemTime,
    pub duration: Duration,
    pub period_type: Option<ValueType>,
    /// Nanoseconds of CPU per sample (1e9 / frequency).
    pub period: i64,
    pub comments: Vec<String>,
    /// Index into `sample_types` that reports show by default (pprof: the last one).
    pub default_sample_type: usize,
    /// Present for recordings, absent for profiles read from a file.
    pub stats: Option<RecordingStats>,
}

impl Profile {
    /// An empty CPU profile with gprof-bpf's sample types: samples/count and cpu/nanoseconds.
    pub fn new_cpu(frequency_hz: u64, start_time: SystemTime) -> Self {
        let period = 1_000_000_000 / frequency_hz.max(1) as i64;
        Profile {
            sample_types: vec![
                ValueType {
                    kind: "samples".into(),
                    unit: "count".into(),
                },
                ValueType {
                    kind: "cpu".into(),
                    unit: "nanoseconds".into(),
                },
            ],
            samples: Vec::new(),
            mappings: Vec::new(),
            locations: Vec::new(),
            functions: Vec::new(),
            start_time,
            duration: Duration::ZERO,
            period_type: Some(ValueType {
                kind: "cpu".into(),
                unit: "nanoseconds".into(),
            }),
            period,
            comments: Vec::new(),
            default_sample_type: 1,
            stats: None,
        }
    }

    /// The sum of the `*/nanoseconds` sample values (the CPU time the profile stands for);
    /// 0 when it has no such type.
    pub fn total_weight(&self) -> u64 {
        let Some(i) = self
            .sample_types
            .iter()
            .position(|t| t.unit == "nanoseconds")
        else {
            return 0;
        };
        self.samples
            .iter()
            .map(|s| s.values.get(i).copied().unwrap_or(0).max(0) as u64)
            .sum()
    }

    pub fn function(&self, id: u64) -> &Function {
        &self.functions[id as usize - 1]
    }

    pub fn location(&self, id: u64) -> &Location {
        &self.locations[id as usize - 1]
    }

    pub fn mapping(&self, id: u64) -> Option<&Mapping> {
        id.checked_sub(1)
            .and_then(|i| self.mappings.get(i as usize))
    }
}

/// Interns functions, locations and mappings while samples are added, so equal frames share
/// one id (which pprof and the reports rely on).
#[derive(Default)]
pub struct ProfileBuilder {
    functions: HashMap<Function, u64>,
    locations: HashMap<Location, u64>,
    mappings: HashMap<(String, u64, u64, u64), u64>,
}

impl ProfileBuilder {
    pub fn function(&mut self, profile: &mut Profile, f: Function) -> u64 {
        if let Some(&id) = self.functions.get(&f) {
            return id;
        }
        profile.functions.push(f.clone());
        let id = profile.functions.len() as u64;
        self.functions.insert(f, id);
        id
    }

    pub fn location(&mut self, profile: &mut Profile, l: Location) -> u64 {
        if let Some(&id) = self.locations.get(&l) {
            return id;
        }
        profile.locations.push(l.clone());
        let id = profile.locations.len() as u64;
        self.locations.insert(l, id);
        id
    }

    pub fn mapping(&mut self, profile: &mut Profile, m: Mapping) -> u64 {
        let key = (m.file.clone(), m.start, m.limit, m.offset);
        if let Some(&id) = self.mappings.get(&key) {
            return id;
        }
        profile.mappings.push(m);
        let id = profile.mappings.len() as u64;
        self.mappings.insert(key, id);
        id
    }
}
