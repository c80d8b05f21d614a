//! What `top` shows, without a terminal: each window's profile is reduced to per-function
//! own and total CPU time ([`WindowSummary`]), and [`Model`] folds the summaries into a
//! decaying ("recent") and a cumulative aggregate, sorted as the user asks.
//!
//! * own: CPU time with the function as the leaf frame; total: CPU time with the function
//!   anywhere on the stack (counted once per sample, so recursion does not inflate it).
//! * With inlined frames (the default, as pprof), a function inlined into another is a frame
//!   of its own; without (`i`), its time is its physical caller's (pprof's `-noinlines`).
//! * Percentages are shares of the aggregate selected by [`Mode`]; the times are always the
//!   CPU time since the start or the last reset (as py-spy's top).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::profile::{LabelValue, Profile};

/// One row's identity: a function (and the tag value, with `--by-tag`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FuncKey {
    /// The value of the `--by-tag` label ("-" when a sample has none); None without it.
    pub tag: Option<String>,
    pub name: String,
    pub file: String,
    /// The line of the function's `func` keyword; 0 when unknown.
    pub line: i64,
}

impl FuncKey {
    pub fn named(name: &str) -> Self {
        FuncKey {
            tag: None,
            name: name.to_string(),
            file: String::new(),
            line: 0,
        }
    }
}

/// CPU time of one function in one window or aggregate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Times {
    pub own: f64,
    pub total: f64,
}

impl Times {
    fn add(&mut self, o: Times, factor: f64) {
        self.own += o.own * factor;
        self.total += o.total * factor;
    }
}

/// Per-function times of one view (with or without inlined frames).
#[derive(Clone, Debug, Default)]
pub struct Funcs {
    pub by_func: HashMap<FuncKey, Times>,
    /// The CPU time of every sample (what the percentages are shares of).
    pub total: f64,
}

impl Funcs {
    fn add(&mut self, o: &Funcs, factor: f64) {
        for (k, t) in &o.by_func {
            self.by_func.entry(k.clone()).or_default().add(*t, factor);
        }
        self.total += o.total * factor;
    }

    fn scale(&mut self, factor: f64) {
        self.total *= factor;
        for t in self.by_func.values_mut() {
            t.own *= factor;
            t.total *= factor;
        }
        // What decayed to nothing leaves the table (bounded memory over a long run).
        let floor = self.total * 1e-6;
        self.by_func.retain(|_, t| t.total > floor && t.total > 0.0);
    }
}

/// One window, reduced: seconds of CPU per function, in both views.
#[derive(Clone, Debug, Default)]
pub struct WindowSummary {
    pub duration: Duration,
    pub samples: u64,
    pub inlined: Funcs,
    pub physical: Funcs,
}

/// The name a frame without symbol gets.
pub const UNKNOWN: &str = "[unknown]";

impl WindowSummary {
    /// Reduces a window's profile; `by_tag`: the label whose value splits each function.
    pub fn of(profile: &Profile, by_tag: Option<&str>) -> Self {
        let weight_idx = profile
            .sample_types
            .iter()
            .position(|t| t.unit == "nanoseconds");
        let count_idx = profile
            .sample_types
            .iter()
            .position(|t| t.kind == "samples" && t.unit == "count");
        let mut s = WindowSummary {
            duration: profile.duration,
            ..Default::default()
        };
        let mut seen = HashSet::new();
        for sample in &profile.samples {
            let value = |i: Option<usize>| {
                i.and_then(|i| sample.values.get(i))
                    .copied()
                    .unwrap_or(0)
                    .max(0)
            };
            let count = value(count_idx) as u64;
            // A profile without CPU time (a foreign one) weighs each sample at its period.
            let weight = match weight_idx {
                Some(_) => value(weight_idx) as f64 / 1e9,
                None => count as f64 * profile.period.max(0) as f64 / 1e9,
            };
            s.samples += count;
            let tag = by_tag.map(|key| {
                sample.labels.iter().find(|l| l.key == key).map_or_else(
                    || "-".to_string(),
                    |l| match &l.value {
                        LabelValue::Str(v) => v.clone(),
                        LabelValue::Num(n) => n.to_string(),
                    },
                )
            });
            for (funcs, inlined) in [(&mut s.inlined, true), (&mut s.physical, false)] {
                funcs.total += weight;
                seen.clear();
                let mut leaf = true;
                for &loc_id in &sample.location_ids {
                    let Some(loc) = loc_id
                        .checked_sub(1)
                        .and_then(|i| profile.locations.get(i as usize))
                    else {
                        continue;
                    };
                    // Innermost first; the last line is the physical function.
                    let lines = if inlined {
                        &loc.lines[..]
                    } else {
                        &loc.lines[loc.lines.len().saturating_sub(1)..]
                    };
                    for line in lines {
                        let key = match line
                            .function_id
                            .checked_sub(1)
                            .and_then(|i| profile.functions.get(i as usize))
                        {
                            Some(f) => FuncKey {
                                tag: tag.clone(),
                                name: f.name.clone(),
                                file: f.filename.clone(),
                                line: f.start_line,
                            },
                            None => FuncKey {
                                tag: tag.clone(),
                                ..FuncKey::named(UNKNOWN)
                            },
                        };
                        let t = funcs.by_func.entry(key.clone()).or_default();
                        if leaf {
                            t.own += weight;
                            leaf = false;
                        }
                        if seen.insert(key) {
                            t.total += weight;
                        }
                    }
                }
                if leaf {
                    // No frame at all: still CPU time of the target.
                    let t = funcs
                        .by_func
                        .entry(FuncKey {
                            tag: tag.clone(),
                            ..FuncKey::named(UNKNOWN)
                        })
                        .or_default();
                    t.own += weight;
                    t.total += weight;
                }
            }
        }
        s
    }

    /// Adds another summary (windows that arrived while paused).
    pub fn merge(&mut self, o: &WindowSummary) {
        self.duration += o.duration;
        self.samples += o.samples;
        self.inlined.add(&o.inlined, 1.0);
        self.physical.add(&o.physical, 1.0);
    }
}

/// Which column the rows are sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Own,
    Total,
    OwnTime,
    TotalTime,
}

impl SortBy {
    pub fn name(self) -> &'static str {
        match self {
            SortBy::Own => "own%",
            SortBy::Total => "total%",
            SortBy::OwnTime => "own time",
            SortBy::TotalTime => "total time",
        }
    }
}

/// What the percentages are shares of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Exponentially decaying (half-life [`Model::half_life`]): what runs now.
    Recent,
    /// Everything since the start or the last reset.
    Cumulative,
}

/// A table row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: FuncKey,
    pub own_pct: f64,
    pub total_pct: f64,
    /// Seconds of CPU since the start or the last reset.
    pub own_time: f64,
    pub total_time: f64,
}

/// The two aggregates of one view.
#[derive(Clone, Debug, Default)]
struct Aggregates {
    recent: Funcs,
    cumulative: Funcs,
}

/// The live table: summaries folded in, sorting and toggles.
#[derive(Clone, Debug)]
pub struct Model {
    inlined: Aggregates,
    physical: Aggregates,
    /// Windows received while paused, folded in on resume.
    pending: Option<WindowSummary>,
    pub half_life: Duration,
    pub sort: SortBy,
    pub mode: Mode,
    pub show_inlined: bool,
    pub paused: bool,
    /// Samples and CPU time of the last window, and its length (the rate shown).
    last_samples: u64,
    last_duration: Duration,
    /// Since the start or the last reset.
    pub samples: u64,
    pub covered: Duration,
    pub windows: u64,
}

impl Default for Model {
    fn default() -> Self {
        Model::new(Duration::from_secs(3))
    }
}

impl Model {
    pub fn new(half_life: Duration) -> Self {
        Model {
            inlined: Aggregates::default(),
            physical: Aggregates::default(),
            pending: None,
            half_life: half_life.max(Duration::from_millis(1)),
            sort: SortBy::Own,
            mode: Mode::Recent,
            show_inlined: true,
            paused: false,
            last_samples: 0,
            last_duration: Duration::ZERO,
            samples: 0,
            covered: Duration::ZERO,
            windows: 0,
        }
    }

    /// Folds in one window (kept aside while paused).
    pub fn add(&mut self, w: WindowSummary) {
        if self.paused {
            match &mut self.pending {
                Some(p) => p.merge(&w),
                None => self.pending = Some(w),
            }
            return;
        }
        let decay = 0.5f64.powf(w.duration.as_secs_f64() / self.half_life.as_secs_f64());
        for (agg, funcs) in [
            (&mut self.inlined, &w.inlined),
            (&mut self.physical, &w.physical),
        ] {
            agg.recent.scale(decay);
            agg.recent.add(funcs, 1.0);
            agg.cumulative.add(funcs, 1.0);
        }
        self.last_samples = w.samples;
        self.last_duration = w.duration;
        self.samples += w.samples;
        self.covered += w.duration;
        self.windows += 1;
    }

    /// A window interval passed without samples (the pipeline does not emit empty windows):
    /// the recent view decays and the rate reads 0.
    pub fn idle(&mut self, d: Duration) {
        self.add(WindowSummary {
            duration: d,
            ..Default::default()
        });
    }

    /// Samples per second of the last window.
    pub fn rate(&self) -> f64 {
        let d = self.last_duration.as_secs_f64();
        if d > 0.0 {
            self.last_samples as f64 / d
        } else {
            0.0
        }
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused && let Some(p) = self.pending.take() {
            self.add(p);
        }
    }

    /// Forgets everything aggregated so far (and what waits while paused).
    pub fn reset(&mut self) {
        self.inlined = Aggregates::default();
        self.physical = Aggregates::default();
        self.pending = None;
        self.last_samples = 0;
        self.last_duration = Duration::ZERO;
        self.samples = 0;
        self.covered = Duration::ZERO;
        self.windows = 0;
    }

    pub fn toggle_mode(&mut self) {
        self.mode = match self.mode {
            Mode::Recent => Mode::Cumulative,
            Mode::Cumulative => Mode::Recent,
        };
    }

    /// The rows, sorted (descending; ties by function name, so the order is stable).
    pub fn rows(&self) -> Vec<Row> {
        let agg = if self.show_inlined {
            &self.inlined
        } else {
            &self.physical
        };
        let shares = match self.mode {
            Mode::Recent => &agg.recent,
            Mode::Cumulative => &agg.cumulative,
        };
        let pct = |v: f64| {
            if shares.total > 0.0 {
                (100.0 * v / shares.total).clamp(0.0, 100.0)
            } else {
                0.0
            }
        };
        let mut rows: Vec<Row> = agg
            .cumulative
            .by_func
            .iter()
            .map(|(k, t)| {
                let share = shares.by_func.get(k).copied().unwrap_or_default();
                Row {
                    key: k.clone(),
                    own_pct: pct(share.own),
                    total_pct: pct(share.total),
                    own_time: t.own,
                    total_time: t.total,
                }
            })
            .collect();
        let value = |r: &Row| match self.sort {
            SortBy::Own => (r.own_pct, r.total_pct),
            SortBy::Total => (r.total_pct, r.own_pct),
            SortBy::OwnTime => (r.own_time, r.total_time),
            SortBy::TotalTime => (r.total_time, r.own_time),
        };
        rows.sort_by(|a, b| {
            let (a1, a2) = value(a);
            let (b1, b2) = value(b);
            b1.total_cmp(&a1)
                .then(b2.total_cmp(&a2))
                .then_with(|| a.key.cmp(&b.key))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Function, Label, Line, Location, Sample};
    use std::time::SystemTime;

    /// A profile from stacks of function names (leaf first; `a+b` is `a` inlined into `b`),
    /// each with its CPU milliseconds.
    fn profile(stacks: &[(&[&str], i64)]) -> Profile {
        profile_tagged(
            &stacks
                .iter()
                .map(|&(s, ms)| (s, ms, ""))
                .collect::<Vec<_>>(),
        )
    }

    fn profile_tagged(stacks: &[(&[&str], i64, &str)]) -> Profile {
        let mut p = Profile::new_cpu(100, SystemTime::UNIX_EPOCH);
        p.duration = Duration::from_secs(1);
        let func_id = |p: &mut Profile, name: &str| {
            if let Some(i) = p.functions.iter().position(|f| f.name == name) {
                return i as u64 + 1;
            }
            p.functions.push(Function {
                name: name.into(),
                system_name: name.into(),
                filename: format!("/src/{name}.go"),
                start_line: 10,
            });
            p.functions.len() as u64
        };
        for &(stack, ms, tag) in stacks {
            let mut ids = Vec::new();
            for frame in stack {
                let lines = frame
                    .split('+')
                    .map(|n| Line {
                        function_id: func_id(&mut p, n),
                        line: 11,
                    })
                    .collect();
                p.locations.push(Location {
                    mapping_id: 0,
                    address: 0,
                    lines,
                });
                ids.push(p.locations.len() as u64);
            }
            let labels = if tag.is_empty() {
                vec![]
            } else {
                vec![Label {
                    key: "job".into(),
                    value: LabelValue::Str(tag.into()),
                }]
            };
            p.samples.push(Sample {
                location_ids: ids,
                values: vec![ms / 10, ms * 1_000_000],
                labels,
            });
        }
        p
    }

    #[track_caller]
    fn assert_close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.key.name.as_str()).collect()
    }

    fn row<'a>(rows: &'a [Row], name: &str) -> &'a Row {
        rows.iter().find(|r| r.key.name == name).unwrap()
    }

    #[test]
    fn own_and_total() {
        let p = profile(&[
            (&["hotA", "cpu", "main"], 600),
            (&["hotB", "cpu", "main"], 300),
            (&["cpu", "main"], 100),
        ]);
        let mut m = Model::default();
        m.add(WindowSummary::of(&p, None));
        let rows = m.rows();
        assert_eq!(names(&rows), ["hotA", "hotB", "cpu", "main"]);
        assert_close(row(&rows, "hotA").own_pct, 60.0);
        assert_close(row(&rows, "cpu").own_pct, 10.0);
        assert_close(row(&rows, "cpu").total_pct, 100.0);
        assert!((row(&rows, "hotA").own_time - 0.6).abs() < 1e-9);
        assert!((row(&rows, "main").total_time - 1.0).abs() < 1e-9);
        m.sort = SortBy::Total;
        let rows = m.rows();
        // Ties (cpu and main at 100 %) by own, then by name.
        assert_eq!(names(&rows), ["cpu", "main", "hotA", "hotB"]);
        m.sort = SortBy::TotalTime;
        assert_eq!(names(&m.rows())[..2], ["cpu", "main"]);
    }

    #[test]
    fn recursion_counts_once_in_total() {
        let p = profile(&[(&["f", "f", "f", "main"], 100)]);
        let mut m = Model::default();
        m.add(WindowSummary::of(&p, None));
        let f = row(&m.rows(), "f").clone();
        assert_close(f.total_pct, 100.0);
        assert_close(f.own_pct, 100.0);
    }

    #[test]
    fn inlined_frames_toggle() {
        // leaf is inlined into hot; hot has no own time of its own with inlines shown.
        let p = profile(&[(&["leaf+hot", "main"], 100)]);
        let mut m = Model::default();
        m.add(WindowSummary::of(&p, None));
        assert_eq!(names(&m.rows()), ["leaf", "hot", "main"]);
        assert_close(row(&m.rows(), "hot").own_pct, 0.0);
        m.show_inlined = false;
        let rows = m.rows();
        assert_eq!(names(&rows), ["hot", "main"]);
        assert_close(row(&rows, "hot").own_pct, 100.0);
    }

    #[test]
    fn recent_decays_cumulative_does_not() {
        let mut m = Model::new(Duration::from_secs(1));
        m.add(WindowSummary::of(&profile(&[(&["old"], 100)]), None));
        m.add(WindowSummary::of(&profile(&[(&["new"], 100)]), None));
        // After one half-life, old weighs half of new: 1/3 of the recent time.
        let rows = m.rows();
        assert_eq!(names(&rows), ["new", "old"]);
        assert!((row(&rows, "old").own_pct - 100.0 / 3.0).abs() < 1e-6);
        m.toggle_mode();
        assert_eq!(m.mode, Mode::Cumulative);
        assert!((row(&m.rows(), "old").own_pct - 50.0).abs() < 1e-9);
        // Idle time decays the recent view only.
        m.toggle_mode();
        for _ in 0..40 {
            m.idle(Duration::from_secs(1));
        }
        assert_eq!(m.rate(), 0.0);
        let rows = m.rows();
        assert_eq!(rows.len(), 2, "cumulative times stay");
        assert!((row(&rows, "old").own_time - 0.1).abs() < 1e-9);
    }

    #[test]
    fn pause_keeps_windows_and_reset_forgets() {
        let mut m = Model::default();
        m.add(WindowSummary::of(&profile(&[(&["a"], 100)]), None));
        m.set_paused(true);
        m.add(WindowSummary::of(&profile(&[(&["b"], 300)]), None));
        m.add(WindowSummary::of(&profile(&[(&["b"], 300)]), None));
        assert_eq!(names(&m.rows()), ["a"], "frozen while paused");
        m.set_paused(false);
        assert_eq!(names(&m.rows()), ["b", "a"]);
        assert!((row(&m.rows(), "b").own_time - 0.6).abs() < 1e-9);
        assert_eq!(m.samples, 70);
        m.reset();
        assert!(m.rows().is_empty());
        assert_eq!(m.samples, 0);
        assert_eq!(m.rate(), 0.0);
    }

    #[test]
    fn by_tag_splits_functions() {
        let p = profile_tagged(&[
            (&["work", "main"], 300, "import"),
            (&["work", "main"], 100, "export"),
            (&["other"], 100, ""),
        ]);
        let mut m = Model::default();
        m.add(WindowSummary::of(&p, Some("job")));
        let rows = m.rows();
        let tags: Vec<_> = rows
            .iter()
            .map(|r| (r.key.tag.as_deref().unwrap(), r.key.name.as_str()))
            .collect();
        assert_eq!(
            tags[..3],
            [("import", "work"), ("-", "other"), ("export", "work")]
        );
        assert_close(rows[0].own_pct, 60.0);
    }

    #[test]
    fn bad_ids_and_empty_stacks_do_not_panic() {
        let mut p = profile(&[(&["a"], 100)]);
        p.samples.push(Sample {
            location_ids: vec![0, 99],
            values: vec![1],
            labels: vec![],
        });
        p.samples.push(Sample {
            location_ids: vec![],
            values: vec![-5, 100_000_000],
            labels: vec![],
        });
        p.locations.push(Location {
            mapping_id: 0,
            address: 0,
            lines: vec![Line {
                function_id: 1234,
                line: 0,
            }],
        });
        let n = p.locations.len() as u64;
        p.samples.push(Sample {
            location_ids: vec![n],
            values: vec![1, 100_000_000],
            labels: vec![],
        });
        let mut m = Model::default();
        m.add(WindowSummary::of(&p, Some("x")));
        let rows = m.rows();
        assert_eq!(names(&rows), ["[unknown]", "a"]);
        assert!((row(&rows, "[unknown]").own_pct - 200.0 / 3.0).abs() < 1e-6);
    }
}
