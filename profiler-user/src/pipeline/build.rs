//! A window becomes a profile: its stacks are symbolized (through the shared cache) and
//! interned into the profile's own dictionary of mappings, locations and functions, so each
//! window is a complete pprof without the history before it.

use std::collections::HashMap;

use super::stacks::{FrameRef, StackTable};
use super::window::{SampleTarget, Window};
use crate::profile::{Label, LabelValue, Line, Location, Profile, ProfileBuilder, Sample};
use crate::symbolize::gopclntab::PcKind;
use crate::symbolize::symbolizer::Symbolizer;

/// Which samples of a window go into a profile.
pub type TargetFilter<'a> = &'a dyn Fn(&SampleTarget) -> bool;

/// pprof's convention: a caller's location address is the call instruction (return - 1).
fn call_pc(pc: u64, kind: PcKind) -> u64 {
    if kind == PcKind::Return {
        pc.saturating_sub(1)
    } else {
        pc
    }
}

struct Builder<'a> {
    profile: Profile,
    dict: ProfileBuilder,
    stacks: &'a StackTable,
    /// Location id of each frame; None when the frame is elided.
    locations: HashMap<FrameRef, Option<u64>>,
}

impl Builder<'_> {
    fn function(&mut self, f: crate::profile::Function) -> u64 {
        self.dict.function(&mut self.profile, f)
    }

    fn location(&mut self, f: &FrameRef, window: &Window, sym: &mut Symbolizer) -> Option<u64> {
        if let Some(&id) = self.locations.get(f) {
            return id;
        }
        let loc = match *f {
            FrameRef::Kernel { pc } => {
                let function_id = self.function(crate::profile::Function {
                    name: sym.kernel(pc),
                    system_name: sym.kernel(pc),
                    ..Default::default()
                });
                Some(Location {
                    mapping_id: 0,
                    address: pc,
                    lines: vec![Line {
                        function_id,
                        line: 0,
                    }],
                })
            }
            FrameRef::Unknown { pc, kind } => {
                let name = format!("[unknown] {pc:#x}");
                let function_id = self.function(crate::profile::Function {
                    system_name: name.clone(),
                    name,
                    ..Default::default()
                });
                Some(Location {
                    mapping_id: 0,
                    address: call_pc(pc, kind),
                    lines: vec![Line {
                        function_id,
                        line: 0,
                    }],
                })
            }
            FrameRef::User {
                object,
                mapping,
                pc,
                link,
                kind,
                callee_panics,
            } => {
                let object = &window.objects[&object];
                let lines = sym.user(object, link, kind, callee_panics);
                if lines.is_empty() {
                    None
                } else {
                    let mapping = self.stacks.mapping(mapping).clone();
                    let mapping_id = self.dict.mapping(&mut self.profile, mapping);
                    let lines = lines
                        .iter()
                        .map(|l| Line {
                            function_id: self.function((*l.function).clone()),
                            line: l.line,
                        })
                        .collect();
                    Some(Location {
                        mapping_id,
                        address: call_pc(pc, kind),
                        lines,
                    })
                }
            }
        };
        let id = loc.map(|l| self.dict.location(&mut self.profile, l));
        self.locations.insert(*f, id);
        id
    }
}

/// Symbolizes `window` into a CPU profile at `frequency_hz` of the targets `keep` accepts.
pub fn profile(
    window: &Window,
    stacks: &StackTable,
    sym: &mut Symbolizer,
    frequency_hz: u64,
    keep: TargetFilter<'_>,
) -> Profile {
    let mut b = Builder {
        profile: Profile::new_cpu(frequency_hz, window.start),
        dict: ProfileBuilder::default(),
        stacks,
        locations: HashMap::new(),
    };
    b.profile.duration = window.duration;
    let mut samples: Vec<Sample> = Vec::with_capacity(window.counts.len());
    let mut merged: HashMap<(Vec<u64>, String), usize> = HashMap::new();
    for (&(target, stack), counts) in &window.counts {
        if !keep(&target) {
            continue;
        }
        let mut location_ids = Vec::new();
        for f in stacks.get(stack) {
            if let Some(id) = b.location(f, window, sym) {
                location_ids.push(id);
            }
        }
        let mut labels = vec![Label {
            key: "pid".into(),
            value: LabelValue::Num(i64::from(target.pid)),
        }];
        if target.tid != 0 {
            labels.push(Label {
                key: "tid".into(),
                value: LabelValue::Num(i64::from(target.tid)),
            });
        }
        if target.goid != 0 {
            labels.push(Label {
                key: "goroutine".into(),
                value: LabelValue::Num(target.goid as i64),
            });
        }
        if let Some(set) = window.label_sets.get(&target.label_set) {
            for (k, v) in &set.pairs {
                labels.push(Label {
                    key: k.clone(),
                    value: LabelValue::Str(v.clone()),
                });
            }
        }
        if let Some(comm) = window
            .targets
            .get(&(target.pid, target.generation))
            .and_then(|t| t.comm.clone())
        {
            labels.push(Label {
                key: "process".into(),
                value: LabelValue::Str(comm),
            });
        }
        // Samples that differ only in an elided frame are one sample.
        let values = [counts.count as i64, counts.weight_ns as i64];
        match merged.entry((location_ids, format!("{labels:?}"))) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let s: &mut Sample = &mut samples[*e.get()];
                s.values[0] += values[0];
                s.values[1] += values[1];
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let location_ids = e.key().0.clone();
                e.insert(samples.len());
                samples.push(Sample {
                    location_ids,
                    values: values.to_vec(),
                    labels,
                });
            }
        }
    }
    samples.sort_by(|a, b| {
        b.values[0]
            .cmp(&a.values[0])
            .then_with(|| a.location_ids.cmp(&b.location_ids))
    });
    b.profile.samples = samples;
    // One line per Go binary, version first (the report finds the matching GOROOT by it).
    // Only the files this profile's frames are in (a window holds those of every series).
    let used: std::collections::HashSet<_> = b
        .locations
        .keys()
        .filter_map(|f| match f {
            FrameRef::User { object, .. } => Some(*object),
            _ => None,
        })
        .collect();
    let mut objects: Vec<_> = window
        .objects
        .values()
        .filter(|o| used.contains(&o.id))
        .collect();
    objects.sort_by_key(|o| o.id);
    for o in objects {
        let bi = &o.build_info;
        let Some(v) = &bi.go_version else { continue };
        let mut line = format!("{v} {}", o.path);
        let mut details = Vec::new();
        if let Some(m) = &bi.module_path {
            details.push(format!("module {m}"));
        }
        if let Some(m) = bi
            .main_path
            .as_ref()
            .filter(|m| Some(*m) != bi.module_path.as_ref())
        {
            details.push(format!("main {m}"));
        }
        let id = o.build_id();
        if !id.is_empty() {
            details.push(format!("build id {id}"));
        }
        if !details.is_empty() {
            line.push_str(&format!(" ({})", details.join(", ")));
        }
        b.profile.comments.push(line);
    }
    b.profile
}
